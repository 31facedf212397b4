// Optimizers over a list of parameters (or named parameters). Updates are built from ops under
// noGrad, inside a tidy scope, and written back with Tensor.assign so parameters keep identity.
import { noGrad } from '../core/autograd.js';
import { KilnError } from '../core/errors.js';
import { zerosLike } from '../core/ops/creation.js';
import { add, mul, mulScalar, sqrt, div } from '../core/ops/pointwise.js';
import { keep, tidy, type Tensor } from '../core/tensor.js';

export abstract class Optimizer {
  readonly params: Tensor[];
  lr: number;
  /** steps taken */
  t = 0;
  constructor(params: Iterable<Tensor>, lr: number) {
    this.params = [...params];
    if (!(lr >= 0)) throw new KilnError('argument', this.constructor.name, `learning rate must be >= 0, got ${lr}`);
    this.lr = lr;
  }
  /** Clears every parameter's grad (torch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }
  step(): void {
    this.t++;
    noGrad(() =>
      tidy(() => {
        for (const p of this.params) if (p.grad) this.update(p, p.grad);
      }),
    );
  }
  protected abstract update(p: Tensor, g: Tensor): void;
  /** Frees optimizer state. */
  dispose(): void {}
}

export interface SGDOptions {
  lr: number;
  momentum?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/** SGD with momentum and (coupled) weight decay, as torch.optim.SGD. */
export class SGD extends Optimizer {
  private readonly buf = new Map<Tensor, Tensor>();
  constructor(params: Iterable<Tensor>, readonly opts: SGDOptions) {
    super(params, opts.lr);
  }
  protected update(p: Tensor, g0: Tensor): void {
    const { momentum = 0, weightDecay = 0, nesterov = false } = this.opts;
    let g = weightDecay ? add(g0, mulScalar(p, weightDecay)) : g0;
    if (momentum) {
      const old = this.buf.get(p);
      const b = old ? add(mulScalar(old, momentum), g) : mul(g, 1);
      old?.dispose();
      this.buf.set(p, keep(b));
      g = nesterov ? add(g, mulScalar(b, momentum)) : b;
    }
    p.assign(add(p, mulScalar(g, -this.lr)));
  }
  override dispose(): void {
    for (const b of this.buf.values()) b.dispose();
    this.buf.clear();
  }
}

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** AdamW (decoupled weight decay), as torch.optim.AdamW; weightDecay 0 gives Adam. */
export class AdamW extends Optimizer {
  private readonly state = new Map<Tensor, { m: Tensor; v: Tensor }>();
  constructor(params: Iterable<Tensor>, readonly opts: AdamWOptions) {
    super(params, opts.lr);
  }
  protected update(p: Tensor, g: Tensor): void {
    const [b1, b2] = this.opts.betas ?? [0.9, 0.999];
    const eps = this.opts.eps ?? 1e-8;
    const wd = this.opts.weightDecay ?? 0.01;
    let s = this.state.get(p);
    if (!s) this.state.set(p, (s = { m: keep(zerosLike(p, { dtype: 'f32' })), v: keep(zerosLike(p, { dtype: 'f32' })) }));
    const m = add(mulScalar(s.m, b1), mulScalar(g, 1 - b1));
    const v = add(mulScalar(s.v, b2), mulScalar(mul(g, g), 1 - b2));
    s.m.assign(m);
    s.v.assign(v);
    const bc1 = 1 - b1 ** this.t;
    const bc2 = 1 - b2 ** this.t;
    // p = p * (1 - lr * wd) - lr * (m / bc1) / (sqrt(v / bc2) + eps)
    const denom = add(sqrt(mulScalar(s.v, 1 / bc2)), eps);
    const upd = mulScalar(div(s.m, denom), -this.lr / bc1);
    p.assign(add(wd ? mulScalar(p, 1 - this.lr * wd) : p, upd));
  }
  override dispose(): void {
    for (const s of this.state.values()) { s.m.dispose(); s.v.dispose(); }
    this.state.clear();
  }
}
