// Basic layers, parameters named as in Hugging Face checkpoints.
import { qlinear, type QWeight } from './quant.js';
import { KilnError, fmtShape } from '../core/errors.js';
import { embedding } from '../core/ops/index.js';
import { linear } from '../core/ops/matmul.js';
import type { Tensor } from '../core/tensor.js';
import { kaimingUniform, normal, uniform, type InitOptions } from './init.js';
import { Module } from './module.js';

export interface LinearConfig extends InitOptions {
  bias?: boolean;
}

/**
 * y = x W^T + b, with weight (outFeatures, inFeatures) as torch.nn.Linear and HF checkpoints.
 * Init as torch: kaiming-uniform weight (a = sqrt 5), uniform(+-1/sqrt(in)) bias.
 * Shapes: x (..., in) -> (..., out).
 */
export class Linear extends Module<[x: Tensor], Tensor> {
  constructor(readonly inFeatures: number, readonly outFeatures: number, cfg: LinearConfig = {}) {
    super();
    this.registerParameter('weight', kaimingUniform([outFeatures, inFeatures], { ...cfg, a: Math.sqrt(5) }));
    const bound = 1 / Math.sqrt(inFeatures);
    this.registerParameter('bias', cfg.bias === false ? null : uniform([outFeatures], -bound, bound, cfg));
  }
  /** Set when the weight lives quantized (inference): it then replaces the `weight` parameter. */
  quantized: QWeight | null = null;
  get weight(): Tensor {
    return this.getParameter('weight')!;
  }
  get bias(): Tensor | null {
    return this.getParameter('bias');
  }
  /** Keeps the weight quantized from now on: the float parameter is freed. */
  setQuantized(w: QWeight): void {
    if (w.N !== this.outFeatures || w.K !== this.inFeatures) throw new KilnError('shape', 'Linear.setQuantized', `a (${w.N}, ${w.K}) weight for a (${this.outFeatures}, ${this.inFeatures}) layer`);
    this.getParameter('weight')?.dispose();
    if (this.quantized) {
      this.quantized.qs.dispose();
      this.quantized.scales.dispose();
    }
    this.registerParameter('weight', null);
    this.registerBuffer('weight_qs', w.qs, false);
    this.registerBuffer('weight_scales', w.scales, false);
    this.quantized = w;
  }
  forward(x: Tensor): Tensor {
    if (x.shape[x.ndim - 1] !== this.inFeatures) {
      throw new KilnError('shape', 'Linear', `input ${fmtShape(x.shape)} does not end in in_features ${this.inFeatures}`);
    }
    if (this.quantized) return qlinear(x, this.quantized, this.bias);
    return linear(x, this.weight, this.bias);
  }
}

/** A lookup table (numEmbeddings, dim) for i32 ids of any shape -> (..., dim). Init N(0, 1) as torch. */
export class Embedding extends Module<[ids: Tensor], Tensor> {
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, cfg: InitOptions = {}) {
    super();
    this.registerParameter('weight', normal([numEmbeddings, embeddingDim], 0, 1, cfg));
  }
  get weight(): Tensor {
    return this.getParameter('weight')!;
  }
  forward(ids: Tensor): Tensor {
    return embedding(ids, this.weight);
  }
}
