// FlexAttention: every built-in modifier on the fused kernels (WGSL snippet on WebGPU, its
// JavaScript twin on wasm) against the composed reference built from the same definitions as
// dense masks and biases; outputs and gradients; a bad snippet's compile error.
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';
import { gradcheck } from '../helpers/gradcheck.js';

const { nn } = k;
const { flex } = nn;

const B = 2, H = 4, Hkv = 2, T = 70, D = 8;
const docs = [Array.from({ length: T }, (_, i) => (i < 30 ? 0 : i < 52 ? 1 : 2)), Array.from({ length: T }, (_, i) => (i < 65 ? 0 : 1))];
const table = Float32Array.from({ length: H * 9 }, (_, i) => Math.sin(i) * 0.5);

interface Case { name: string; score?: () => k.nn.ScoreMod; mask?: () => k.nn.MaskMod }
const CASES: Case[] = [
  { name: 'causal', mask: () => flex.causal() },
  { name: 'sliding window 9', mask: () => flex.slidingWindow(9) },
  { name: 'prefix-LM 20', mask: () => flex.prefixLM(20) },
  { name: 'document (packed) and causal', mask: () => flex.and(flex.document(k.tensor(docs.flat(), { shape: [B, T], dtype: 'i32' })), flex.causal()) },
  { name: 'ALiBi, causal', score: () => flex.alibi(H), mask: () => flex.causal() },
  { name: 'soft-capping 3', score: () => flex.softcap(3), mask: () => flex.causal() },
  { name: 'relative position bias', score: () => flex.relativePositionBias(table, H, 4) },
];

/** the composed reference: dense scores, the score mod as ops, the mask as a dense keep-mask */
function reference(q: Tensor, kk: Tensor, v: Tensor, c: Case): Tensor {
  const G = H / Hkv;
  const rep = (t: Tensor) => k.reshape(k.expand(k.unsqueeze(t, 2), [B, Hkv, G, T, D]), [B, H, T, D]);
  let s = k.mul(k.matmul(q, k.transpose(rep(kk))), 1 / Math.sqrt(D)); // (B, H, T, T)
  const sm = c.score?.();
  if (sm?.name.startsWith('softcap')) s = k.mul(k.tanh(k.div(s, 3)), 3);
  else if (sm) {
    const ctx = { headParams: Float32Array.from(sm.headParams ?? []) };
    const bias = new Float32Array(H * T * T);
    for (let h = 0; h < H; h++) for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) bias[(h * T + i) * T + j] = sm.js(0, 0, h, i, j, ctx);
    s = k.add(s, k.tensor(bias, { shape: [H, T, T] }));
  }
  const mm = c.mask?.();
  if (mm) {
    const keep = new Float32Array(B * T * T);
    for (let b = 0; b < B; b++) for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) {
      keep[(b * T + i) * T + j] = mm.js(b, 0, i, j) && (!mm.docIds || docs[b][i] === docs[b][j]) ? 1 : 0;
    }
    s = k.where(k.tensor(keep, { shape: [B, 1, T, T] }), s, nn.MASKED);
  }
  return k.matmul(k.softmax(s, -1), rep(v));
}

describeBackends('flexAttention', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const g = new k.Generator(8);
      const qd = k.randn([B, H, T, D], { generator: g }), kd = k.randn([B, Hkv, T, D], { generator: g }), vd = k.randn([B, Hkv, T, D], { generator: g });
      const up = k.randn([B, H, T, D], { generator: g });
      const run = async (f: (q: Tensor, kk: Tensor, v: Tensor) => Tensor) => {
        const [q, kk, v] = [qd, kd, vd].map((t) => k.clone(t).requiresGrad_());
        const out = f(q, kk, v);
        k.sum(k.mul(out, up)).backward();
        return [await out.toArray(), await q.grad!.toArray(), await kk.grad!.toArray(), await v.grad!.toArray()];
      };
      const fused = await run((q, kk, v) => nn.flexAttention(q, kk, v, { scoreMod: c.score?.(), maskMod: c.mask?.() }));
      const ref = await run((q, kk, v) => reference(q, kk, v, c));
      ['output', 'dq', 'dk', 'dv'].forEach((n, i) => assertClose(fused[i], ref[i], { atol: 3e-5, rtol: 1e-4 }, n));
    });
  }

  it('one query row (the GPU decode schedule): a score mod and a mask mod against the dense reference', async () => {
    const g = new k.Generator(9);
    const Tk = 1100; // two chunks of keys
    const q = k.randn([B, H, 1, D], { generator: g }), kk = k.randn([B, Hkv, Tk, D], { generator: g }), v = k.randn([B, Hkv, Tk, D], { generator: g });
    const sm = flex.relativePositionBias(table, H, 4);
    const mm = flex.slidingWindow(300); // with one query row q_idx is 0: keys 0..299 stay
    const out = await nn.flexAttention(q, kk, v, { scoreMod: sm, maskMod: mm }).toArray();
    const ctx = { headParams: Float32Array.from(sm.headParams ?? []) };
    const bias = new Float32Array(B * H * Tk);
    const keep = new Float32Array(B * H * Tk);
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let j = 0; j < Tk; j++) {
      bias[(b * H + h) * Tk + j] = sm.js(0, b, h, 0, j, ctx);
      keep[(b * H + h) * Tk + j] = mm.js(b, h, 0, j) ? 1 : 0;
    }
    const rep = (t: Tensor) => k.reshape(k.expand(k.unsqueeze(t, 2), [B, Hkv, H / Hkv, Tk, D]), [B, H, Tk, D]);
    let s = k.add(k.mul(k.matmul(q, k.transpose(rep(kk))), 1 / Math.sqrt(D)), k.tensor(bias, { shape: [B, H, 1, Tk] }));
    s = k.where(k.tensor(keep, { shape: [B, H, 1, Tk] }), s, nn.MASKED);
    assertClose(out, await k.matmul(k.softmax(s, -1), rep(v)).toArray(), { atol: 3e-5, rtol: 1e-4 }, 'decode row');
  });
});

it('a WGSL snippet that fails to compile reports the compiler message and the snippet', async () => {
  k.use(await k.createBackend('webgpu'));
  const bad: k.nn.ScoreMod = { name: 'bad', wgsl: 'score +* undefined_thing', js: (s) => s };
  const q = k.randn([1, 1, 4, 4]);
  const out = nn.flexAttention(q, q, q, { scoreMod: bad });
  await expect(out.toArray()).rejects.toThrow(/flashAttention: WGSL kernel flash_attention_fwd\|d32\|flex\w+ failed to compile[\s\S]*score \+\* undefined_thing/);
  // and the device keeps working
  expect(Array.from(await k.add(k.tensor([1]), 1).toArray())).toEqual([2]);
});

it('an unknown built-in modifier is a typed error listing the known ones', () => {
  expect(() => nn.builtinMod('causl')).toThrow(/flexAttention: unknown built-in modifier 'causl' \(known: causal, slidingWindow, prefixLM, document, alibi, softcap, relativePositionBias\)/);
  expect((nn.builtinMod('slidingWindow', 4) as k.nn.MaskMod).js(0, 0, 5, 2)).toBe(true);
});

describeBackends('flexAttention with a learned relative-position table', ({ name }) => {
  it('the table gets its gradient (finite differences) and matches the fused path when frozen', async () => {
    const g = new k.Generator(4);
    const d = (n: number) => Array.from({ length: n }, () => g.normal());
    const H2 = 2, T2 = 5, D2 = 4, M = 2;
    const q = d(H2 * T2 * D2), kk = d(H2 * T2 * D2), v = d(H2 * T2 * D2), tbl = d(H2 * (2 * M + 1));
    await gradcheck((qq, kq, vq, t) => nn.flexAttention(qq, kq, vq, { scoreMod: flex.relativePositionBias(t, H2, M), maskMod: flex.causal() }), [
      { shape: [1, H2, T2, D2], data: q }, { shape: [1, H2, T2, D2], data: kk }, { shape: [1, H2, T2, D2], data: v }, { shape: [H2, 2 * M + 1], data: tbl },
    ]);
    if (name === 'wasm') {
      const mk = (x: number[]) => k.tensor(x, { shape: [1, H2, T2, D2] });
      const table = k.tensor(tbl, { shape: [H2, 2 * M + 1] });
      const composed = await nn.flexAttention(mk(q), mk(kk), mk(v), { scoreMod: flex.relativePositionBias(k.clone(table).requiresGrad_(), H2, M) }).toArray();
      const fused = await nn.flexAttention(mk(q), mk(kk), mk(v), { scoreMod: flex.relativePositionBias(table, H2, M) }).toArray();
      assertClose(fused, composed, { atol: 1e-5 });
    }
  });
});
