// Several adapters on one base (issue 11, deliverable 7): disableAdapter / withAdapter scopes,
// setAdapter switching, deleteAdapter freeing its buffers, addWeightedAdapter (linear, cat, svd)
// against models whose weights are W + ΔW built on the host from the adapters' own tensors, the
// svd truncation error against singular values found by subspace iteration, and hot-swap in place.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { KilnError } from '../../src/core/errors.js';
import { fromValues } from '../../src/core/ops/creation.js';
import { loadModel } from '../../src/models/load.js';
import { Linear } from '../../src/nn/layers.js';
import { addWeightedAdapter, hotswapAdapter, mergeTaskTensors, svdJacobi } from '../../src/peft/combine.js';
import { LoraLinear } from '../../src/peft/lora.js';
import { getPeftModel, type PeftModel } from '../../src/peft/model.js';
import { savePretrained } from '../../src/peft/io.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';

const ckpt = new URL('../golden/checkpoints/', import.meta.url).pathname;
const base = () => loadModel(join(ckpt, 'llama'));
const ids = () => k.tensor([[1, 5, 12, 0, 7, 3]], { dtype: 'i32' });
const logitsOf = async (m: k.nn.Module) => Array.from(await k.tidy(() => (m.call({ inputIds: ids() }) as { logits: Tensor }).logits).toArray());
const TOL = { atol: 2e-5, rtol: 1e-4 };
const cfg = (o: object = {}) => ({ r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], init_lora_weights: false as const, ...o });
const rejects = async (p: Promise<unknown> | (() => unknown), re: RegExp): Promise<void> => {
  const e = await Promise.resolve().then(typeof p === 'function' ? p : () => p).then(() => null, (x) => x);
  expect(e, `wanted ${re}`).toBeInstanceOf(KilnError);
  expect((e as Error).message).toMatch(re);
};
const host = async (t: Tensor) => Float64Array.from(await t.toArray());
/** c · B·A on the host: B (out, r), A (r, in) */
const product = (B: ArrayLike<number>, A: ArrayLike<number>, out: number, r: number, inF: number, c = 1): Float64Array => {
  const d = new Float64Array(out * inF);
  for (let o = 0; o < out; o++) for (let j = 0; j < r; j++) for (let i = 0; i < inF; i++) d[o * inF + i] += c * B[o * r + j] * A[j * inF + i];
  return d;
};
/** each layer's ΔW (out, in) = Σ w · s · B·A over the given adapters, from their tensors */
const weightedDeltas = async (peft: PeftModel, parts: [string, number][]): Promise<Map<string, Float64Array>> => {
  const out = new Map<string, Float64Array>();
  for (const [path, l] of peft.loraLayers()) {
    const d = new Float64Array(l.outFeatures * l.inFeatures);
    for (const [a, w] of parts) {
      const s = l.adapters.get(a);
      if (!s) continue;
      const p = product(await host(l.B(a).weight), await host(l.A(a).weight), l.outFeatures, s.r, l.inFeatures, w * s.scaling);
      for (let i = 0; i < d.length; i++) d[i] += p[i];
    }
    out.set(path, d);
  }
  return out;
};
/** the logits of a fresh base whose target weights are W + ΔW */
const referenceLogits = async (deltas: Map<string, Float64Array>): Promise<number[]> => {
  const { model } = await base();
  for (const [path, d] of deltas) {
    const w = (model.getSubmodule(path) as Linear).weight;
    const v = await host(w);
    k.noGrad(() => w.assign(fromValues(v.map((x, i) => x + d[i]), w.shape, { backend: w.backend })));
  }
  return logitsOf(model);
};
const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));

describe('svdJacobi', () => {
  it('finds the singular values of U·diag(s)·Vᵀ built from known orthonormal frames, for wide, tall and rank-deficient matrices', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
    const frame = (n: number, p: number): Float64Array => {
      // p orthonormal columns (n, p) by Gram-Schmidt on random vectors
      const q = new Float64Array(n * p);
      for (let j = 0; j < p; j++) {
        const v = Array.from({ length: n }, rnd);
        for (let i = 0; i < j; i++) {
          const d = v.reduce((s, x, r) => s + x * q[r * p + i], 0);
          for (let r = 0; r < n; r++) v[r] -= d * q[r * p + i];
        }
        const nrm = Math.hypot(...v);
        for (let r = 0; r < n; r++) q[r * p + j] = v[r] / nrm;
      }
      return q;
    };
    for (const [m, n, s] of [[5, 9, [3, 2.5, 1, 0.5, 0.01]], [9, 5, [4, 1, 1e-3, 1e-4, 0]], [6, 6, [2, 1, 0.5, 0, 0, 0]]] as [number, number, number[]][]) {
      const p = s.length;
      const U0 = frame(m, p);
      const V0 = frame(n, p);
      const M = new Float64Array(m * n);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let t = 0; t < p; t++) M[i * n + j] += U0[i * p + t] * s[t] * V0[j * p + t];
      const { U, S, V } = svdJacobi(M, m, n);
      assertClose(S, s, { atol: 1e-12, rtol: 1e-10 }, `${m}x${n} singular values`);
      const R = new Float64Array(m * n);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let t = 0; t < p; t++) R[i * n + j] += U[i * p + t] * S[t] * V[j * p + t];
      assertClose(R, M, { atol: 1e-12, rtol: 0 }, `${m}x${n} reconstruction`);
    }
  });
});

describe('mergeTaskTensors', () => {
  it("merges as PEFT's merge_utils, against hand-computed values", () => {
    const t = [Float64Array.from([3, -1, 0.5, -2]), Float64Array.from([-1, -4, 1.5, 1])];
    const w = [1, 0.5];
    assertClose(mergeTaskTensors('linear', t, w), [2.5, -3, 1.25, -1.5], { atol: 1e-15 }, 'linear');
    // top 2 magnitudes kept: [3, 0, 0, -2] and [0, -4, 1.5, 0]
    assertClose(mergeTaskTensors('magnitude_prune', t, w, { density: 0.5 }), [3, -2, 0.75, -2], { atol: 1e-15 }, 'magnitude_prune');
    // signs elected from the sums [2, -5, 2, -1]; the agreeing weighted values averaged
    assertClose(mergeTaskTensors('ties', t, w, { density: 1 }), [3, -1.5, 0.625, -2], { atol: 1e-15 }, 'ties total');
    // from the sign counts [0, -2, 2, 0]: a tie elects +
    assertClose(mergeTaskTensors('ties', t, w, { density: 1, majoritySignMethod: 'frequency' }), [3, -1.5, 0.625, 0.5], { atol: 1e-15 }, 'ties frequency');
    // dare: random masks keep a density share, rescaled so the expectation is kept
    const ones = [new Float64Array(20000).fill(1)];
    const d = mergeTaskTensors('dare_linear', ones, [2], { density: 0.3, generator: new k.Generator(5) });
    expect(Math.abs(d.filter((v) => v !== 0).length / d.length - 0.3)).toBeLessThan(0.02);
    expect(Math.abs(d.reduce((x, y) => x + y, 0) / d.length - 2)).toBeLessThan(0.08);
    expect(new Set(d).size).toBe(2); // 0 and 2/0.3
  });
});

describeBackends('several adapters on one base', (ctx) => {
  it('disableAdapter runs the base alone and restores after, also on throw and rejection; setAdapter and withAdapter switch to host-merged references', async () => {
    const loaded = await base();
    const baseLogits = await logitsOf(loaded.model);
    const peft = getPeftModel(loaded, cfg(), 'a', { generator: new k.Generator(1) });
    peft.addAdapter('b', cfg({ r: 2, target_modules: ['q_proj', 'k_proj'] }), { generator: new k.Generator(2) });
    const refA = await referenceLogits(await weightedDeltas(peft, [['a', 1]]));
    const refB = await referenceLogits(await weightedDeltas(peft, [['b', 1]]));
    expect(maxDiff(refA, baseLogits)).toBeGreaterThan(1e-3); // the adapters do something
    expect(maxDiff(refA, refB)).toBeGreaterThan(1e-3);
    assertClose(await logitsOf(peft), refA, TOL, 'a active');
    assertClose(await peft.disableAdapter(() => logitsOf(peft)), baseLogits, TOL, 'disabled (async fn)');
    assertClose(await logitsOf(peft), refA, TOL, 'a after the scope');
    expect(() => peft.disableAdapter(() => { throw new Error('boom'); })).toThrow('boom');
    await expect(peft.disableAdapter(async () => { await null; throw new Error('later'); })).rejects.toThrow('later');
    assertClose(await logitsOf(peft), refA, TOL, 'a after throwing scopes');
    assertClose(await peft.withAdapter('b', () => logitsOf(peft)), refB, TOL, 'withAdapter b');
    assertClose(await peft.withAdapter(null, () => logitsOf(peft)), baseLogits, TOL, 'withAdapter null');
    expect(peft.trainableParameters().length).toBe(8); // a's A and B in four layers: withAdapter leaves trainability alone
    peft.setAdapter('b');
    assertClose(await logitsOf(peft), refB, TOL, 'setAdapter b');
    expect(peft.activeAdapter).toBe('b');
    peft.setAdapter(null);
    assertClose(await logitsOf(peft), baseLogits, TOL, 'setAdapter null');
    peft.setAdapter('a');
    await peft.merge();
    await rejects(() => peft.withAdapter('b', () => 0), /has adapter 'a' merged into its weight: unmerge\(\) first/);
    assertClose(await peft.disableAdapter(() => logitsOf(peft)), baseLogits, TOL, 'disabled unmerges, as PEFT');
    expect(peft.loraLayers().every(([, l]) => !l.merged.length)).toBe(true);
    await rejects(() => peft.withAdapter('c', () => 0), /withAdapter: no adapter named 'c' \(adapters: a, b\)/);
  });

  it('deleteAdapter frees its buffers, hands the active role on, and gives a layer with no adapter its base layer back', async () => {
    const loaded = await base();
    const baseLogits = await logitsOf(loaded.model);
    const nBase = loaded.model.parameters().length;
    const peft = getPeftModel(loaded, cfg(), 'a', { generator: new k.Generator(1) });
    const refA = await referenceLogits(await weightedDeltas(peft, [['a', 1]]));
    const { backend, name } = ctx;
    await backend.sync();
    const live = backend.memory().liveBuffers;
    peft.addAdapter('c', cfg({ target_modules: ['k_proj', 'v_proj'] }), { generator: new k.Generator(3) });
    expect(backend.memory().liveBuffers - live).toBe(8); // A and B in 4 layers
    peft.deleteAdapter('c');
    expect(backend.memory().liveBuffers, `${name}: every buffer of c freed`).toBe(live);
    expect(peft.loraLayers().map(([p]) => p).sort()).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
    assertClose(await logitsOf(peft), refA, TOL, 'a still applied');
    peft.addAdapter('d', cfg(), { generator: new k.Generator(4) });
    await rejects(() => peft.deleteAdapter('zz'), /deleteAdapter: no adapter named 'zz' \(adapters: a, d\)/);
    peft.deleteAdapter('a');
    expect(peft.activeAdapter).toBe('d');
    await peft.merge();
    await rejects(() => peft.deleteAdapter('d'), /adapter 'd' is merged into model.layers.0.self_attn.q_proj: unmerge\(\) first/);
    peft.unmerge();
    peft.deleteAdapter('d');
    expect(peft.activeAdapter).toBe(null);
    expect(peft.loraLayers().length).toBe(0);
    expect(peft.model.parameters().length).toBe(nBase);
    assertClose(await logitsOf(peft), baseLogits, TOL, 'no adapter left: the base');
  });

  it('addWeightedAdapter linear and cat give the logits of W + the host-combined ΔW; one adapter with weight 1 is itself (rsLoRA too)', async () => {
    const loaded = await base();
    const peft = getPeftModel(loaded, cfg(), 'a', { generator: new k.Generator(1) });
    peft.addAdapter('b', cfg({ r: 2, lora_alpha: 3, target_modules: ['q_proj', 'k_proj'] }), { generator: new k.Generator(2) });
    peft.addAdapter('c', cfg({ lora_alpha: 5, use_rslora: true }), { generator: new k.Generator(3) });
    const w: [string, number][] = [['a', 0.7], ['b', -0.4]];
    // cat: exactly Σ w·s·B·A, the ranks added up
    await addWeightedAdapter(peft, ['a', 'b'], [0.7, -0.4], 'cat', { combinationType: 'cat' });
    expect([peft.peftConfig.get('cat')!.r, peft.peftConfig.get('cat')!.lora_alpha, peft.peftConfig.get('cat')!.target_modules]).toEqual([6, 6, ['k_proj', 'q_proj', 'v_proj']]);
    const refCat = await referenceLogits(await weightedDeltas(peft, w));
    assertClose(await peft.withAdapter('cat', () => logitsOf(peft)), refCat, TOL, 'cat');
    // linear (equal ranks): PEFT's A = Σ sign·√|w·s|·A, B = Σ √|w·s|·B, cross terms included
    await addWeightedAdapter(peft, ['a', 'c'], [0.6, -1.5], 'lin', { combinationType: 'linear' });
    const lin = new Map<string, Float64Array>();
    for (const [path, l] of peft.loraLayers()) {
      if (!l.adapters.has('lin')) continue;
      const [out, inF] = [l.outFeatures, l.inFeatures];
      const A = new Float64Array(4 * inF);
      const B = new Float64Array(out * 4);
      for (const [a, wt] of [['a', 0.6], ['c', -1.5]] as const) {
        const s = wt * l.adapters.get(a)!.scaling;
        const [ha, hb] = [await host(l.A(a).weight), await host(l.B(a).weight)];
        ha.forEach((v, i) => (A[i] += Math.sign(s) * Math.sqrt(Math.abs(s)) * v));
        hb.forEach((v, i) => (B[i] += Math.sqrt(Math.abs(s)) * v));
      }
      lin.set(path, product(B, A, out, 4, inF));
    }
    expect(lin.size).toBe(4);
    assertClose(await peft.withAdapter('lin', () => logitsOf(peft)), await referenceLogits(lin), TOL, 'linear');
    // one adapter, weight 1: the adapter itself (PEFT #3449: the new one never inherits use_rslora)
    await addWeightedAdapter(peft, ['c'], [1], 'c1', { combinationType: 'cat' });
    expect(peft.peftConfig.get('c1')!.use_rslora).toBe(false);
    assertClose(await peft.withAdapter('c1', () => logitsOf(peft)), await peft.withAdapter('c', () => logitsOf(peft)), TOL, 'c1 == c');
    expect(peft.activeAdapter).toBe('a'); // added inactive, frozen
    expect(peft.trainableParameters().length).toBe(8);
    // bad input, nothing added
    await rejects(addWeightedAdapter(peft, ['a', 'b'], [1, 1], 'x', { combinationType: 'linear' }), /'linear' needs adapters of one rank, got a: 4, b: 2/);
    await rejects(addWeightedAdapter(peft, ['a', 'zz'], [1, 1], 'x'), /no adapter named 'zz'/);
    await rejects(addWeightedAdapter(peft, ['a', 'b'], [1], 'x'), /weights must have one number per adapter \(2\)/);
    await rejects(addWeightedAdapter(peft, ['a', 'b'], [1, NaN], 'x'), /weights\[1\] must be a finite number/);
    await rejects(addWeightedAdapter(peft, ['a', 'b'], [1, 1], 'cat'), /an adapter named 'cat' exists already/);
    await rejects(addWeightedAdapter(peft, ['a', 'b'], [1, 1], 'x', { combinationType: 'bogus' as never }), /combinationType must be one of linear, ties, dare_linear, dare_ties, magnitude_prune, cat, svd/);
    await rejects(addWeightedAdapter(peft, ['a', 'c'], [1, 1], 'x', { combinationType: 'ties' }), /combinationType 'ties' needs density/);
    peft.addAdapter('dora', cfg({ use_dora: true }), { generator: new k.Generator(5) });
    await rejects(addWeightedAdapter(peft, ['a', 'dora'], [1, 1], 'x'), /adapter 'dora' uses DoRA/);
    expect(peft.peftConfig.has('x')).toBe(false);
  });

  it('svd at full rank equals cat; truncated, its Frobenius error² is the sum of the dropped σ² (σ by subspace iteration on the host)', async () => {
    const loaded = await base();
    const peft = getPeftModel(loaded, cfg(), 'a', { generator: new k.Generator(1) });
    peft.addAdapter('b', cfg({ r: 2, lora_alpha: 3 }), { generator: new k.Generator(2) });
    const w: [string, number][] = [['a', 0.7], ['b', -0.4]];
    const target = await weightedDeltas(peft, w);
    const refCat = await referenceLogits(target);
    await addWeightedAdapter(peft, ['a', 'b'], [0.7, -0.4], 'full', { combinationType: 'svd', svdRank: 6 });
    assertClose(await peft.withAdapter('full', () => logitsOf(peft)), refCat, TOL, 'svd full rank == cat');
    // the pruning svd types take the dense route (ΔW per adapter, dense SVD): unpruned, the same
    await addWeightedAdapter(peft, ['a', 'b'], [0.7, -0.4], 'dense', { combinationType: 'magnitude_prune_svd', density: 1, svdRank: 6 });
    assertClose(await peft.withAdapter('dense', () => logitsOf(peft)), refCat, TOL, 'magnitude_prune_svd, density 1 == cat');
    await addWeightedAdapter(peft, ['a', 'b'], [0.7, -0.4], 'low', { svdRank: 2 }); // svd is the default, as PEFT
    expect(peft.peftConfig.get('low')!.r).toBe(2);
    for (const [path, l] of peft.loraLayers()) {
      const [out, inF] = [l.outFeatures, l.inFeatures];
      const d = target.get(path)!;
      const approx = product(await host(l.B('low').weight), await host(l.A('low').weight), out, 2, inF);
      const err2 = d.reduce((s, v, i) => s + (v - approx[i]) ** 2, 0);
      // the top-2 eigenvalues of ΔWᵀΔW (σ₁², σ₂²) by orthogonal iteration: an independent route to σ
      const G = new Float64Array(inF * inF);
      for (let i = 0; i < inF; i++) for (let j = 0; j < inF; j++) for (let o = 0; o < out; o++) G[i * inF + j] += d[o * inF + i] * d[o * inF + j];
      let V = [Array.from({ length: inF }, (_, i) => Math.cos(i + 1)), Array.from({ length: inF }, (_, i) => Math.sin(3 * i + 2))];
      for (let it = 0; it < 3000; it++) {
        V = V.map((v) => Array.from({ length: inF }, (_, i) => v.reduce((s, x, j) => s + G[i * inF + j] * x, 0)));
        const n0 = Math.hypot(...V[0]);
        V[0] = V[0].map((x) => x / n0);
        const dot = V[1].reduce((s, x, i) => s + x * V[0][i], 0);
        V[1] = V[1].map((x, i) => x - dot * V[0][i]);
        const n1 = Math.hypot(...V[1]);
        V[1] = V[1].map((x) => x / n1);
      }
      const kept = V.reduce((s, v) => s + v.reduce((t, x, i) => t + x * v.reduce((u, y, j) => u + G[i * inF + j] * y, 0), 0), 0);
      const total = d.reduce((s, v) => s + v * v, 0);
      expect(total - kept, `${path}: something dropped`).toBeGreaterThan(1e-4 * total);
      expect(Math.abs(err2 - (total - kept)), `${path}: error² ${err2} vs dropped σ² ${total - kept}`).toBeLessThan(1e-4 * total);
    }
  });

  it('hotswapAdapter writes the new weights into the same tensors and buffers; a mismatched adapter is refused and nothing changes', async () => {
    const other = await base();
    const donor = getPeftModel(other, cfg({ lora_alpha: 16 }), 'default', { generator: new k.Generator(9) });
    const donorLogits = await logitsOf(donor);
    const files = await savePretrained(donor, 'files');
    const bad = await savePretrained(getPeftModel(await base(), cfg({ r: 2 }), 'default', { generator: new k.Generator(8) }), 'files');
    const wider = await savePretrained(getPeftModel(await base(), cfg({ target_modules: ['q_proj', 'k_proj', 'v_proj'] }), 'default', { generator: new k.Generator(8) }), 'files');

    const peft = getPeftModel(await base(), cfg(), 'default', { generator: new k.Generator(1) });
    const before = await logitsOf(peft);
    const layers = peft.loraLayers();
    const tensors = layers.flatMap(([, l]) => [l.A('default').weight, l.B('default').weight]);
    const storages = tensors.map((t) => t.storage);
    const params = peft.parameters();
    await rejects(hotswapAdapter(peft, 'default', bad), /q_proj has rank 2, adapter 'default' has rank 4/);
    await rejects(hotswapAdapter(peft, 'default', wider), /targets model.layers.0.self_attn.k_proj, which adapter 'default' does not/);
    await rejects(hotswapAdapter(peft, 'nope', files), /no adapter named 'nope'/);
    expect([...peft.peftConfig.keys()]).toEqual(['default']);
    expect(peft.loraLayers().map(([p]) => p)).toEqual(layers.map(([p]) => p));
    assertClose(await logitsOf(peft), before, { atol: 0, rtol: 0 }, 'refused swaps changed nothing');

    await hotswapAdapter(peft, 'default', files);
    assertClose(await logitsOf(peft), donorLogits, TOL, 'the donor adapter, scaling included');
    expect(peft.loraLayers().every(([p, l], i) => p === layers[i][0] && l === layers[i][1])).toBe(true);
    expect(peft.loraLayers().flatMap(([, l]) => [l.A('default').weight, l.B('default').weight]).every((t, i) => t === tensors[i] && t.storage === storages[i])).toBe(true);
    expect(peft.parameters().every((p, i) => p === params[i])).toBe(true);
    expect(peft.peftConfig.get('default')!.lora_alpha).toBe(16);
    expect(peft.trainableParameters().length).toBe(8); // still the trainable adapter it was
  });
});
