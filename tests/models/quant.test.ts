// Quantized weights kept on the device (Q8_0, Q4_0, Q4_K, Q6_K): the matmul that dequantizes on the
// fly and the dequantize kernel against the GGUF reader's dequantizer or x @ dequant(W)^T (both
// backends: the WGSL kernels and their AssemblyScript twins), the gradient to x, and whole models
// (GGUF kept as stored, quantize: 'q8_0' / 'q4_0') against their PyTorch goldens.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { KilnError } from '../../src/core/errors.js';
import { loadModel } from '../../src/models/load.js';
import { dequantize, fromGGUF, qlinear, qWeight, quantizeQ4, quantizeQ8, type QuantType } from '../../src/nn/quant.js';
import { dequantize as ggufDequantize } from '../../src/models/loaders/gguf.js';
import { f32ToF16Bits } from '../../src/core/dtype.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';

const dir = new URL('../golden/checkpoints/', import.meta.url).pathname;
const maxAbs = (xs: ArrayLike<number>): number => Array.from(xs).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describeBackends('Quantized weights', (ctx) => {
  it('the fused dequantizing matmul equals x @ dequant(W)^T', async () => {
    const N = 48;
    const K = 96;
    const w = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
    const q = quantizeQ8(w, N, K);
    // the dequantized reference, from the packed bytes
    const bytes = new Int8Array(q.qs.buffer);
    const deq = Float32Array.from({ length: N * K }, (_, i) => bytes[i] * q.scales[Math.floor(i / 32)]);
    expect(maxAbs(deq.map((v, i) => v - w[i]))).toBeLessThan(maxAbs(w) / 127);
    const qw = qWeight(q, N, K);
    for (const M of [1, 5]) {
      const x = k.tensor(Array.from({ length: M * K }, (_, i) => Math.cos(i * 0.11)), { shape: [1, M, K] });
      const bias = k.tensor(Array.from({ length: N }, (_, i) => i * 0.01));
      const got = await k.noGrad(() => qlinear(x, qw, bias)).toArray();
      const want = await k.linear(x, k.tensor(deq, { shape: [N, K] }), bias).toArray();
      assertClose(got, want, { atol: 1e-4, rtol: 1e-5 }, `M=${M}`);
    }
    expect(() => qlinear(k.tensor([[1, 2]]), qWeight(quantizeQ8(new Float32Array(64), 2, 32), 2, 32))).toThrow(KilnError);
    void ctx;
  });

  it('Q4_0: the fused matmul equals x @ dequant(W)^T (llama.cpp nibble layout)', async () => {
    const N = 40;
    const K = 64;
    const w = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.53) * (1 + (i % 5)));
    const q = quantizeQ4(w, N, K);
    const bytes = new Uint8Array(q.qs.buffer);
    const deq = Float32Array.from({ length: N * K }, (_, i) => {
      const b = Math.floor(i / 32);
      const j = i % 32;
      const v = bytes[b * 16 + (j % 16)];
      return ((j < 16 ? v & 15 : v >> 4) - 8) * q.scales[b];
    });
    // 4 bits: within a step of each block's scale
    expect(Math.max(...deq.map((v, i) => Math.abs(v - w[i]) / (Math.abs(q.scales[Math.floor(i / 32)]) + 1e-12)))).toBeLessThanOrEqual(1.0001);
    const qw = qWeight(q, N, K, undefined, 'q4_0');
    for (const M of [1, 3]) {
      const x = k.tensor(Array.from({ length: M * K }, (_, i) => Math.cos(i * 0.21)), { shape: [M, K] });
      const got = await k.noGrad(() => qlinear(x, qw)).toArray();
      const want = await k.linear(x, k.tensor(deq, { shape: [N, K] })).toArray();
      assertClose(got, want, { atol: 1e-4, rtol: 1e-5 }, `q4 M=${M}`);
    }
    // the GGUF model with 4-bit projections: GGUF Q4_0 taken as is, the rest requantized
    const gg = JSON.parse(readFileSync(join(dir, 'gguf', 'golden.json'), 'utf8'));
    const { model } = await loadModel(join(dir, 'gguf', 'tiny-llama.gguf'), { quantize: 'q4_0' });
    const { logits } = k.noGrad(() => model.call({ inputIds: k.tensor(gg.ids.data, { shape: gg.ids.shape, dtype: 'i32' }) }) as { logits: Tensor });
    assertClose(await logits.toArray(), gg.logits.data, { atol: 0.15 * maxAbs(gg.logits.data), rtol: 0 }, 'gguf q4_0 logits');
  });

  // GGUF blocks of every kept format, from seeded random bytes (any bytes are a valid block once
  // its f16 scales are finite), against the GGUF reader's dequantizer (checked against PyTorch)
  const GGUF_BLOCK: Record<QuantType, [number, number, number[]]> = { q8_0: [32, 34, [0]], q4_0: [32, 18, [0]], q4_k: [256, 144, [0, 2]], q6_k: [256, 210, [208]] };
  function randomBlocks(type: QuantType, N: number, K: number): Uint8Array {
    const [elems, bytes, scaleAt] = GGUF_BLOCK[type];
    let seed = 12345;
    const next = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16;
    const raw = Uint8Array.from({ length: ((N * K) / elems) * bytes }, () => next() & 255);
    const dv = new DataView(raw.buffer);
    for (let b = 0; b < (N * K) / elems; b++) for (const o of scaleAt) dv.setUint16(b * bytes + o, f32ToF16Bits(((next() % 200) - 100) / 2000), true);
    return raw;
  }

  for (const type of ['q8_0', 'q4_0', 'q4_k', 'q6_k'] as const) {
    it(`${type} blocks from GGUF, kept as they are: the fused matmul and dequantize equal the GGUF dequantizer; dx flows back`, async () => {
      const [N, K] = [24, 512];
      const raw = randomBlocks(type, N, K);
      const deq = ggufDequantize(raw, type.toUpperCase(), N * K);
      const w = qWeight(fromGGUF(type, raw, N, K), N, K, undefined, type);
      assertClose(await dequantize(w).toArray(), deq, { atol: 0, rtol: 1e-6 }, `${type} dequantize`);
      const wt = k.tensor(deq, { shape: [N, K] });
      for (const M of [1, 3, 20]) { // 20 rows: dequantized once, then the tiled matmul
        const xs = Array.from({ length: M * K }, (_, i) => Math.cos(i * 0.13));
        const got = await k.noGrad(() => qlinear(k.tensor(xs, { shape: [M, K] }), w)).toArray();
        const want = await k.linear(k.tensor(xs, { shape: [M, K] }), wt).toArray();
        assertClose(got, want, { atol: 1e-4 * maxAbs(want), rtol: 0 }, `${type} M=${M}`);
      }
      if (ctx.name === 'webgpu') {
        // the GPU schedule (a workgroup per weight row), which this software adapter does not pick itself
        const g = await k.createBackend('webgpu', { schedule: 'gpu' });
        const wg = qWeight(fromGGUF(type, raw, N, K), N, K, g, type);
        for (const M of [1, 6]) {
          const xs = Array.from({ length: M * K }, (_, i) => Math.cos(i * 0.13));
          const got = await k.noGrad(() => qlinear(k.tensor(xs, { shape: [M, K], backend: g }), wg)).toArray();
          const want = await k.linear(k.tensor(xs, { shape: [M, K] }), wt).toArray();
          assertClose(got, want, { atol: 1e-4 * maxAbs(want), rtol: 0 }, `${type} GPU schedule M=${M}`);
        }
      }
      // the weight is frozen; x gets dy @ dequant(W)
      const x = k.tensor(Array.from({ length: 2 * K }, (_, i) => Math.sin(i * 0.07)), { shape: [2, K], requiresGrad: true });
      const dy = k.tensor(Array.from({ length: 2 * N }, (_, i) => (i % 5) - 2), { shape: [2, N] });
      k.sum(k.mul(qlinear(x, w), dy)).backward();
      const x2 = k.tensor(await x.toArray(), { shape: [2, K], requiresGrad: true });
      k.sum(k.mul(k.linear(x2, wt), dy)).backward();
      const want = await x2.grad!.toArray();
      assertClose(await x.grad!.toArray(), want, { atol: 1e-5 * maxAbs(want), rtol: 0 }, `${type} dx`);
    });
  }

  it('a GGUF file loads with its quantized weights kept in their own formats: less memory, the reference logits', async () => {
    const backend = ctx.backend;
    const tol = (ctx.name === 'wasm' ? 1e-4 : 1e-3);
    for (const [file, golden, kept] of [['tiny-llama.gguf', 'golden.json', 7], ['tiny-qwen2.gguf', 'golden-qwen2.json', 8]] as const) {
      const gg = JSON.parse(readFileSync(join(dir, 'gguf', golden), 'utf8'));
      const at = backend.memory().liveBytes;
      const full = await loadModel(join(dir, 'gguf', file), { quantize: 'none' });
      const fullBytes = backend.memory().liveBytes - at;
      const at2 = backend.memory().liveBytes;
      const { model } = await loadModel(join(dir, 'gguf', file));
      const keptBytes = backend.memory().liveBytes - at2;
      const types = [...model.namedModules()].flatMap(([, m]) => (m instanceof k.nn.Linear && m.quantized ? [m.quantized.type] : []));
      expect(types.length).toBe(kept); // Q4_0 o_proj, Q8_0 v/down, Q4_K q/gate, Q6_K k/up (and lm_head in qwen2)
      expect(new Set(types)).toEqual(new Set(['q8_0', 'q4_0', 'q4_k', 'q6_k']));
      expect(keptBytes / fullBytes).toBeLessThan(file === 'tiny-llama.gguf' ? 0.6 : 0.45);
      const inputIds = k.tensor(gg.ids.data, { shape: gg.ids.shape, dtype: 'i32' });
      const { logits } = model.call({ inputIds }) as { logits: Tensor };
      assertClose(await logits.toArray(), gg.logits.data, { atol: tol * maxAbs(gg.logits.data), rtol: 0 }, `${file} kept quantized`);
      const { logits: fl } = full.model.call({ inputIds }) as { logits: Tensor };
      assertClose(await fl.toArray(), gg.logits.data, { atol: tol * maxAbs(gg.logits.data), rtol: 0 }, `${file} dequantized`);
      for (const m of [model, full.model]) for (const [, t] of [...m.namedParameters(), ...m.namedBuffers()]) t.dispose();
    }
  });

  it('models loaded with quantize q8_0: the projections take under half the memory, logits within 3% of the largest', async () => {
    const backend = ctx.backend;
    // the tiny HF checkpoints have rows of 16 and 24: no whole Q8_0 blocks, so they stay float
    const g = JSON.parse(readFileSync(join(dir, 'llama', 'golden.json'), 'utf8'));
    const tiny = await loadModel(join(dir, 'llama'), { quantize: 'q8_0' });
    const { logits: tl } = k.noGrad(() => tiny.model.call({ inputIds: k.tensor(g.ids.data, { shape: g.ids.shape, dtype: 'i32' }) }) as { logits: Tensor });
    assertClose(await tl.toArray(), g.logits.data, { atol: 1e-3 * maxAbs(g.logits.data), rtol: 0 }, 'unquantizable rows stay float');
    const path = join(dir, 'gguf', 'tiny-llama.gguf');
    const at = backend.memory().liveBytes;
    await loadModel(path, { quantize: 'none' });
    const fullBytes = backend.memory().liveBytes - at;
    const at2 = backend.memory().liveBytes;
    // the GGUF file: its Q8_0 tensors are taken as they are, the others quantized from their values
    const gg = JSON.parse(readFileSync(join(dir, 'gguf', 'golden.json'), 'utf8'));
    const { model } = await loadModel(path, { quantize: 'q8_0' });
    const qBytes = backend.memory().liveBytes - at2;
    expect(qBytes / fullBytes).toBeLessThan(0.5);
    const q = [...model.namedModules()].filter(([, m]) => m instanceof k.nn.Linear && (m as k.nn.Linear).quantized).length;
    expect(q).toBe(7);
    const { logits } = k.noGrad(() => model.call({ inputIds: k.tensor(gg.ids.data, { shape: gg.ids.shape, dtype: 'i32' }) }) as { logits: Tensor });
    assertClose(await logits.toArray(), gg.logits.data, { atol: 0.03 * maxAbs(gg.logits.data), rtol: 0 }, 'gguf q8_0 logits');
  });
});
