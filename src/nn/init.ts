// Weight initialisation, as torch.nn.init, drawn on the host from a seeded Generator and
// uploaded: the same seed gives the same weights on every backend. Each returns a new tensor.
import type { Backend } from '../backend/backend.js';
import { KilnError, fmtShape } from '../core/errors.js';
import { Generator, defaultGenerator, fromValues } from '../core/ops/creation.js';
import { numel } from '../core/shape.js';
import { Tensor } from '../core/tensor.js';
import { getBackend } from '../core/runtime.js';
import type { DType } from '../core/dtype.js';

export interface InitOptions {
  generator?: Generator;
  backend?: Backend;
  dtype?: DType;
  /** allocate without drawing values (for weights a checkpoint is about to fill; torch's init_empty_weights) */
  skipInit?: boolean;
}

/** fan_in and fan_out of a weight (out, in, *receptive) as torch computes them. */
export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) throw new KilnError('shape', 'init', `fan in and fan out need at least 2 dims, got ${fmtShape(shape)}`);
  const receptive = numel(shape.slice(2));
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

const make = (shape: readonly number[], f: (g: Generator) => number, o: InitOptions): Tensor => {
  if (o.skipInit) return Tensor.empty(o.backend ?? getBackend(), shape, o.dtype ?? 'f32');
  const g = o.generator ?? defaultGenerator;
  return fromValues(Float32Array.from({ length: numel(shape) }, () => f(g)), shape, { backend: o.backend, dtype: o.dtype });
};

export const zerosInit = (shape: readonly number[], o: InitOptions = {}): Tensor => make(shape, () => 0, o);
export const onesInit = (shape: readonly number[], o: InitOptions = {}): Tensor => make(shape, () => 1, o);
export const normal = (shape: readonly number[], mean = 0, std = 1, o: InitOptions = {}): Tensor => make(shape, (g) => mean + std * g.normal(), o);
export const uniform = (shape: readonly number[], a = 0, b = 1, o: InitOptions = {}): Tensor => make(shape, (g) => a + (b - a) * g.random(), o);

/** Normal(mean, std) redrawn until inside [a, b] (torch.nn.init.trunc_normal_; a, b absolute). */
export function truncatedNormal(shape: readonly number[], mean = 0, std = 1, a = -2, b = 2, o: InitOptions = {}): Tensor {
  if (!(a < b)) throw new KilnError('argument', 'truncatedNormal', `bounds must satisfy a < b, got [${a}, ${b}]`);
  return make(shape, (g) => {
    for (let i = 0; i < 1000; i++) {
      const v = mean + std * g.normal();
      if (v >= a && v <= b) return v;
    }
    return Math.min(Math.max(mean, a), b); // the interval holds almost no mass: its nearest point
  }, o);
}

/**
 * Scaled normal for residual projections (GPT-2's c_proj, Llama's o_proj / down_proj):
 * std / sqrt(2 * numLayers), so the residual stream's variance does not grow with depth.
 */
export const scaledNormal = (shape: readonly number[], std: number, numLayers: number, o: InitOptions = {}): Tensor =>
  normal(shape, 0, std / Math.sqrt(2 * numLayers), o);

export const xavierUniform = (shape: readonly number[], gain = 1, o: InitOptions = {}): Tensor => {
  const { fanIn, fanOut } = fans(shape);
  const a = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform(shape, -a, a, o);
};
export const xavierNormal = (shape: readonly number[], gain = 1, o: InitOptions = {}): Tensor => {
  const { fanIn, fanOut } = fans(shape);
  return normal(shape, 0, gain * Math.sqrt(2 / (fanIn + fanOut)), o);
};

export type Nonlinearity = 'linear' | 'relu' | 'leaky_relu' | 'tanh' | 'sigmoid';
/** torch.nn.init.calculate_gain */
export function calculateGain(nl: Nonlinearity, param = 0.01): number {
  switch (nl) {
    case 'linear': case 'sigmoid': return 1;
    case 'tanh': return 5 / 3;
    case 'relu': return Math.SQRT2;
    case 'leaky_relu': return Math.sqrt(2 / (1 + param * param));
  }
}

export interface KaimingOptions extends InitOptions {
  a?: number;
  mode?: 'fan_in' | 'fan_out';
  nonlinearity?: Nonlinearity;
}
const kaimingStd = (shape: readonly number[], o: KaimingOptions): number => {
  const f = fans(shape);
  const fan = (o.mode ?? 'fan_in') === 'fan_in' ? f.fanIn : f.fanOut;
  return calculateGain(o.nonlinearity ?? 'leaky_relu', o.a ?? 0) / Math.sqrt(fan);
};
export const kaimingUniform = (shape: readonly number[], o: KaimingOptions = {}): Tensor => {
  const bound = Math.sqrt(3) * kaimingStd(shape, o);
  return uniform(shape, -bound, bound, o);
};
export const kaimingNormal = (shape: readonly number[], o: KaimingOptions = {}): Tensor => normal(shape, 0, kaimingStd(shape, o), o);

/** A (semi-)orthogonal matrix (rows x cols flattened from shape), by QR of a Gaussian matrix. */
export function orthogonal(shape: readonly number[], gain = 1, o: InitOptions = {}): Tensor {
  if (shape.length < 2) throw new KilnError('shape', 'orthogonal', `needs at least 2 dims, got ${fmtShape(shape)}`);
  const g = o.generator ?? defaultGenerator;
  const rows = shape[0];
  const cols = numel(shape) / rows;
  // orthonormalise the shorter side's vectors by modified Gram-Schmidt (QR), fixing signs as torch
  const n = Math.min(rows, cols);
  const len = Math.max(rows, cols);
  const q: Float64Array[] = [];
  for (let i = 0; i < n; i++) {
    const v = Float64Array.from({ length: len }, () => g.normal());
    for (const u of q) {
      let d = 0;
      for (let k = 0; k < len; k++) d += u[k] * v[k];
      for (let k = 0; k < len; k++) v[k] -= d * u[k];
    }
    let norm = 0;
    for (let k = 0; k < len; k++) norm += v[k] * v[k];
    norm = Math.sqrt(norm);
    for (let k = 0; k < len; k++) v[k] /= norm;
    q.push(v);
  }
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < n; i++) for (let k = 0; k < len; k++) {
    if (rows <= cols) out[i * cols + k] = gain * q[i][k]; // orthonormal rows
    else out[k * cols + i] = gain * q[i][k]; // orthonormal columns
  }
  return fromValues(out, shape, { backend: o.backend, dtype: o.dtype });
}
