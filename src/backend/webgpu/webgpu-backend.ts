/// <reference types="@webgpu/types" />
import './gpu-types.js'; // the GPU names of the emitted declarations (see there)
import { KilnError } from '../../core/errors.js';
import { envVar } from '../../core/env.js';
import { ERR_INDEX } from '../../../assembly/layout.js';
import { bucketSize, tally, type Backend, type KernelCall, type KernelContext, type KernelTime, type MatmulTile, type MemoryStats, type Storage } from '../backend.js';

class GpuStorage implements Storage {
  released = false;
  constructor(readonly buffer: GPUBuffer, readonly bytes: number) {}
}

export interface AdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  features: string[];
  limits: Record<string, number>;
  fallback: boolean;
}

const UNIFORM_SLOT = 256; // >= minUniformBufferOffsetAlignment on every adapter
const ARENA_SLOTS = 2048;
const BIND_CACHE = 8192; // bind groups kept (cleared whole when full)
const KEY_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
] as const;

/**
 * Picks the matmul tile per adapter. GPUs get 16x16 threads with 4x4 register blocks (64x64
 * tiles); CPU adapters (SwiftShader, lavapipe) run a workgroup's threads as fibers whose barriers
 * are costly, so they get 4x4 threads (16x16 tiles): 2.7x faster there (256x64x64, measured).
 */
/**
 * Kernel schedules: 'auto' follows the adapter (CPU adapters get the schedules without workgroup
 * sharing); 'gpu' / 'cpu' force one (tests run the GPU schedules on a software adapter).
 */
export type WebGPUSchedule = 'auto' | 'gpu' | 'cpu';

export interface WebGPUOptions {
  powerPreference?: 'low-power' | 'high-performance'; // GPUPowerPreference, spelled out: a type alias would not merge (gpu-types.ts)
  schedule?: WebGPUSchedule;
}

/** Timestamps a profiling query set holds: two per dispatch. */
const PROFILE_QUERIES = 4096;

/** Whether an adapter runs shaders on the CPU (SwiftShader, lavapipe / llvmpipe, a fallback adapter). */
export const isCpuAdapter = (report: Pick<AdapterReport, 'fallback' | 'architecture' | 'vendor' | 'description'>): boolean =>
  report.fallback || /swiftshader|llvmpipe|lavapipe/i.test(`${report.architecture} ${report.vendor} ${report.description}`);

export function chooseTile(limits: GPUSupportedLimits, report?: Pick<AdapterReport, 'fallback' | 'architecture' | 'vendor' | 'description'>, cpu = report ? isCpuAdapter(report) : false): MatmulTile {
  if (cpu) return { wgx: 4, wgy: 4, tm: 4, tn: 4, bk: 16 };
  if (limits.maxComputeInvocationsPerWorkgroup >= 256 && limits.maxComputeWorkgroupStorageSize >= 16384) {
    return { wgx: 16, wgy: 16, tm: 4, tn: 4, bk: 16 };
  }
  return { wgx: 8, wgy: 8, tm: 4, tn: 4, bk: 16 };
}

export function describeAdapter(adapter: GPUAdapter): AdapterReport {
  const info = adapter.info ?? ({} as GPUAdapterInfo);
  const limits: Record<string, number> = {};
  for (const k of KEY_LIMITS) limits[k] = Number((adapter.limits as unknown as Record<string, number>)[k]);
  return {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    features: [...adapter.features].sort(),
    limits,
    fallback: Boolean((info as { isFallbackAdapter?: boolean }).isFallbackAdapter),
  };
}

/**
 * WebGPU backend. Ops record dispatches into one compute pass of one command encoder; work is
 * submitted only at a readback, an explicit flush, or when the uniform arena fills. Uniforms
 * of all dispatches in a submission live in one arena buffer written just before submit, so
 * queue order keeps every dispatch's parameters intact.
 */
export class WebGPUBackend implements Backend {
  readonly name = 'webgpu' as const;
  readonly ctx: KernelContext;
  readonly report: AdapterReport;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly arena: GPUBuffer;
  private readonly arenaCpu = new Uint8Array(UNIFORM_SLOT * ARENA_SLOTS);
  private slots = 0;
  private readonly status: GPUBuffer;
  private statusDirty = false;
  private readonly pool = new Map<number, GPUBuffer[]>();
  private stagingToDestroy: GPUBuffer[] = [];
  private compileErrors: Promise<string | null>[] = [];
  private lostReason: string | null = null;
  private live = 0;
  private liveBytes = 0;
  private pooledCount = 0;
  private peak = 0;
  private pooledBytes = 0;
  /** dispatches recorded since the last submit */
  pending = 0;
  /** submits so far (tests check that ops are batched) */
  submits = 0;
  /** bytes read back so far (tests check that generation reads back only the tokens) */
  readBytes = 0;
  /** Prints each generated WGSL kernel as it is compiled (also set by KILN_DEBUG_WGSL=1). */
  debugWgsl = envVar('KILN_DEBUG_WGSL') === '1';

  /** The GPU object must outlive the device: Dawn in Node crashes if it is collected. */
  private gpu: GPU | null = null;

  constructor(readonly device: GPUDevice, adapter: GPUAdapter, schedule: WebGPUSchedule = 'auto') {
    this.report = describeAdapter(adapter);
    const cpu = schedule === 'auto' ? isCpuAdapter(this.report) : schedule === 'cpu';
    this.ctx = { f16: device.features.has('shader-f16'), tile: chooseTile(device.limits, this.report, cpu), cpu };
    this.arena = device.createBuffer({ size: this.arenaCpu.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.status = device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    void device.lost.then((info) => {
      this.lostReason = `${info.reason}: ${info.message}`;
    });
  }

  /** Requests an adapter and a device with the adapter's full limits. */
  static async create(gpu: GPU, opts: WebGPUOptions = {}): Promise<WebGPUBackend> {
    const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
    if (!adapter) throw new KilnError('backend', 'webgpu', 'requestAdapter() returned null: no WebGPU adapter is available');
    const requiredFeatures: GPUFeatureName[] = [];
    for (const f of ['shader-f16', 'timestamp-query', 'subgroups'] as GPUFeatureName[]) if (adapter.features.has(f)) requiredFeatures.push(f);
    const requiredLimits: Record<string, number> = {};
    for (const k of KEY_LIMITS) if (!k.startsWith('min')) requiredLimits[k] = (adapter.limits as unknown as Record<string, number>)[k];
    const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
    const backend = new WebGPUBackend(device, adapter, opts.schedule);
    backend.gpu = gpu;
    return backend;
  }

  private check(op: string): void {
    if (this.lostReason) throw new KilnError('backend', op, `the WebGPU device was lost (${this.lostReason})`);
  }

  alloc(bytes: number): Storage {
    this.check('alloc');
    const size = bucketSize(bytes);
    if (size > this.device.limits.maxBufferSize) {
      throw new KilnError('backend', 'alloc', `${bytes} bytes exceed this adapter's maxBufferSize (${this.device.limits.maxBufferSize})`);
    }
    const free = this.pool.get(size);
    let buffer = free?.pop();
    if (buffer) {
      this.pooledCount--;
      this.pooledBytes -= size;
    } else {
      buffer = this.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    }
    this.live++;
    this.liveBytes += size;
    this.peak = Math.max(this.peak, this.liveBytes);
    return new GpuStorage(buffer, bytes);
  }

  /** Returns a buffer to the pool. Safe with work still recorded: later uses run after it in queue order. */
  free(s: Storage): void {
    const g = s as GpuStorage;
    if (g.released) return;
    g.released = true;
    const size = g.buffer.size;
    this.live--;
    this.liveBytes -= size;
    let list = this.pool.get(size);
    if (!list) this.pool.set(size, (list = []));
    list.push(g.buffer);
    this.pooledCount++;
    this.pooledBytes += size;
  }

  write(s: Storage, data: ArrayBufferView, byteOffset = 0): void {
    this.check('write');
    const buf = (s as GpuStorage).buffer;
    const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    const size = Math.ceil(bytes.byteLength / 4) * 4;
    if (this.pending === 0) {
      // nothing recorded can touch this buffer: write straight through the queue
      if (size === bytes.byteLength) this.device.queue.writeBuffer(buf, byteOffset, bytes);
      else { const padded = new Uint8Array(size); padded.set(bytes); this.device.queue.writeBuffer(buf, byteOffset, padded); }
      return;
    }
    // Recorded work may still read this (pooled) buffer: copy in encoder order instead.
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.COPY_SRC, mappedAtCreation: true });
    new Uint8Array(staging.getMappedRange()).set(bytes);
    staging.unmap();
    this.endPass().copyBufferToBuffer(staging, 0, buf, byteOffset, size);
    this.stagingToDestroy.push(staging);
  }

  zero(s: Storage, byteOffset: number, bytes: number): void {
    this.endPass().clearBuffer((s as GpuStorage).buffer, byteOffset, Math.ceil(bytes / 4) * 4);
    this.pending++;
  }

  private getEncoder(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  private endPass(): GPUCommandEncoder {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    return this.getEncoder();
  }

  private pipeline(call: KernelCall): GPUComputePipeline {
    const key = `${call.kernel.name}|${call.variant}`;
    let p = this.pipelines.get(key);
    if (!p) {
      const code = call.kernel.wgsl(call.variant, this.ctx);
      if (this.debugWgsl) console.log(`// ${key}\n${code}`);
      this.device.pushErrorScope('validation');
      const module = this.device.createShaderModule({ code, label: key });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: key });
      const lines = code.split('\n');
      this.compileErrors.push(
        Promise.all([this.device.popErrorScope(), module.getCompilationInfo()]).then(([e, info]) => {
          if (!e) return null;
          const msgs = info.messages
            .filter((m) => m.type === 'error')
            .map((m) => (m.lineNum > 0 ? `  line ${m.lineNum}: ${m.message}\n    ${lines[m.lineNum - 1]?.trim()}` : `  ${m.message.trim()}`));
          return `${call.op}: WGSL kernel ${key} failed to compile:\n${msgs.join('\n') || e.message}`;
        }),
      );
      this.pipelines.set(key, p);
    }
    return p;
  }

  run(call: KernelCall): void {
    this.check(call.op);
    if (this.slots === ARENA_SLOTS || (this.prof && this.prof.calls.length * 2 === PROFILE_QUERIES)) this.flush();
    const pipeline = this.pipeline(call);
    const slot = this.slots++;
    const u = call.uniforms;
    new Uint32Array(this.arenaCpu.buffer, slot * UNIFORM_SLOT, u.length).set(u);
    if (call.kernel.status) this.statusDirty = true;
    const bind = this.bindGroup(pipeline, call, slot);
    if (this.prof) {
      // profiling: a pass of its own, timestamped at both ends
      const i = this.prof.calls.push(call) - 1;
      this.endPass();
      this.pass = this.getEncoder().beginComputePass({ timestampWrites: { querySet: this.prof.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
    } else if (!this.pass) this.pass = this.getEncoder().beginComputePass();
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bind);
    this.pass.dispatchWorkgroups(call.grid[0], call.grid[1], call.grid[2]);
    if (this.prof) this.endPass();
    this.pending++;
  }

  /**
   * Bind groups by pipeline, buffers and uniform slot. Decoding repeats the same dispatches on
   * the same pooled buffers step after step, so most are found here instead of made again (the
   * largest share of a dispatch's CPU cost). Pooled buffers live until emptyCache, which clears it.
   */
  private binds = new Map<string, GPUBindGroup>();
  private bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 0;

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) this.bufferIds.set(b, (id = this.nextBufferId++));
    return id;
  }

  private bindGroup(pipeline: GPUComputePipeline, call: KernelCall, slot: number): GPUBindGroup {
    const size = Math.ceil((call.uniforms.length * 4) / 16) * 16;
    let key = `${call.kernel.name}|${call.variant}|${slot}|${size}`;
    for (const v of call.inputs) key += `|${this.bufferId((v.storage as GpuStorage).buffer)}`;
    for (const v of call.outputs) key += `|${this.bufferId((v.storage as GpuStorage).buffer)}`;
    let bind = this.binds.get(key);
    if (bind) return bind;
    const entries: GPUBindGroupEntry[] = [];
    let b = 0;
    for (const v of call.inputs) entries.push({ binding: b++, resource: { buffer: (v.storage as GpuStorage).buffer } });
    for (const v of call.outputs) entries.push({ binding: b++, resource: { buffer: (v.storage as GpuStorage).buffer } });
    entries.push({ binding: b++, resource: { buffer: this.arena, offset: slot * UNIFORM_SLOT, size } });
    if (call.kernel.status) entries.push({ binding: b++, resource: { buffer: this.status } });
    bind = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    if (this.binds.size >= BIND_CACHE) this.binds.clear();
    this.binds.set(key, bind);
    return bind;
  }

  /** While profiling: the timestamp queries, the calls they time, the table they add up to. */
  private prof: { set: GPUQuerySet; calls: KernelCall[]; table: Map<string, KernelTime>; reads: Promise<void>[] } | null = null;

  startProfile(): void {
    if (!this.device.features.has('timestamp-query')) throw new KilnError('backend', 'profile', 'this adapter has no timestamp-query feature: WebGPU kernels cannot be timed');
    this.flush();
    this.prof = { set: this.device.createQuerySet({ type: 'timestamp', count: PROFILE_QUERIES }), calls: [], table: new Map(), reads: [] };
  }

  async stopProfile(): Promise<KernelTime[]> {
    if (!this.prof) return [];
    this.flush();
    const p = this.prof;
    this.prof = null;
    await Promise.all(p.reads);
    p.set.destroy();
    return [...p.table.values()];
  }

  /** Copies this submit's timestamps out; they are added to the table once they can be read. */
  private resolveProfile(enc: GPUCommandEncoder): (() => void) | null {
    const p = this.prof;
    if (!p || !p.calls.length) return null;
    const n = p.calls.length * 2;
    const resolved = this.device.createBuffer({ size: n * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const readable = this.device.createBuffer({ size: n * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    enc.resolveQuerySet(p.set, 0, n, resolved, 0);
    enc.copyBufferToBuffer(resolved, 0, readable, 0, n * 8);
    const calls = p.calls;
    p.calls = [];
    return () => {
      p.reads.push(
        readable.mapAsync(GPUMapMode.READ).then(() => {
          const t = new BigUint64Array(readable.getMappedRange());
          calls.forEach((c, i) => tally(p.table, c, Number(t[2 * i + 1] - t[2 * i]) / 1e6));
          readable.destroy();
          resolved.destroy();
        }),
      );
    };
  }

  flush(): void {
    if (!this.encoder) return;
    const afterSubmit = this.resolveProfile(this.endPass());
    if (this.slots) this.device.queue.writeBuffer(this.arena, 0, this.arenaCpu, 0, this.slots * UNIFORM_SLOT);
    this.device.queue.submit([this.encoder.finish()]);
    afterSubmit?.();
    this.submits++;
    this.encoder = null;
    this.slots = 0;
    this.pending = 0;
    for (const s of this.stagingToDestroy) s.destroy();
    this.stagingToDestroy = [];
  }

  private async throwCompileErrors(): Promise<void> {
    if (!this.compileErrors.length) return;
    const errs = (await Promise.all(this.compileErrors)).filter((e): e is string => e !== null);
    this.compileErrors = [];
    if (errs.length) throw new KilnError('backend', 'webgpu', errs.join('\n'));
  }

  async read(s: Storage, byteOffset: number, bytes: number): Promise<ArrayBuffer> {
    this.check('read');
    const start = byteOffset & ~3;
    const size = Math.max(4, Math.ceil((byteOffset + bytes - start) / 4) * 4);
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.readBytes += bytes;
    const enc = this.endPass();
    enc.copyBufferToBuffer((s as GpuStorage).buffer, start, staging, 0, size);
    let statusStaging: GPUBuffer | null = null;
    if (this.statusDirty) {
      statusStaging = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      enc.copyBufferToBuffer(this.status, 0, statusStaging, 0, 16);
      enc.clearBuffer(this.status, 0, 16);
      this.statusDirty = false;
    }
    this.flush();
    await this.throwCompileErrors();
    await staging.mapAsync(GPUMapMode.READ);
    const out = staging.getMappedRange().slice(byteOffset - start, byteOffset - start + bytes);
    staging.destroy();
    if (statusStaging) {
      await statusStaging.mapAsync(GPUMapMode.READ);
      const code = new Uint32Array(statusStaging.getMappedRange())[0];
      statusStaging.destroy();
      if (code === ERR_INDEX) throw new KilnError('index', 'webgpu', 'an index was out of range in a gather, scatter or cross-entropy kernel since the last readback (its outputs hold zeros there)');
    }
    this.check('read');
    return out;
  }

  async sync(): Promise<void> {
    this.flush();
    await this.throwCompileErrors();
    await this.device.queue.onSubmittedWorkDone();
    this.check('sync');
  }

  memory(): MemoryStats {
    return { liveBuffers: this.live, liveBytes: this.liveBytes, pooledBuffers: this.pooledCount, pooledBytes: this.pooledBytes, peakLiveBytes: this.peak };
  }

  resetPeak(): void {
    this.peak = this.liveBytes;
  }

  emptyCache(): void {
    this.flush();
    this.binds.clear(); // they may name the buffers destroyed here
    for (const list of this.pool.values()) for (const b of list) b.destroy();
    this.pool.clear();
    this.pooledBytes = 0;
    this.pooledCount = 0;
  }

  destroy(): void {
    this.emptyCache();
    this.device.destroy();
  }
}
