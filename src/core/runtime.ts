/// <reference types="@webgpu/types" />
import type { Backend, BackendName } from '../backend/backend.js';
import { WasmBackend, wasmSimdSupported } from '../backend/wasm/wasm-backend.js';
import { WebGPUBackend, describeAdapter, type AdapterReport, type WebGPUOptions } from '../backend/webgpu/webgpu-backend.js';
import { KilnError } from './errors.js';
import { isNode, nodeGpu } from '../backend/webgpu/node-gpu.js';

let current: Backend | null = null;
const instances = new Map<BackendName, Backend>();
let gpuProvider: (() => Promise<GPU | undefined>) | null = isNode() ? nodeGpu : null;

/** Supplies navigator.gpu where the runtime has none of its own (Node: the `webgpu` package). */
export function setGpuProvider(p: () => Promise<GPU | undefined>): void {
  gpuProvider = p;
}

async function findGpu(): Promise<{ gpu?: GPU; why?: string }> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu };
  if (gpuProvider) {
    try {
      const gpu = await gpuProvider();
      if (gpu) return { gpu };
      return { why: 'the WebGPU provider returned nothing' };
    } catch (e) {
      return { why: `loading WebGPU failed: ${(e as Error).message}` };
    }
  }
  return { why: 'this runtime has no navigator.gpu (WebGPU is not exposed here)' };
}

export interface BackendProbe {
  webgpu: { available: boolean; adapter?: AdapterReport; reason?: string };
  wasm: { available: true; simd: boolean };
}

/** Looks for a WebGPU adapter and WASM SIMD without creating a device. */
export async function probeBackends(): Promise<BackendProbe> {
  const wasm = { available: true as const, simd: wasmSimdSupported() };
  const { gpu, why } = await findGpu();
  if (!gpu) return { webgpu: { available: false, reason: why }, wasm };
  try {
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) {
      return {
        webgpu: {
          available: false,
          reason: 'navigator.gpu exists but requestAdapter() returned null: no usable GPU or software adapter (on Linux without a GPU, point VK_ICD_FILENAMES at a SwiftShader or lavapipe ICD)',
        },
        wasm,
      };
    }
    return { webgpu: { available: true, adapter: describeAdapter(adapter) }, wasm };
  } catch (e) {
    return { webgpu: { available: false, reason: `requestAdapter() failed: ${(e as Error).message}` }, wasm };
  }
}

export interface InitResult {
  backend: Backend;
  /** Why WebGPU was not used, when 'auto' fell back to wasm. */
  fallbackReason?: string;
}

/**
 * Creates (once) and selects a backend. 'auto' takes WebGPU when an adapter exists and says why
 * not otherwise; 'webgpu' fails with a KilnError when none can be had.
 */
export async function init(which: BackendName | 'auto' = 'auto'): Promise<InitResult> {
  if (which === 'wasm') return { backend: use(await createBackend('wasm')) };
  try {
    return { backend: use(await createBackend('webgpu')) };
  } catch (e) {
    if (which === 'webgpu') throw e;
    const reason = (e as Error).message;
    return { backend: use(await createBackend('wasm')), fallbackReason: reason };
  }
}

/**
 * The backend instance of that name, created on first use. WebGPU options make a new instance
 * of its own (not the shared one).
 */
export async function createBackend(name: BackendName, webgpu?: WebGPUOptions): Promise<Backend> {
  let b = webgpu ? undefined : instances.get(name);
  if (b) return b;
  if (name === 'wasm') b = await WasmBackend.create();
  else {
    const { gpu, why } = await findGpu();
    if (!gpu) throw new KilnError('backend', 'webgpu', `no WebGPU: ${why}`);
    b = await WebGPUBackend.create(gpu, webgpu);
  }
  if (!webgpu) instances.set(name, b);
  return b;
}

/** Makes b the default backend for new tensors. */
export function use(b: Backend): Backend {
  current = b;
  return b;
}

/** The default backend; the wasm backend is created synchronously if none was chosen. */
export function getBackend(): Backend {
  if (!current) {
    let w = instances.get('wasm');
    if (!w) instances.set('wasm', (w = WasmBackend.createSync()));
    current = w;
  }
  return current;
}
