// Tensor factories. Random values are drawn on the host from a seeded generator and uploaded,
// so the same seed gives the same tensor on every backend.
import type { Backend } from '../../backend/backend.js';
import { pointwiseCall } from '../../kernels/pointwise.js';
import { gradOps } from '../autograd.js';
import { encode, storageBytes, type DType } from '../dtype.js';
import { KilnError, fmtShape } from '../errors.js';
import { getBackend } from '../runtime.js';
import { numel } from '../shape.js';
import { Tensor } from '../tensor.js';

export interface TensorOptions {
  dtype?: DType;
  requiresGrad?: boolean;
  backend?: Backend;
}

type Nested = number | boolean | readonly Nested[];

function flattenNested(data: Nested, shape: number[], out: number[], depth = 0): void {
  if (Array.isArray(data)) {
    if (shape.length === depth) shape.push(data.length);
    else if (shape[depth] !== data.length) throw new KilnError('shape', 'tensor', `ragged nested array: length ${data.length} at depth ${depth}, expected ${shape[depth]}`);
    for (const d of data) flattenNested(d, shape, out, depth + 1);
  } else {
    if (shape.length !== depth) throw new KilnError('shape', 'tensor', `ragged nested array: a number at depth ${depth}`);
    out.push(Number(data));
  }
}

/** Uploads values into a new tensor. */
export function fromValues(values: ArrayLike<number>, shape: readonly number[], opts: TensorOptions = {}): Tensor {
  const dtype = opts.dtype ?? 'f32';
  if (numel(shape) !== values.length) throw new KilnError('shape', 'tensor', `${values.length} values do not fill shape ${fmtShape(shape)}`);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new KilnError('shape', 'tensor', `invalid shape ${fmtShape(shape)}`);
  const b = opts.backend ?? getBackend();
  const t = Tensor.empty(b, shape, dtype);
  // f32 values already in a Float32Array go as they are (no second copy of a large weight)
  if (values.length) b.write(t.storage, dtype === 'f32' && values instanceof Float32Array ? new Uint8Array(values.buffer, values.byteOffset, values.byteLength) : new Uint8Array(encode(dtype, values)));
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}

/**
 * A tensor from nested arrays or a flat typed array with a shape (torch.tensor). Int32Array
 * data defaults to i32, everything else to f32.
 */
export function tensor(data: Nested | Float32Array | Int32Array | Uint32Array | Float64Array, opts: TensorOptions & { shape?: readonly number[] } = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const dtype = opts.dtype ?? (data instanceof Int32Array ? 'i32' : data instanceof Uint32Array ? 'u32' : 'f32');
    return fromValues(data, opts.shape ?? [data.length], { ...opts, dtype });
  }
  const shape: number[] = [];
  const flat: number[] = [];
  flattenNested(data as Nested, shape, flat);
  return fromValues(flat, opts.shape ?? shape, opts);
}

export function full(shape: readonly number[], value: number, opts: TensorOptions = {}): Tensor {
  const b = opts.backend ?? getBackend();
  const t = Tensor.empty(b, shape, opts.dtype ?? 'f32');
  if (t.size) {
    if (value === 0) b.zero(t.storage, 0, storageBytes(t.dtype, t.size));
    else b.run(pointwiseCall('fill', t, [], value, 0, b.ctx));
  }
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}
export const zeros = (shape: readonly number[], opts: TensorOptions = {}): Tensor => full(shape, 0, opts);
export const ones = (shape: readonly number[], opts: TensorOptions = {}): Tensor => full(shape, 1, opts);
const like = (t: Tensor, opts: TensorOptions): TensorOptions => ({ dtype: t.dtype, backend: t.backend, ...opts });
export const zerosLike = (t: Tensor, opts: TensorOptions = {}): Tensor => full(t.shape, 0, like(t, opts));
export const onesLike = (t: Tensor, opts: TensorOptions = {}): Tensor => full(t.shape, 1, like(t, opts));
export const fullLike = (t: Tensor, v: number, opts: TensorOptions = {}): Tensor => full(t.shape, v, like(t, opts));

/** [start, end) in steps (torch.arange); one argument means [0, end). */
export function arange(start: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new KilnError('argument', 'arange', 'step must be nonzero');
  const n = Math.max(0, Math.ceil((end - start) / step));
  return fromValues(Array.from({ length: n }, (_, i) => start + i * step), [n], opts);
}

/** A seeded generator (PCG32): the same seed gives the same numbers everywhere. */
export class Generator {
  private state = 0n;
  private inc = 0n;
  constructor(seed = 0) {
    this.manualSeed(seed);
  }
  manualSeed(seed: number): this {
    this.state = 0n;
    this.inc = (BigInt(Math.floor(seed)) << 1n) | 1n;
    this.nextU32();
    this.state = (this.state + 0x853c49e6748fea9bn) & 0xffffffffffffffffn;
    this.nextU32();
    return this;
  }
  /** The generator's state, to replay the same draws later (checkpoint recomputation). */
  getState(): [bigint, bigint] {
    return [this.state, this.inc];
  }
  setState([state, inc]: [bigint, bigint]): this {
    this.state = state;
    this.inc = inc;
    return this;
  }
  nextU32(): number {
    const old = this.state;
    this.state = (old * 6364136223846793005n + this.inc) & 0xffffffffffffffffn;
    const xorshifted = Number(((old >> 18n) ^ old) >> 27n & 0xffffffffn);
    const rot = Number(old >> 59n);
    return ((xorshifted >>> rot) | (xorshifted << ((32 - rot) & 31))) >>> 0;
  }
  /** Uniform in [0, 1). */
  random(): number {
    return this.nextU32() / 4294967296;
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.random();
    const v = this.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

export const defaultGenerator = new Generator(0);
export const manualSeed = (seed: number): Generator => defaultGenerator.manualSeed(seed);

export interface RandomOptions extends TensorOptions {
  generator?: Generator;
}

export function randn(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  const g = opts.generator ?? defaultGenerator;
  return fromValues(Float32Array.from({ length: numel(shape) }, () => g.normal()), shape, opts);
}
export function rand(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  const g = opts.generator ?? defaultGenerator;
  return fromValues(Float32Array.from({ length: numel(shape) }, () => g.random()), shape, opts);
}
/** Integers in [low, high) as i32. */
export function randint(low: number, high: number, shape: readonly number[], opts: RandomOptions = {}): Tensor {
  const g = opts.generator ?? defaultGenerator;
  return fromValues(Int32Array.from({ length: numel(shape) }, () => low + Math.floor(g.random() * (high - low))), shape, { dtype: 'i32', ...opts });
}

/** Copies a tensor to another backend (reads it back, then uploads). */
export async function toBackend(t: Tensor, backend: Backend): Promise<Tensor> {
  if (t.backend === backend) return t;
  const data = await t.toArray();
  const out = fromValues(data, t.shape, { dtype: t.dtype, backend });
  out.requiresGrad = t.requiresGrad && t.isLeaf;
  return out;
}

gradOps.onesLike = (t) => full(t.shape, 1, { backend: t.backend });
