// Optimizers over parameter groups, as torch's param_groups: each group has its own options (lr,
// weight decay, ...) filled in from the optimizer's defaults; a flat list of tensors is one group.
// State is per parameter. Updates are built from ops under noGrad, inside a tidy scope, and
// written back with Tensor.assign so parameters keep identity.
import { noGrad } from '../core/autograd.js';
import { KilnError } from '../core/errors.js';
import { zerosLike } from '../core/ops/creation.js';
import { add, mul, mulScalar, sqrt, div } from '../core/ops/pointwise.js';
import { keep, tidy, Tensor } from '../core/tensor.js';

/** A group as given: its parameters and any options that differ from the optimizer's defaults. */
export type ParamGroupInit<O> = { params: Iterable<Tensor> } & Partial<O>;
/** A group as the optimizer keeps it: every option filled in. Options may be changed between steps (a scheduler sets lr). */
export type ParamGroup<O> = O & { params: Tensor[] };

type Check<O> = { [K in keyof O]?: (v: O[K]) => boolean };

export abstract class Optimizer<O extends { lr: number } = { lr: number }> {
  readonly paramGroups: ParamGroup<O>[] = [];
  /** steps taken */
  t = 0;
  /**
   * params: tensors (one group) or groups `{ params, ...options }`; defaults: the options of
   * groups that do not set them. A parameter may belong to one group only.
   */
  constructor(params: Iterable<Tensor> | Iterable<ParamGroupInit<O>>, readonly defaults: O) {
    const list = [...(params as Iterable<Tensor | ParamGroupInit<O>>)];
    if (!list.length) throw new KilnError('argument', this.constructor.name, 'got an empty parameter list');
    if (list.every((p) => p instanceof Tensor)) this.addParamGroup({ params: list as Tensor[] } as unknown as ParamGroupInit<O>);
    else if (list.every((g) => !(g instanceof Tensor) && g && typeof g === 'object' && 'params' in g)) for (const g of list as ParamGroupInit<O>[]) this.addParamGroup(g);
    else throw new KilnError('argument', this.constructor.name, 'params must be all tensors or all parameter groups ({ params, ...options })');
  }

  /** Option checks (what a value must satisfy), by option name; lr is always checked. A method: the constructor needs it. */
  protected abstract checks(): Check<O>;

  /** Adds a group (torch's add_param_group): options it omits come from the defaults. */
  addParamGroup(group: ParamGroupInit<O>): void {
    const where = `${this.constructor.name}: paramGroups[${this.paramGroups.length}]`;
    const ps = [...new Set(group.params ?? [])]; // a tensor listed twice (tied weights) is updated once
    if (!ps.length) throw new KilnError('argument', where, 'has no parameters');
    for (const p of ps) {
      if (!(p instanceof Tensor)) throw new KilnError('argument', where, `params holds a ${p === null ? 'null' : typeof p}, not a tensor`);
      const other = this.paramGroups.findIndex((g) => g.params.includes(p));
      if (other >= 0) throw new KilnError('argument', where, `a parameter of shape [${p.shape.join(', ')}] is already in paramGroups[${other}]`);
    }
    const g = { ...this.defaults, ...group, params: ps } as ParamGroup<O>;
    for (const k of Object.keys(group)) if (k !== 'params' && !(k in this.defaults)) throw new KilnError('argument', where, `unknown option '${k}' (${Object.keys(this.defaults).join(', ')})`);
    this.checkGroup(g, where);
    this.paramGroups.push(g);
  }

  private checkGroup(g: ParamGroup<O>, where: string): void {
    if (!(g.lr >= 0 && Number.isFinite(g.lr))) throw new KilnError('argument', where, `lr must be a finite number >= 0, got ${g.lr}`);
    for (const [k, ok] of Object.entries(this.checks()) as [keyof O, (v: unknown) => boolean][]) {
      if (!ok(g[k])) throw new KilnError('argument', where, `invalid ${String(k)}: ${JSON.stringify(g[k])}`);
    }
  }

  /** Every parameter, group by group. */
  get params(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }
  /** The first group's lr; setting it sets every group's (set paramGroups[i].lr for one group). */
  get lr(): number {
    return this.paramGroups[0].lr;
  }
  set lr(v: number) {
    for (const g of this.paramGroups) g.lr = v;
  }

  /** Clears every parameter's grad (torch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }
  step(): void {
    // options may have changed since the last step (schedulers): check before updating anything
    this.paramGroups.forEach((g, i) => this.checkGroup(g, `${this.constructor.name}.step: paramGroups[${i}]`));
    this.t++;
    noGrad(() =>
      tidy(() => {
        for (const g of this.paramGroups) for (const p of g.params) if (p.grad) this.update(p, p.grad, g);
      }),
    );
  }
  protected abstract update(p: Tensor, g: Tensor, group: O): void;
  /** Frees optimizer state. */
  dispose(): void {}
}

const nonNegative = (v: unknown): boolean => typeof v === 'number' && v >= 0 && Number.isFinite(v);

export interface SGDOptions {
  lr: number;
  momentum?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/** SGD with momentum and (coupled) weight decay, as torch.optim.SGD. */
export class SGD extends Optimizer<Required<SGDOptions>> {
  private readonly buf = new Map<Tensor, Tensor>();
  protected checks(): Check<Required<SGDOptions>> {
    return { momentum: nonNegative, weightDecay: nonNegative, nesterov: (v) => typeof v === 'boolean' };
  }
  constructor(params: Iterable<Tensor> | Iterable<ParamGroupInit<SGDOptions>>, defaults: SGDOptions) {
    super(params as Iterable<Tensor>, { momentum: 0, weightDecay: 0, nesterov: false, ...defaults });
  }
  protected update(p: Tensor, g0: Tensor, o: Required<SGDOptions>): void {
    let g = o.weightDecay ? add(g0, mulScalar(p, o.weightDecay)) : g0;
    if (o.momentum) {
      const old = this.buf.get(p);
      const b = old ? add(mulScalar(old, o.momentum), g) : mul(g, 1);
      old?.dispose();
      this.buf.set(p, keep(b));
      g = o.nesterov ? add(g, mulScalar(b, o.momentum)) : b;
    }
    p.assign(add(p, mulScalar(g, -o.lr)));
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
export class AdamW extends Optimizer<Required<AdamWOptions>> {
  /** per parameter: the moments and its own step count (a parameter that starts training later is bias-corrected from its first step, as torch) */
  private readonly state = new Map<Tensor, { m: Tensor; v: Tensor; step: number }>();
  protected checks(): Check<Required<AdamWOptions>> {
    return { betas: (b) => Array.isArray(b) && b.length === 2 && b.every((x) => x >= 0 && x < 1), eps: nonNegative, weightDecay: nonNegative };
  }
  constructor(params: Iterable<Tensor> | Iterable<ParamGroupInit<AdamWOptions>>, defaults: AdamWOptions) {
    super(params as Iterable<Tensor>, { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01, ...defaults });
  }
  protected update(p: Tensor, g: Tensor, o: Required<AdamWOptions>): void {
    const [b1, b2] = o.betas;
    let s = this.state.get(p);
    if (!s) this.state.set(p, (s = { m: keep(zerosLike(p, { dtype: 'f32' })), v: keep(zerosLike(p, { dtype: 'f32' })), step: 0 }));
    s.step++;
    const m = add(mulScalar(s.m, b1), mulScalar(g, 1 - b1));
    const v = add(mulScalar(s.v, b2), mulScalar(mul(g, g), 1 - b2));
    s.m.assign(m);
    s.v.assign(v);
    const bc1 = 1 - b1 ** s.step;
    const bc2 = 1 - b2 ** s.step;
    // p = p * (1 - lr * wd) - lr * (m / bc1) / (sqrt(v / bc2) + eps)
    const denom = add(sqrt(mulScalar(s.v, 1 / bc2)), o.eps);
    const upd = mulScalar(div(s.m, denom), -o.lr / bc1);
    p.assign(add(o.weightDecay ? mulScalar(p, 1 - o.lr * o.weightDecay) : p, upd));
  }
  override dispose(): void {
    for (const s of this.state.values()) { s.m.dispose(); s.v.dispose(); }
    this.state.clear();
  }
}
