// The profiler: time spent in each kernel while a function runs. WebGPU times each dispatch on
// the GPU with timestamp queries (each then runs in a pass of its own, so batching changes a
// little); wasm kernels run synchronously and are timed by the clock.
import type { Backend, KernelTime } from '../backend/backend.js';
import { getBackend } from './runtime.js';

export interface ProfileRow extends KernelTime {
  /** this kernel's share of the kernels' total time */
  share: number;
}

export interface Profile<T> {
  result: T;
  /** kernels by total time, longest first */
  kernels: ProfileRow[];
  /** the kernels' time, summed */
  kernelMs: number;
  /** wall time of fn, its kernels included */
  wallMs: number;
}

/** Runs fn (sync or async) with every kernel it launches on `backend` timed. */
export async function profile<T>(fn: () => T | Promise<T>, backend: Backend = getBackend()): Promise<Profile<T>> {
  await backend.sync();
  backend.startProfile();
  const t0 = performance.now();
  let result: T;
  try {
    result = await fn();
    await backend.sync();
  } catch (e) {
    await backend.stopProfile();
    throw e;
  }
  const wallMs = performance.now() - t0;
  const rows = await backend.stopProfile();
  const kernelMs = rows.reduce((a, r) => a + r.ms, 0);
  const kernels = rows.map((r) => ({ ...r, share: kernelMs ? r.ms / kernelMs : 0 })).sort((a, b) => b.ms - a.ms);
  return { result, kernels, kernelMs, wallMs };
}

/** A profile as a text table (the longest `top` kernels). */
export function formatProfile(p: Pick<Profile<unknown>, 'kernels' | 'kernelMs' | 'wallMs'>, top = 20): string {
  const lines = p.kernels.slice(0, top).map((r) => `${r.ms.toFixed(3).padStart(10)} ms ${(100 * r.share).toFixed(1).padStart(5)}% ${String(r.calls).padStart(6)} calls  ${r.key}`);
  return [`kernels ${p.kernelMs.toFixed(3)} ms of ${p.wallMs.toFixed(3)} ms wall`, ...lines].join('\n');
}
