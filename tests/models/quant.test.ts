// Q8_0 weights kept quantized on the device: the matmul that dequantizes on the fly against the
// same matmul on the dequantized weights (both backends, the WGSL kernel and its AssemblyScript
// twin), and whole models loaded with quantize: 'q8_0' against their PyTorch goldens.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { KilnError } from '../../src/core/errors.js';
import { loadModel } from '../../src/models/load.js';
import { qlinear, q8Weight, quantizeQ4, quantizeQ8 } from '../../src/nn/quant.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';

const dir = new URL('../golden/checkpoints/', import.meta.url).pathname;
const maxAbs = (xs: ArrayLike<number>): number => Array.from(xs).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describeBackends('Q8_0', (ctx) => {
  it('the fused dequantizing matmul equals x @ dequant(W)^T', async () => {
    const N = 48;
    const K = 96;
    const w = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
    const q = quantizeQ8(w, N, K);
    // the dequantized reference, from the packed bytes
    const bytes = new Int8Array(q.qs.buffer);
    const deq = Float32Array.from({ length: N * K }, (_, i) => bytes[i] * q.scales[Math.floor(i / 32)]);
    expect(maxAbs(deq.map((v, i) => v - w[i]))).toBeLessThan(maxAbs(w) / 127);
    const qw = q8Weight(q, N, K);
    for (const M of [1, 5]) {
      const x = k.tensor(Array.from({ length: M * K }, (_, i) => Math.cos(i * 0.11)), { shape: [1, M, K] });
      const bias = k.tensor(Array.from({ length: N }, (_, i) => i * 0.01));
      const got = await k.noGrad(() => qlinear(x, qw, bias)).toArray();
      const want = await k.linear(x, k.tensor(deq, { shape: [N, K] }), bias).toArray();
      assertClose(got, want, { atol: 1e-4, rtol: 1e-5 }, `M=${M}`);
    }
    expect(() => qlinear(k.tensor([[1, 2]], { requiresGrad: true }), q8Weight(quantizeQ8(new Float32Array(64), 2, 32), 2, 32))).toThrow(KilnError);
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
    const qw = q8Weight(q, N, K, undefined, 'q4_0');
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

  it('models loaded with quantize q8_0: the projections take under half the memory, logits within 3% of the largest', async () => {
    const backend = ctx.backend;
    // the tiny HF checkpoints have rows of 16 and 24: no whole Q8_0 blocks, so they stay float
    const g = JSON.parse(readFileSync(join(dir, 'llama', 'golden.json'), 'utf8'));
    const tiny = await loadModel(join(dir, 'llama'), { quantize: 'q8_0' });
    const { logits: tl } = k.noGrad(() => tiny.model.call({ inputIds: k.tensor(g.ids.data, { shape: g.ids.shape, dtype: 'i32' }) }) as { logits: Tensor });
    assertClose(await tl.toArray(), g.logits.data, { atol: 1e-3 * maxAbs(g.logits.data), rtol: 0 }, 'unquantizable rows stay float');
    const path = join(dir, 'gguf', 'tiny-llama.gguf');
    const at = backend.memory().liveBytes;
    await loadModel(path);
    const fullBytes = backend.memory().liveBytes - at;
    const at2 = backend.memory().liveBytes;
    // the GGUF file: its Q8_0 tensors are taken as they are, the others quantized from their values
    const gg = JSON.parse(readFileSync(join(dir, 'gguf', 'golden.json'), 'utf8'));
    const { model } = await loadModel(path, { quantize: 'q8_0' });
    const qBytes = backend.memory().liveBytes - at2;
    expect(qBytes / fullBytes).toBeLessThan(0.5);
    const q = [...model.namedModules()].filter(([, m]) => m instanceof k.nn.Linear && (m as k.nn.Linear).q8).length;
    expect(q).toBe(7);
    const { logits } = k.noGrad(() => model.call({ inputIds: k.tensor(gg.ids.data, { shape: gg.ids.shape, dtype: 'i32' }) }) as { logits: Tensor });
    assertClose(await logits.toArray(), gg.logits.data, { atol: 0.03 * maxAbs(gg.logits.data), rtol: 0 }, 'gguf q8_0 logits');
  });
});
