import type { Backend, Storage, View } from '../backend/backend.js';
import { decode, storageBytes, type DType } from './dtype.js';
import { KilnError, fmtShape } from './errors.js';
import { contiguousStrides, isContiguous, numel, type Shape } from './shape.js';

/** A backend buffer shared by a tensor and its views; freed when the last one is disposed. */
export class StorageRef {
  refs = 1;
  constructor(readonly backend: Backend, public storage: Storage) {}
  retain(): this {
    this.refs++;
    return this;
  }
  release(): void {
    if (--this.refs === 0) this.backend.free(this.storage);
  }
}

/** What backward needs from an op: its inputs and how to map the output grad onto them. */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** Grads for each input (null where the input needs none), given the output grad. */
  backward(g: Tensor): (Tensor | null)[];
}

export type GradHook = (grad: Tensor) => Tensor | void;

// ---- scopes: every tensor made inside tidy() is disposed at its end unless returned or kept
const scopes: Set<Tensor>[] = [];

/**
 * Runs fn and disposes every tensor created inside it, except the ones it returns (a tensor, or
 * an array or object of tensors) and those passed to keep(). Use it around each training step so
 * a loop's memory stays flat. fn must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    // a throw ends the scope too: what it made is freed, or every failed step would leak
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) throw new KilnError('argument', 'tidy', 'the function must be synchronous (it returned a Promise)');
  const returned = new Set<Tensor>();
  collect(result, returned);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (returned.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

function collect(v: unknown, out: Set<Tensor>): void {
  if (v instanceof Tensor) out.add(v);
  else if (Array.isArray(v)) for (const x of v) collect(x, out);
  else if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collect(x, out);
}

/** Whether t was made inside the innermost tidy() scope (so that scope owns it). */
export function ownedByCurrentScope(t: Tensor): boolean {
  return scopes.length > 0 && scopes[scopes.length - 1].has(t);
}

/** Excludes a tensor from every enclosing tidy(): it lives until disposed explicitly. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

let nextId = 1;

/**
 * An n-dimensional array on a backend. Shape and strides are in elements; views (transpose,
 * slice, expand, reshape of contiguous data) share storage with their base.
 */
export class Tensor implements View {
  readonly id = nextId++;
  requiresGrad = false;
  /** Accumulated gradient (leaves, and non-leaves after retainGrad()). */
  grad: Tensor | null = null;
  /** @internal the op that produced this tensor, while gradients are being recorded */
  _node: GradNode | null = null;
  /** @internal */
  _retainGrad = false;
  /** @internal */
  _hooks: GradHook[] = [];
  /** @internal */
  _ref: StorageRef | null;
  /** Optional label (parameter name), used in error messages. */
  name?: string;

  constructor(
    ref: StorageRef,
    readonly shape: readonly number[],
    readonly strides: readonly number[],
    readonly offset: number,
    readonly dtype: DType,
  ) {
    this._ref = ref;
    scopes[scopes.length - 1]?.add(this);
  }

  /** Allocates an uninitialised contiguous tensor. */
  static empty(backend: Backend, shape: Shape, dtype: DType = 'f32'): Tensor {
    const ref = new StorageRef(backend, backend.alloc(storageBytes(dtype, numel(shape))));
    return new Tensor(ref, [...shape], contiguousStrides(shape), 0, dtype);
  }

  /** A view sharing this tensor's storage. */
  _view(shape: readonly number[], strides: readonly number[], offset: number): Tensor {
    return new Tensor(this.ref('view').retain(), shape, strides, offset, this.dtype);
  }

  ref(op: string): StorageRef {
    if (!this._ref) {
      throw new KilnError('disposed', op, `tensor${this.name ? ` ${this.name}` : ''} of shape ${fmtShape(this.shape)} was disposed`);
    }
    return this._ref;
  }

  get storage(): Storage {
    return this.ref('storage').storage;
  }
  get backend(): Backend {
    return this.ref('backend').backend;
  }
  get disposed(): boolean {
    return this._ref === null;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get size(): number {
    return numel(this.shape);
  }
  numel(): number {
    return numel(this.shape);
  }
  get isLeaf(): boolean {
    return this._node === null;
  }
  isContiguous(): boolean {
    return isContiguous(this.shape, this.strides);
  }

  /** Frees this tensor's hold on its storage. Safe to call twice. */
  dispose(): void {
    if (!this._ref) return;
    this._ref.release();
    this._ref = null;
    this._node = null;
  }

  /**
   * Makes this tensor hold `src`'s data (same shape), keeping its identity: how optimizers
   * update parameters in place. src is consumed.
   */
  assign(src: Tensor): this {
    if (src.dtype !== this.dtype || src.shape.length !== this.shape.length || src.shape.some((d, i) => d !== this.shape[i])) {
      throw new KilnError('shape', 'assign', `cannot assign ${src.dtype}${fmtShape(src.shape)} to ${this.dtype}${fmtShape(this.shape)}`);
    }
    const ref = src.ref('assign');
    this.ref('assign').release();
    this._ref = ref;
    (this as { strides: readonly number[] }).strides = src.strides;
    (this as { offset: number }).offset = src.offset;
    src._ref = null;
    return this;
  }

  /** Reads the data (all elements, row-major) to the host. f16/bf16 come back as Float32Array. */
  async toArray(): Promise<Float32Array | Int32Array | Uint32Array> {
    const c = this.contiguousData();
    try {
      const n = c.size;
      const bytes = await c.backend.read(c.storage, byteOffset(c), storageBytes(c.dtype, n));
      return decode(c.dtype, bytes, n);
    } finally {
      if (c !== this) c.dispose();
    }
  }

  /** Synchronous read, on backends that can (wasm). */
  toArraySync(): Float32Array | Int32Array | Uint32Array {
    const b = this.backend;
    if (!b.readSync) throw new KilnError('backend', 'toArraySync', `the ${b.name} backend reads asynchronously: use await toArray()`);
    const c = this.contiguousData();
    try {
      return decode(c.dtype, b.readSync(c.storage, byteOffset(c), storageBytes(c.dtype, c.size)), c.size);
    } finally {
      if (c !== this) c.dispose();
    }
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new KilnError('shape', 'item', `only one-element tensors have an item, got shape ${fmtShape(this.shape)}`);
    return (await this.toArray())[0];
  }

  /** Nested arrays, like torch's tolist(). */
  async tolist(): Promise<unknown> {
    const flat = Array.from(await this.toArray());
    const build = (d: number, off: number): unknown => {
      if (d === this.shape.length) return flat[off];
      const step = numel(this.shape.slice(d + 1));
      return Array.from({ length: this.shape[d] }, (_, i) => build(d + 1, off + i * step));
    };
    return build(0, 0);
  }

  toString(): string {
    return `Tensor(${this.dtype}${fmtShape(this.shape)}, ${this._ref ? this.backend.name : 'disposed'}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }

  /** Implemented in ops/shape.ts (set at module load to avoid an import cycle). */
  contiguousData(): Tensor {
    throw new Error('ops not loaded');
  }
}

/** Byte offset of a contiguous tensor's first element (packed halves start on a 2-byte boundary). */
function byteOffset(t: Tensor): number {
  return t.offset * (t.dtype === 'f16' || t.dtype === 'bf16' ? 2 : 4);
}
