// LoRA factors between kiln's modules and the checkpoint's, against hand-built matrices: each
// case merges W + B·A in kiln's layout and W' + B'·A' in the checkpoint's (PEFT's merge: the
// delta transposed for Conv1D, fan_in_fan_out) and compares; the checkpoint weight is assembled
// here by hand (Conv1D columns, fused rows, llama.cpp's reshape-and-swap permutation).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KilnError } from '../../src/core/errors.js';
import { configFromHF } from '../../src/models/hf.js';
import { loraFromCheckpoint, loraToCheckpoint, lorasToCheckpoint, type Mat } from '../../src/models/lora-map.js';
import { buildNameMap, permuteQK } from '../../src/models/name-map.js';
import { parameterShapes } from '../../src/models/weights.js';
import { assertClose } from '../helpers/assert-close.js';

const golden = new URL('../golden/checkpoints/', import.meta.url).pathname;
const cfgOf = (arch: string) => configFromHF(JSON.parse(readFileSync(`${golden}${arch}/config.json`, 'utf8')));
const mapOf = (arch: string, over = {}, format: 'hf' | 'gguf' = 'hf') => {
  const cfg = { ...cfgOf(arch), ...over };
  return buildNameMap(arch, format, cfg, parameterShapes(cfg));
};

let seed = 1;
const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1);
const mat = (...shape: number[]): Mat => ({ data: rand(shape.reduce((a, b) => a * b, 1)), shape });
/** (m, k) @ (k, n) in float64 */
function mm(a: ArrayLike<number>, m: number, k: number, b: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) out[i * n + j] += a[i * k + p] * b[p * n + j];
  return out;
}
const delta = (A: Mat, B: Mat): Float64Array => mm(B.data, B.shape[0], B.shape[1], A.data, A.shape[1]);
const add = (a: ArrayLike<number>, b: ArrayLike<number>): number[] => Array.from(a, (x, i) => x + b[i]);
const T = (a: ArrayLike<number>, rows: number, cols: number): number[] => Array.from({ length: rows * cols }, (_, i) => a[(i % rows) * cols + Math.floor(i / rows)]);
const close = (got: ArrayLike<number>, want: ArrayLike<number>, what: string) => assertClose(Array.from(got), Array.from(want), { atol: 1e-5, rtol: 0 }, what);

/** convert_hf_to_gguf.py's permute: reshape (heads, 2, D/2, cols), swap axes 1 and 2, reshape back. */
function llamaPermute(w: ArrayLike<number>, heads: number, cols: number): number[] {
  const half = w.length / cols / heads / 2;
  const out: number[] = new Array(w.length);
  for (let h = 0; h < heads; h++)
    for (let a = 0; a < 2; a++)
      for (let b = 0; b < half; b++)
        for (let c = 0; c < cols; c++) out[(((h * half + b) * 2 + a) * cols) + c] = w[(((h * 2 + a) * half + b) * cols) + c];
  return out;
}

describe('LoRA factors between kiln and checkpoint modules', () => {
  it("permuteQK is llama.cpp's reshape-and-swap, and its inverse undoes it", () => {
    expect(Array.from(permuteQK(Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]), 2, 1))).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
    const w = rand(4 * 8 * 3);
    expect(Array.from(permuteQK(w, 4, 3))).toEqual(llamaPermute(w, 4, 3));
    expect(permuteQK(permuteQK(w, 4, 3), 4, 3, true)).toEqual(w);
  });

  it("GPT-2: q and v LoRAs become one c_attn LoRA (A's stacked along r, B block-diagonal, k's rows zero); PEFT's Conv1D merge equals kiln's", () => {
    const map = mapOf('gpt2');
    const hs = 16;
    const W = [mat(hs, hs), mat(hs, hs), mat(hs, hs)]; // kiln q, k, v: (out, in)
    const lq = { path: 'model.layers.0.self_attn.q_proj', A: mat(2, hs), B: mat(hs, 2) };
    const lv = { path: 'model.layers.0.self_attn.v_proj.weight', A: mat(3, hs), B: mat(hs, 3) };
    const [c, ...rest] = lorasToCheckpoint(map, [lq, lv]);
    expect(rest).toEqual([]);
    expect(c.name).toBe('transformer.h.0.attn.c_attn');
    expect([c.A.shape, c.B.shape]).toEqual([[5, hs], [3 * hs, 5]]);
    // c_attn as Conv1D stores it: (in, 3·out), q | k | v column blocks
    const conv = (ws: ArrayLike<number>[]) => T(ws.flatMap((w) => Array.from(w)), 3 * hs, hs);
    const merged = conv([add(W[0].data, delta(lq.A, lq.B)), W[1].data, add(W[2].data, delta(lv.A, lv.B))]);
    close(add(conv(W.map((w) => w.data)), T(delta(c.A, c.B), 3 * hs, hs)), merged, 'c_attn + transpose(B·A)');
    // back: each part's B·A is its band of the fused delta
    const back = loraFromCheckpoint(map, c.name, c.A, c.B);
    expect(back.map((l) => l.path)).toEqual(['q_proj', 'k_proj', 'v_proj'].map((p) => `model.layers.0.self_attn.${p}`));
    close(delta(back[0].A, back[0].B), delta(lq.A, lq.B), 'q');
    close(delta(back[1].A, back[1].B), new Float64Array(hs * hs), 'k');
    close(delta(back[2].A, back[2].B), delta(lv.A, lv.B), 'v');
    // a Conv1D that fuses nothing: PEFT keeps the nn.Linear orientation, the factors go over as they are
    const o = loraToCheckpoint(map, 'model.layers.1.mlp.fc2', mat(4, 24), mat(hs, 4));
    expect(o.map((x) => [x.name, x.A.shape, x.B.shape])).toEqual([['transformer.h.1.mlp.c_proj', [4, 24], [hs, 4]]]);
  });

  it("Phi-3: q and k LoRAs in qkv_proj, gate and up (scaled) in gate_up_proj: W + B'·A' equals the stacked merged weights", () => {
    const map = mapOf('phi3');
    const [hs, kv, I] = [16, 8, 24];
    const Wq = mat(hs, hs), Wk = mat(kv, hs), Wv = mat(kv, hs), Wg = mat(I, hs), Wu = mat(I, hs);
    const lq = { path: 'model.layers.1.self_attn.q_proj', A: mat(2, hs), B: mat(hs, 2) };
    const lk = { path: 'model.layers.1.self_attn.k_proj', A: mat(1, hs), B: mat(kv, 1) };
    const lg = { path: 'model.layers.1.mlp.gate_proj', A: mat(2, hs), B: mat(I, 2) };
    const lu = { path: 'model.layers.1.mlp.up_proj', A: mat(3, hs), B: mat(I, 3), scale: 0.5 };
    const out = lorasToCheckpoint(map, [lq, lg, lk, lu]);
    expect(out.map((x) => [x.name, x.A.shape, x.B.shape])).toEqual([
      ['model.layers.1.self_attn.qkv_proj', [3, hs], [hs + 2 * kv, 3]],
      ['model.layers.1.mlp.gate_up_proj', [5, hs], [2 * I, 5]],
    ]);
    const cat = (...xs: ArrayLike<number>[]) => xs.flatMap((x) => Array.from(x));
    close(add(cat(Wq.data, Wk.data, Wv.data), delta(out[0].A, out[0].B)), cat(add(Wq.data, delta(lq.A, lq.B)), add(Wk.data, delta(lk.A, lk.B)), Wv.data), 'qkv_proj');
    const halfUp = Array.from(delta(lu.A, lu.B), (x) => x * 0.5);
    close(add(cat(Wg.data, Wu.data), delta(out[1].A, out[1].B)), cat(add(Wg.data, delta(lg.A, lg.B)), add(Wu.data, halfUp)), 'gate_up_proj');
  });

  it("Mixtral: a LoRA on kiln's stacked experts is one LoRA per expert tensor, and back", () => {
    const map = mapOf('mixtral');
    const A = mat(4, 2, 16), B = mat(4, 24, 2);
    const out = loraToCheckpoint(map, 'model.layers.1.mlp.experts.up_proj', A, B);
    expect(out.map((x) => x.name)).toEqual([0, 1, 2, 3].map((e) => `model.layers.1.block_sparse_moe.experts.${e}.w3`));
    out.forEach((x, e) => {
      expect(x.A.data).toEqual(A.data.subarray(e * 32, (e + 1) * 32));
      expect(x.B.data).toEqual(B.data.subarray(e * 48, (e + 1) * 48));
    });
    const [back] = loraFromCheckpoint(map, out[2].name, out[2].A, out[2].B);
    expect([back.path, back.expert]).toEqual(['model.layers.1.mlp.experts.up_proj', 2]);
    close(delta(back.A, back.B), delta(out[2].A, out[2].B), 'expert 2');
  });

  it("a GGUF Llama base (q/k rows in llama.cpp's order) exported to HF names: B's rows un-permuted, HF's W + B'·A' equals kiln's merge un-permuted", () => {
    const cfg = cfgOf('llama');
    const [H, Hkv] = [cfg.numHeads, cfg.numKVHeads!];
    // head dim 8, not the file's 4: at 4 the permutation is its own inverse and a wrong direction would pass
    const D = 8;
    const map = mapOf('llama', { ropeLayout: 'interleaved', headDim: D });
    for (const [proj, heads] of [['q_proj', H], ['k_proj', Hkv]] as const) {
      const hf = mat(heads * D, 16); // the Hugging Face weight; the GGUF file (and kiln) hold it permuted
      const kiln = llamaPermute(hf.data, heads, 16);
      const l = { A: mat(3, 16), B: mat(heads * D, 3) };
      const [c] = loraToCheckpoint(map, `model.layers.0.self_attn.${proj}`, l.A, l.B);
      expect(c.name).toBe(`model.layers.0.self_attn.${proj}`);
      // kiln's merged weight is the permuted HF merge: permute(W_hf + B'·A') = W_kiln + B·A
      close(llamaPermute(add(hf.data, delta(c.A, c.B)), heads, 16), add(kiln, delta(l.A, l.B)), `${proj} with ${heads} heads`);
      const [back] = loraFromCheckpoint(map, c.name, c.A, c.B);
      close(back.B.data, l.B.data, `${proj} B back in kiln's order`);
    }
    // kiln in Hugging Face's order exported to HF names: nothing moves
    const [same] = loraToCheckpoint(mapOf('llama', { headDim: D }), 'model.layers.0.self_attn.q_proj', mat(2, 16), mat(H * D, 2));
    const l = loraToCheckpoint(mapOf('llama', { ropeLayout: 'interleaved', headDim: D }, 'gguf'), 'model.layers.0.self_attn.q_proj', { data: same.A.data, shape: [2, 16] }, { data: same.B.data, shape: [H * D, 2] });
    expect([l[0].name, l[0].B.data]).toEqual(['blk.0.attn_q', same.B.data]);
  });

  it("a llama.cpp LoRA (GGUF names, q/k rows in llama.cpp's order) onto a base loaded from Hugging Face: B's rows un-permuted into kiln's order", () => {
    const D = 8;
    const map = mapOf('llama', { headDim: D }, 'gguf');
    const heads = cfgOf('llama').numKVHeads!;
    const kiln = mat(heads * D, 16); // kiln (and the HF file) in Hugging Face's order; the GGUF file holds it permuted
    const gguf = llamaPermute(kiln.data, heads, 16);
    const l = { A: mat(2, 16), B: mat(heads * D, 2) }; // trained on the GGUF base
    const [back] = loraFromCheckpoint(map, 'blk.1.attn_k', l.A, l.B);
    expect(back.path).toBe('model.layers.1.self_attn.k_proj');
    close(llamaPermute(add(kiln.data, delta(back.A, back.B)), heads, 16), add(gguf, delta(l.A, l.B)), 'k_proj merged in both layouts');
    const [again] = loraToCheckpoint(map, back.path, back.A, back.B);
    close(again.B.data, l.B.data, 'and back to the GGUF order');
  });

  it('factors that do not fit, an unknown module, and two LoRAs on one module are typed errors naming them', () => {
    const map = mapOf('phi3');
    const bad = (f: () => unknown, code: string, msg: RegExp) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(KilnError);
        expect((e as KilnError).code).toBe(code);
        expect((e as Error).message).toMatch(msg);
        return;
      }
      throw new Error('expected an error');
    };
    bad(() => loraToCheckpoint(map, 'model.layers.0.self_attn.k_proj', mat(2, 16), mat(16, 2)), 'shape', /model\.layers\.0\.self_attn\.k_proj: lora_A \[2, 16\], lora_B \[16, 2\] do not fit .*out 8, in 16/);
    bad(() => loraToCheckpoint(map, 'model.layers.0.self_attn.k_proj', mat(2, 16), mat(8, 3)), 'shape', /no \(r, in\) and \(out, r\) pair/);
    bad(() => loraToCheckpoint(map, 'model.layers.9.self_attn.q_proj', mat(2, 16), mat(16, 2)), 'argument', /'model\.layers\.9\.self_attn\.q_proj' is no parameter of this phi3 model/);
    bad(() => lorasToCheckpoint(map, [{ path: 'model.layers.0.mlp.up_proj', A: mat(1, 16), B: mat(24, 1) }, { path: 'model.layers.0.mlp.up_proj.weight', A: mat(1, 16), B: mat(24, 1) }]), 'argument', /two LoRAs for the same module/);
    bad(() => loraFromCheckpoint(map, 'model.layers.0.self_attn.qkv_proj', mat(2, 16), mat(16, 2)), 'shape', /qkv_proj: .* do not fit its \(out 32, in 16\) weight/);
    bad(() => loraFromCheckpoint(map, 'transformer.h.0.attn.c_attn', mat(2, 16), mat(48, 2)), 'argument', /no weight of this phi3 checkpoint/);
  });
});
