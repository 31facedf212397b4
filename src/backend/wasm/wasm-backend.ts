import { KilnError } from '../../core/errors.js';
import { ERR_INDEX } from '../../../assembly/layout.js';
import { bucketSize, tally, type Backend, type KernelCall, type KernelContext, type KernelTime, type MemoryStats, type Storage } from '../backend.js';
import { SCALAR_WASM, SIMD_WASM } from './binary.gen.js';

// The smallest module that uses a v128 instruction: validates only where WASM SIMD exists.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

export function wasmSimdSupported(): boolean {
  try {
    return WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

class WasmStorage implements Storage {
  released = false;
  constructor(readonly ptr: number, readonly bytes: number, readonly capacity: number) {}
}

type KernelFn = (...args: number[]) => number | void;

/** JavaScript functions a kernel may call back (FlexAttention modifiers' twins). */
export interface HostFunctions {
  scoreMod(s: number, b: number, h: number, q: number, kv: number): number;
  scoreModGrad(s: number, b: number, h: number, q: number, kv: number): number;
  maskMod(b: number, h: number, q: number, kv: number): boolean;
}

const noHost = (): never => {
  throw new KilnError('backend', 'wasm', 'a kernel called a host modifier that was not set');
};

/**
 * The CPU backend: AssemblyScript kernels in one WebAssembly instance. The host owns the heap
 * (a size-bucketed free list over linear memory); kernels run synchronously.
 */
export class WasmBackend implements Backend {
  readonly name = 'wasm' as const;
  readonly ctx: KernelContext = { f16: false, tile: { wgx: 1, wgy: 1, tm: 4, tn: 8, bk: 256 }, cpu: true };
  readonly simd: boolean;
  private readonly exports: Record<string, unknown>;
  private readonly mem: WebAssembly.Memory;
  private top: number;
  private readonly pool = new Map<number, number[]>(); // capacity -> free pointers
  private readonly uniformPtr: number;
  private readonly scratch = new Map<string, number>();
  /** Set by the op that launches a kernel with modifiers, for the duration of that call. */
  host: HostFunctions = { scoreMod: noHost, scoreModGrad: noHost, maskMod: noHost };
  private live = 0;
  private liveBytes = 0;
  private pooledBytes = 0;
  private pooledCount = 0;
  private peak = 0;

  private constructor(instance: WebAssembly.Instance, simd: boolean) {
    this.exports = instance.exports as Record<string, unknown>;
    this.mem = this.exports.memory as WebAssembly.Memory;
    this.simd = simd;
    this.top = (this.exports.heapBase as () => number)();
    this.uniformPtr = this.bump(1024);
  }

  static async create(opts: { simd?: boolean } = {}): Promise<WasmBackend> {
    return WasmBackend.createSync(opts);
  }

  /** Synchronous: the modules are small enough for WebAssembly.Module on the main thread. */
  static createSync(opts: { simd?: boolean } = {}): WasmBackend {
    const simd = opts.simd ?? wasmSimdSupported();
    const module = new WebAssembly.Module(fromBase64(simd ? SIMD_WASM : SCALAR_WASM) as BufferSource);
    let self: WasmBackend | null = null;
    const env = {
      abort: wasmAbort,
      kilnScoreMod: (s: number, b: number, h: number, q: number, kv: number) => self!.host.scoreMod(s, b, h, q, kv),
      kilnScoreModGrad: (s: number, b: number, h: number, q: number, kv: number) => self!.host.scoreModGrad(s, b, h, q, kv),
      kilnMaskMod: (b: number, h: number, q: number, kv: number) => (self!.host.maskMod(b, h, q, kv) ? 1 : 0),
    };
    const instance = new WebAssembly.Instance(module, { env });
    self = new WasmBackend(instance, simd);
    return self;
  }

  private bump(bytes: number): number {
    // a size that is not a finite count, or a heap that cannot grow, leaves `top` where it was:
    // one failed allocation must not poison every later one
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new KilnError('backend', 'wasm', `cannot allocate ${bytes} bytes`);
    const p = this.top;
    const top = p + Math.ceil(bytes / 64) * 64;
    const need = top - this.mem.buffer.byteLength;
    if (need > 0) {
      try {
        this.mem.grow(Math.ceil(need / 65536));
      } catch {
        throw new KilnError('backend', 'wasm', `out of memory growing the heap to ${top} bytes`);
      }
    }
    this.top = top;
    return p;
  }

  alloc(bytes: number): Storage {
    const cap = bucketSize(bytes);
    const free = this.pool.get(cap);
    let ptr: number;
    if (free && free.length) {
      ptr = free.pop()!;
      this.pooledBytes -= cap;
      this.pooledCount--;
    } else {
      ptr = this.bump(cap);
    }
    this.live++;
    this.liveBytes += cap;
    this.peak = Math.max(this.peak, this.liveBytes);
    return new WasmStorage(ptr, bytes, cap);
  }

  free(s: Storage): void {
    const w = s as WasmStorage;
    if (w.released) return;
    w.released = true;
    this.live--;
    this.liveBytes -= w.capacity;
    let list = this.pool.get(w.capacity);
    if (!list) this.pool.set(w.capacity, (list = []));
    list.push(w.ptr);
    this.pooledBytes += w.capacity;
    this.pooledCount++;
  }

  /** The byte address of a storage, for tests and zero-copy views. */
  ptr(s: Storage): number {
    return (s as WasmStorage).ptr;
  }

  write(s: Storage, data: ArrayBufferView, byteOffset = 0): void {
    new Uint8Array(this.mem.buffer, this.ptr(s) + byteOffset, data.byteLength).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
  }

  zero(s: Storage, byteOffset: number, bytes: number): void {
    new Uint8Array(this.mem.buffer, this.ptr(s) + byteOffset, bytes).fill(0);
  }

  readSync(s: Storage, byteOffset: number, bytes: number): ArrayBuffer {
    const p = this.ptr(s) + byteOffset;
    return this.mem.buffer.slice(p, p + bytes);
  }

  async read(s: Storage, byteOffset: number, bytes: number): Promise<ArrayBuffer> {
    return this.readSync(s, byteOffset, bytes);
  }

  run(call: KernelCall): void {
    const { kernel } = call;
    const fn = this.exports[kernel.wasm] as KernelFn | undefined;
    if (!fn) throw new KilnError('backend', call.op, `wasm kernel ${kernel.wasm} is missing`);
    new Uint32Array(this.mem.buffer, this.uniformPtr, call.uniforms.length).set(call.uniforms);
    const args: number[] = [];
    const nin = kernel.wasmInputs ?? call.inputs.length;
    for (let i = 0; i < nin; i++) args.push(i < call.inputs.length ? this.ptr(call.inputs[i].storage) : 0);
    for (const o of call.outputs) args.push(this.ptr(o.storage));
    args.push(this.uniformPtr);
    if (kernel.wasmScratch) args.push(this.scratchFor(kernel.wasmScratch));
    const t0 = this.profile ? performance.now() : 0;
    const err = fn(...args);
    if (this.profile) tally(this.profile, call, performance.now() - t0);
    if (kernel.status && err === ERR_INDEX) {
      throw new KilnError('index', call.op, 'an index is out of range for the indexed dimension');
    }
  }

  private scratchFor(fnName: string): number {
    let p = this.scratch.get(fnName);
    if (p === undefined) {
      p = this.bump((this.exports[fnName] as () => number)());
      this.scratch.set(fnName, p);
    }
    return p;
  }

  /** Kernel times while profiling (kernels run synchronously: wall time is their time). */
  private profile: Map<string, KernelTime> | null = null;

  startProfile(): void {
    this.profile = new Map();
  }

  async stopProfile(): Promise<KernelTime[]> {
    const rows = [...(this.profile?.values() ?? [])];
    this.profile = null;
    return rows;
  }

  flush(): void {}
  async sync(): Promise<void> {}

  memory(): MemoryStats {
    return { liveBuffers: this.live, liveBytes: this.liveBytes, pooledBuffers: this.pooledCount, pooledBytes: this.pooledBytes, peakLiveBytes: this.peak };
  }

  resetPeak(): void {
    this.peak = this.liveBytes;
  }

  /** Linear memory cannot shrink; pooled blocks stay reserved for reuse. */
  emptyCache(): void {}

  destroy(): void {
    this.pool.clear();
  }
}

function wasmAbort(): never {
  throw new KilnError('backend', 'wasm', 'a wasm kernel aborted');
}
