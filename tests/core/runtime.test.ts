// Backend selection: 'auto' takes WebGPU when an adapter exists, and when none can be had it
// says why and falls back to wasm; 'webgpu' then fails with a typed error.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('runtime selection', () => {
  it('explains a missing adapter and falls back to wasm', async () => {
    // a WebGPU implementation that has no adapter to offer (a GPU-less browser, say)
    k.setGpuProvider(async () => ({ requestAdapter: async () => null }) as unknown as GPU);
    const probe = await k.probeBackends();
    expect(probe.webgpu.available).toBe(false);
    expect(probe.webgpu.reason).toMatch(/requestAdapter\(\) returned null/);
    const { backend, fallbackReason } = await k.init('auto');
    expect(backend.name).toBe('wasm');
    expect(fallbackReason).toMatch(/no WebGPU adapter/);
    await expect(k.init('webgpu')).rejects.toThrow(k.KilnError);
    // and the fallback computes: wasm matmul against the values by hand
    expect(Array.from(k.matmul(k.tensor([[1, 2]]), k.tensor([[3], [4]])).toArraySync())).toEqual([11]);
  });

  it('kiln info reports the adapter, its features and limits, and WASM SIMD', () => {
    const out = execFileSync(process.execPath, ['bin/kiln.mjs', 'info', '--json'], { cwd: root, encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } });
    const info = JSON.parse(out);
    expect(info.webgpu.available).toBe(true);
    expect(info.webgpu.adapter.features).toContain('subgroups');
    expect(info.webgpu.adapter.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(64);
    expect(info.wasm).toEqual({ available: true, simd: true });
    const text = execFileSync(process.execPath, ['bin/kiln.mjs', 'info'], { cwd: root, encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } });
    expect(text).toMatch(/shader-f16=(yes|no)\s+subgroups=yes/);
    expect(text).toMatch(/wasm: SIMD available/);
  });

  it('the scalar wasm build (no SIMD) computes the same matmul', () => {
    const scalar = k.WasmBackend.createSync({ simd: false });
    const simd = k.WasmBackend.createSync({ simd: true });
    const g = new k.Generator(1);
    const a = Array.from({ length: 37 * 23 }, () => g.normal());
    const b = Array.from({ length: 23 * 29 }, () => g.normal());
    const run = (be: k.Backend) => k.matmul(k.tensor(a, { shape: [37, 23], backend: be }), k.tensor(b, { shape: [23, 29], backend: be })).toArraySync();
    const x = run(scalar);
    const y = run(simd);
    for (let i = 0; i < x.length; i++) expect(Math.abs(x[i] - y[i])).toBeLessThan(1e-4);
  });
});
