// Mixture of Experts with a top-k softmax router. Tokens are dispatched into per-expert slots
// of fixed capacity (so shapes stay static and nothing waits on the host), the experts run as
// one batched matmul over their stacked weights, and outputs are combined by the routing
// weights. Dispatch and combine move N*k rows: their cost grows with k, not with the number
// of experts. Routing follows Mixtral (softmax, top-k, renormalise); the auxiliary losses are
// Switch's load balancing (as transformers' load_balancing_loss_func) and ST-MoE's router z-loss.
import { KilnError } from '../core/errors.js';
import { arange, fromValues, zeros } from '../core/ops/creation.js';
import { indexSelect, scatterAdd, topk } from '../core/ops/index.js';
import { matmul } from '../core/ops/matmul.js';
import { add, cast, div, eq, lt, mul, square, sub, where } from '../core/ops/pointwise.js';
import { cumsum, logsumexp, mean, softmax, sum } from '../core/ops/reduce.js';
import { concat, contiguous, expand, reshape, slice, transpose, unsqueeze } from '../core/ops/shape.js';
import { randn } from '../core/ops/creation.js';
import type { Tensor } from '../core/tensor.js';
import { normal, type InitOptions } from './init.js';
import { Linear } from './layers.js';
import { GatedMLP, activation, type Activation } from './mlp.js';
import { Module } from './module.js';

export interface MoEConfig extends InitOptions {
  hiddenSize: number;
  intermediateSize: number;
  numExperts: number;
  topK: number;
  act?: Activation;
  /**
   * Slots per expert = ceil(capacityFactor * tokens * topK / numExperts); assignments past an
   * expert's capacity are dropped (counted in droppedTokens). Omitted: no token is ever dropped.
   */
  capacityFactor?: number;
  /** renormalise the top-k weights to sum to 1 (Mixtral; default true) */
  normalizeTopK?: boolean;
  /** std of Gaussian noise added to router logits while training */
  routerNoise?: number;
  /** an always-on shared expert of this intermediate size (Qwen2-MoE, DeepSeek) */
  sharedExpertIntermediateSize?: number;
}

export interface MoEOutput {
  output: Tensor;
  /** Switch load-balancing loss: numExperts * sum(f * P) */
  auxLoss: Tensor;
  /** mean(logsumexp(router logits)^2) */
  zLoss: Tensor;
  /** assignments dropped for lack of capacity (0-d f32) */
  droppedTokens: Tensor;
  routerLogits: Tensor;
}

/** Stacked expert weights: gate_proj / up_proj (E, I, H) and down_proj (E, H, I). */
class Experts extends Module<[x: Tensor, act: Activation], Tensor> {
  constructor(E: number, H: number, I: number, o: InitOptions) {
    super();
    const std = 1 / Math.sqrt(H);
    this.registerParameter('gate_proj', normal([E, I, H], 0, std, o));
    this.registerParameter('up_proj', normal([E, I, H], 0, std, o));
    this.registerParameter('down_proj', normal([E, H, I], 0, 1 / Math.sqrt(I), o));
  }
  /** x (E, C, H) -> (E, C, H), each expert on its own slots. */
  forward(x: Tensor, act: Activation): Tensor {
    const w = (n: string) => transpose(this.getParameter(n)!); // (E, H, I) or (E, I, H) views
    const h = mul(activation(act, matmul(x, w('gate_proj'))), matmul(x, w('up_proj'))); // (E, C, I)
    return matmul(h, w('down_proj')); // (E, C, H)
  }
}

export class MixtureOfExperts extends Module<[x: Tensor], MoEOutput> {
  readonly cfg: MoEConfig;
  constructor(cfg: MoEConfig) {
    super();
    if (!Number.isInteger(cfg.topK) || cfg.topK < 1 || cfg.topK > cfg.numExperts) {
      throw new KilnError('argument', 'MixtureOfExperts', `topK must be in [1, numExperts = ${cfg.numExperts}], got ${cfg.topK}`);
    }
    if (cfg.capacityFactor !== undefined && !(cfg.capacityFactor > 0)) throw new KilnError('argument', 'MixtureOfExperts', `capacityFactor must be > 0, got ${cfg.capacityFactor}`);
    this.cfg = cfg;
    this.registerModule('gate', new Linear(cfg.hiddenSize, cfg.numExperts, { ...cfg, bias: false }));
    this.registerModule('experts', new Experts(cfg.numExperts, cfg.hiddenSize, cfg.intermediateSize, cfg));
    if (cfg.sharedExpertIntermediateSize) {
      this.registerModule('shared_expert', new GatedMLP({ ...cfg, intermediateSize: cfg.sharedExpertIntermediateSize }));
    }
  }

  /** Slots per expert for n tokens. */
  capacity(n: number): number {
    const { capacityFactor, topK, numExperts } = this.cfg;
    return capacityFactor === undefined ? n : Math.max(1, Math.ceil((capacityFactor * n * topK) / numExperts));
  }

  forward(x: Tensor): MoEOutput {
    const { numExperts: E, topK: k, hiddenSize: H } = this.cfg;
    const N = x.size / H;
    const be = x.backend;
    const xf = reshape(x, [N, H]); // (N, H)
    let logits = this.child<Linear>('gate').call(xf); // (N, E)
    if (this.training && this.cfg.routerNoise) logits = add(logits, mul(randn([N, E], { backend: be }), this.cfg.routerNoise));
    const probs = softmax(logits, -1);
    const top = topk(probs, k); // (N, k)
    let w = top.values;
    if (this.cfg.normalizeTopK ?? true) w = div(w, sum(w, -1, { keepdim: true }));
    // each assignment's place in its expert's queue, in token order
    const a = cast(reshape(top.indices, [N * k]), 'f32'); // (N*k) expert of each assignment
    const onehot = eq(unsqueeze(a, -1), arange(E, undefined, 1, { backend: be })); // (N*k, E)
    const pos = sum(mul(cumsum(onehot, 0, { exclusive: true }), onehot), -1); // (N*k)
    const C = this.capacity(N);
    const kept = lt(pos, C); // (N*k) 1 where the expert had room
    const slot = cast(where(kept, add(mul(a, C), pos), E * C), 'i32'); // row E*C collects the dropped
    // dispatch: (N*k, H) token rows scattered into (E*C + 1, H) expert slots
    const tokenOf = fromValues(Int32Array.from({ length: N * k }, (_, i) => Math.floor(i / k)), [N * k], { backend: be, dtype: 'i32' });
    const rows = indexSelect(xf, 0, tokenOf); // (N*k, H)
    const slotIdx = contiguous(expand(unsqueeze(slot, -1), [N * k, H])); // (N*k, H) i32
    const buf = scatterAdd(zeros([E * C + 1, H], { backend: be }), 0, slotIdx, rows);
    const y = this.child<Experts>('experts').call(reshape(slice(buf, 0, 0, E * C), [E, C, H]), this.cfg.act ?? 'silu'); // (E, C, H)
    // combine: each assignment reads its slot (dropped ones read the zero row), weighted
    const ybuf = concat([reshape(y, [E * C, H]), zeros([1, H], { backend: be })], 0);
    const picked = mul(indexSelect(ybuf, 0, slot), unsqueeze(reshape(w, [N * k]), -1)); // (N*k, H)
    let out = sum(reshape(picked, [N, k, H]), 1); // (N, H)
    if (this.cfg.sharedExpertIntermediateSize) out = add(out, this.child<GatedMLP>('shared_expert').call(xf));
    // Switch load balancing as transformers computes it for top-k: f (k, E) fraction of tokens
    // whose j-th choice is e, P (E) mean router probability
    const f = mean(reshape(onehot, [N, k, E]), 0); // (k, E)
    const P = mean(probs, 0); // (E)
    const auxLoss = mul(sum(mul(f, P)), E);
    const zLoss = mean(square(logsumexp(logits, -1)));
    const droppedTokens = sub(sum(kept), N * k);
    return { output: reshape(out, x.shape), auxLoss, zLoss, droppedTokens: mul(droppedTokens, -1), routerLogits: logits };
  }
}
