import type { DType } from '../core/dtype.js';

export type BackendName = 'webgpu' | 'wasm';

/** A backend's memory block. Opaque outside the backend that made it. */
export interface Storage {
  readonly bytes: number;
  released: boolean;
}

/** How a kernel sees a tensor: storage plus a strided view in elements. */
export interface View {
  readonly storage: Storage;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
}

/** Features that select kernel variants (WGSL `enable`s, tile sizes). */
export interface KernelContext {
  readonly f16: boolean;
  readonly tile: MatmulTile;
  /**
   * Kernels run on a CPU (wasm, or an adapter such as SwiftShader or lavapipe that runs shaders on
   * the CPU, where barriers are costly): kernels pick their schedules without workgroup sharing.
   */
  readonly cpu: boolean;
}

export interface MatmulTile {
  /** threads per workgroup along x (columns) and y (rows) */
  readonly wgx: number;
  readonly wgy: number;
  /** register block per thread */
  readonly tm: number;
  readonly tn: number;
  /** depth of a K tile */
  readonly bk: number;
}

/**
 * One op's kernel, declared once: the WGSL source (generated per variant; shapes never enter
 * it, they travel as uniforms) and the name of its AssemblyScript twin.
 */
export interface Kernel {
  readonly name: string;
  wgsl(variant: string, ctx: KernelContext): string;
  /** Export of the wasm module, called as fn(...inputs, ...outputs, uniforms[, scratch]). */
  readonly wasm: string;
  /** wasm arity of inputs (missing ones are passed as 0) */
  readonly wasmInputs?: number;
  /** Export that returns the scratch bytes the wasm function needs, if any. */
  readonly wasmScratch?: string;
  /** The kernel reports bad indices through the status word. */
  readonly status?: boolean;
}

export interface KernelCall {
  readonly kernel: Kernel;
  /** compile-time specialisation: op, dtypes, layout hints; never shapes */
  readonly variant: string;
  readonly inputs: readonly View[];
  readonly outputs: readonly View[];
  readonly uniforms: Uint32Array;
  /** workgroups in x, y, z (WebGPU) */
  readonly grid: readonly [number, number, number];
  /** the op name, for error messages */
  readonly op: string;
}

export interface MemoryStats {
  /** buffers held by live tensors */
  liveBuffers: number;
  liveBytes: number;
  /** buffers kept for reuse */
  pooledBuffers: number;
  pooledBytes: number;
  /** the most liveBytes reached since the backend started or resetPeak() */
  peakLiveBytes: number;
}

/** The narrow interface every backend implements. */
export interface Backend {
  readonly name: BackendName;
  readonly ctx: KernelContext;
  alloc(bytes: number): Storage;
  free(s: Storage): void;
  write(s: Storage, data: ArrayBufferView, byteOffset?: number): void;
  zero(s: Storage, byteOffset: number, bytes: number): void;
  read(s: Storage, byteOffset: number, bytes: number): Promise<ArrayBuffer>;
  /** Only backends that can read without waiting (wasm). */
  readSync?(s: Storage, byteOffset: number, bytes: number): ArrayBuffer;
  run(call: KernelCall): void;
  /** Submits recorded work (WebGPU); a no-op where work runs eagerly. */
  flush(): void;
  /** Resolves when all submitted work has finished. */
  sync(): Promise<void>;
  memory(): MemoryStats;
  /** Frees pooled memory. */
  emptyCache(): void;
  /** Restarts peakLiveBytes from the current live bytes. */
  resetPeak(): void;
  /** Starts timing each kernel (the profiler, core/profile.ts): WebGPU with timestamp queries. */
  startProfile(): void;
  /** Stops timing; resolves to the time per kernel since startProfile. */
  stopProfile(): Promise<KernelTime[]>;
  destroy(): void;
}

/** One kernel's share of a profile: `key` is op, kernel and variant. */
export interface KernelTime {
  key: string;
  calls: number;
  ms: number;
}

/** Adds a timed call to a profile's table. */
export function tally(table: Map<string, KernelTime>, call: KernelCall, ms: number): void {
  const key = `${call.op} ${call.kernel.name}${call.variant ? `|${call.variant}` : ''}`;
  const t = table.get(key) ?? { key, calls: 0, ms: 0 };
  t.calls++;
  t.ms += ms;
  table.set(key, t);
}

/** Pool buckets: four per power of two above 256 bytes, so at most 25% is wasted. */
export function bucketSize(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes));
  const step = p / 4;
  return Math.ceil(bytes / step) * step;
}

/** Spreads n workgroups over x and y (each at most 65535). */
export function grid1d(groups: number): [number, number, number] {
  const g = Math.max(1, groups);
  if (g <= 65535) return [g, 1, 1];
  const y = Math.ceil(g / 65535);
  return [Math.ceil(g / y), y, 1];
}
