// The fused attention kernels against the composed reference (matmul + softmax) on both
// backends: outputs and the gradients of q, k and v, for MHA/GQA/MQA, causal, sliding window,
// key padding, packed documents, soft-capping, a KV-cache offset, one query row (decoding), and
// awkward sizes.
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';
import { gradcheck } from '../helpers/gradcheck.js';

const { nn } = k;

interface Case { name: string; B: number; H: number; Hkv: number; Tq: number; Tk: number; D: number; o: k.nn.FlashOptions; pad?: number[][]; doc?: number[][] }

const CASES: Case[] = [
  { name: 'MHA causal', B: 2, H: 3, Hkv: 3, Tq: 37, Tk: 37, D: 16, o: { isCausal: true } },
  { name: 'MHA full, odd head dim', B: 1, H: 2, Hkv: 2, Tq: 19, Tk: 19, D: 23, o: {} },
  { name: 'GQA causal, 2 tiles of queries', B: 1, H: 4, Hkv: 2, Tq: 70, Tk: 70, D: 8, o: { isCausal: true } },
  { name: 'MQA sliding window 5', B: 2, H: 4, Hkv: 1, Tq: 33, Tk: 33, D: 12, o: { isCausal: true, slidingWindow: 5 } },
  { name: 'KV cache: 7 queries after 30 keys', B: 2, H: 2, Hkv: 1, Tq: 7, Tk: 37, D: 16, o: { isCausal: true } },
  { name: 'key padding (left-padded batch)', B: 2, H: 2, Hkv: 2, Tq: 9, Tk: 9, D: 8, o: { isCausal: false }, pad: [[1, 1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1, 1, 1]] },
  { name: 'packed documents, causal', B: 2, H: 2, Hkv: 1, Tq: 10, Tk: 10, D: 8, o: { isCausal: true }, doc: [[0, 0, 0, 1, 1, 1, 1, 2, 2, 2], [0, 1, 1, 1, 1, 1, 1, 1, 1, 3]] },
  { name: 'soft-capping 5 (Gemma 2)', B: 1, H: 2, Hkv: 2, Tq: 12, Tk: 12, D: 8, o: { isCausal: true, softcap: 5, scale: 0.9 } },
  // one query row (decoding): the GPU's decode schedule, over chunks of 1024 keys
  { name: 'decode: one query after 1500 keys (GQA, two chunks)', B: 2, H: 4, Hkv: 2, Tq: 1, Tk: 1500, D: 64, o: { isCausal: true } },
  { name: 'decode: sliding window 40, head dim 80', B: 1, H: 2, Hkv: 1, Tq: 1, Tk: 300, D: 80, o: { isCausal: true, slidingWindow: 40 } },
  { name: 'decode: head dim 256, soft-capping', B: 1, H: 2, Hkv: 2, Tq: 1, Tk: 50, D: 256, o: { isCausal: true, softcap: 3 } },
  { name: 'decode: key padding', B: 2, H: 2, Hkv: 2, Tq: 1, Tk: 9, D: 8, o: { isCausal: true }, pad: [[1, 1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1, 1, 1, 1]] },
];

/** the composed reference with the same masking as a dense keep-mask */
function composed(q: Tensor, kk: Tensor, v: Tensor, c: Case): Tensor {
  let mask: Tensor | null = null;
  if (c.pad) mask = nn.paddingMask(k.tensor(c.pad));
  if (c.doc) mask = nn.documentMask(k.tensor(c.doc.flat(), { shape: [c.B, c.Tq], dtype: 'i32' }));
  if (c.o.softcap) {
    // soft-capped scores, written out: softmax(cap * tanh(q k^T * scale / cap) + mask) v
    const G = c.H / c.Hkv;
    const rep = (t: Tensor) => k.reshape(k.expand(k.unsqueeze(t, 2), [c.B, c.Hkv, G, c.Tk, c.D]), [c.B, c.H, c.Tk, c.D]);
    let s = k.mul(k.matmul(q, k.transpose(rep(kk))), c.o.scale ?? 1 / Math.sqrt(c.D));
    s = k.mul(k.tanh(k.div(s, c.o.softcap)), c.o.softcap);
    s = k.where(nn.causalMask(c.Tq, c.Tk), s, nn.MASKED);
    return k.matmul(k.softmax(s, -1), rep(v));
  }
  return nn.scaledDotProductAttention(q, kk, v, { isCausal: c.o.isCausal, slidingWindow: c.o.slidingWindow, scale: c.o.scale, mask });
}

describeBackends('flash attention (fused vs composed)', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const g = new k.Generator(17);
      const mk = (s: number[]) => k.randn(s, { generator: g });
      const qd = mk([c.B, c.H, c.Tq, c.D]), kd = mk([c.B, c.Hkv, c.Tk, c.D]), vd = mk([c.B, c.Hkv, c.Tk, c.D]);
      const up = mk([c.B, c.H, c.Tq, c.D]);
      const run = async (f: (q: Tensor, kk: Tensor, v: Tensor) => Tensor) => {
        const [q, kk, v] = [qd, kd, vd].map((t) => k.clone(t).requiresGrad_());
        const out = f(q, kk, v);
        k.sum(k.mul(out, up)).backward();
        return [await out.toArray(), await q.grad!.toArray(), await kk.grad!.toArray(), await v.grad!.toArray()];
      };
      const opts = { ...c.o, keyPadding: c.pad ? k.tensor(c.pad) : null, docIds: c.doc ? k.tensor(c.doc.flat(), { shape: [c.B, c.Tq], dtype: 'i32' }) : null };
      const fused = await run((q, kk, v) => nn.flashAttention(q, kk, v, opts));
      const ref = await run((q, kk, v) => composed(q, kk, v, c));
      ['output', 'dq', 'dk', 'dv'].forEach((n, i) => assertClose(fused[i], ref[i], { atol: 2e-5, rtol: 1e-4 }, n));
    });
  }
  it('the GPU-shaped dq and dk/dv kernels agree with the single-pass backward (on wasm: their twins)', async () => {
    const g = new k.Generator(5);
    const qd = k.randn([2, 4, 21, 8], { generator: g }), kd = k.randn([2, 2, 29, 8], { generator: g }), vd = k.randn([2, 2, 29, 8], { generator: g });
    const grads = async (split: boolean) => {
      const [q, kk, v] = [qd, kd, vd].map((t) => k.clone(t).requiresGrad_());
      k.sum(k.square(nn.flashAttention(q, kk, v, { isCausal: true, slidingWindow: 11, splitBackward: split }))).backward();
      return [await q.grad!.toArray(), await kk.grad!.toArray(), await v.grad!.toArray()];
    };
    const a = await grads(true);
    const b = await grads(false);
    ['dq', 'dk', 'dv'].forEach((n, i) => assertClose(a[i], b[i], { atol: 1e-5, rtol: 1e-4 }, n));
  });
  it('gradcheck (GQA, causal, window)', async () => {
    const g = new k.Generator(3);
    const data = (n: number) => Array.from({ length: n }, () => g.normal());
    await gradcheck((q, kk, v) => nn.flashAttention(q, kk, v, { isCausal: true, slidingWindow: 3 }), [
      { shape: [1, 2, 4, 3], data: data(24) }, { shape: [1, 1, 4, 3], data: data(12) }, { shape: [1, 1, 4, 3], data: data(12) },
    ]);
  });
});

describeBackends('flash attention dropout', () => {
  it('matches the composed reference with the same hashed mask, outputs and gradients', async () => {
    const B = 2, H = 2, Hkv = 1, T = 21, D = 8, p = 0.3, seed = 12345;
    const g = new k.Generator(21);
    const qd = k.randn([B, H, T, D], { generator: g }), kd = k.randn([B, Hkv, T, D], { generator: g }), vd = k.randn([B, Hkv, T, D], { generator: g });
    const up = k.randn([B, H, T, D], { generator: g });
    const mask = new Float32Array(B * H * T * T);
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) mask[((b * H + h) * T + i) * T + j] = nn.flashDropMul(p, seed, H, T, T, b, h, i, j);
    const kept = Array.from(mask).filter((x) => x > 0).length / mask.length;
    expect(Math.abs(kept - 0.7)).toBeLessThan(0.05);
    const run = async (f: (q: Tensor, kk: Tensor, v: Tensor) => Tensor) => {
      const [q, kk, v] = [qd, kd, vd].map((t) => k.clone(t).requiresGrad_());
      const out = f(q, kk, v);
      k.sum(k.mul(out, up)).backward();
      return [await out.toArray(), await q.grad!.toArray(), await kk.grad!.toArray(), await v.grad!.toArray()];
    };
    const fused = await run((q, kk, v) => nn.flashAttention(q, kk, v, { isCausal: true, dropoutP: p, seed }));
    const ref = await run((q, kk, v) => {
      const rep = (t: Tensor) => k.reshape(k.expand(k.unsqueeze(t, 2), [B, Hkv, 2, T, D]), [B, H, T, D]);
      let s = k.mul(k.matmul(q, k.transpose(rep(kk))), 1 / Math.sqrt(D));
      s = k.where(nn.causalMask(T, T), s, nn.MASKED);
      return k.matmul(k.mul(k.softmax(s, -1), k.tensor(mask, { shape: [B, H, T, T] })), rep(v));
    });
    ['output', 'dq', 'dk', 'dv'].forEach((n, i) => assertClose(fused[i], ref[i], { atol: 3e-5, rtol: 1e-4 }, n));
  });
});
