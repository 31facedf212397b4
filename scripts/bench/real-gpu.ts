// Checks and measurements for a machine with a real GPU (run by hand there: nothing in CI has
// one). Bundle with scripts/run-ts.sh, or esbuild with 'webgpu' external, and run under Node with
// the `webgpu` package and the GPU's Vulkan driver. Prints JSON lines:
// - conformance on this adapter: each tiny checkpoint's logits against its PyTorch golden, its
//   greedy continuation, the GGUF files kept quantized, and the device sampler against the host
//   reference;
// - generation speed: prefill and decode tokens/s and device memory for the ~100M and a ~1.1B
//   Llama-shaped model, f32 and with Q8_0 / Q4_0 projections (scripts/bench/torch-peer.py runs
//   the same shapes in PyTorch on CUDA beside it).
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import * as k from '../../src/index.js';
import { DeviceSampler, generateTokens, pickToken, processLogits, Rng } from '../../src/generation/index.js';
import { loadModel } from '../../src/models/load.js';
import { qWeight, type QuantType } from '../../src/nn/quant.js';
import { measure } from './generate.js';

const root = new URL('../..', import.meta.url).pathname;
const dir = join(root, 'tests/golden/checkpoints');
const emit = (row: Record<string, unknown>): void => console.log(JSON.stringify(row));
const maxAbs = (xs: ArrayLike<number>): number => Array.from(xs).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const relErr = (got: ArrayLike<number>, want: ArrayLike<number>): number => {
  let e = 0;
  for (let i = 0; i < want.length; i++) e = Math.max(e, Math.abs(got[i] - want[i]));
  return +(e / maxAbs(want)).toExponential(2);
};

async function conformance(backend: k.Backend): Promise<void> {
  for (const arch of ['llama', 'mistral', 'qwen2', 'gemma', 'phi3', 'mixtral', 'gpt2']) {
    const g = JSON.parse(readFileSync(join(dir, arch, 'golden.json'), 'utf8'));
    const { model } = await loadModel(join(dir, arch), { backend });
    const { logits } = k.noGrad(() => model.call({ inputIds: k.tensor(g.ids.data, { shape: g.ids.shape, dtype: 'i32' }) })) as { logits: k.Tensor };
    const prompt = g.ids.data as number[];
    const tokens: number[] = [];
    for await (const s of generateTokens(model, prompt, { greedy: true, maxTokens: g.greedy.data.length - prompt.length })) tokens.push(s.token);
    const greedyOk = JSON.stringify([...prompt, ...tokens]) === JSON.stringify(g.greedy.data);
    emit({ check: 'checkpoint', arch, logitsRelErr: relErr(await logits.toArray(), g.logits.data), tolerance: 1e-3, greedyIdentical: greedyOk });
  }
  for (const [file, golden] of [['tiny-llama.gguf', 'golden.json'], ['tiny-qwen2.gguf', 'golden-qwen2.json'], ['tiny-gemma.gguf', 'golden-gemma.json'], ['tiny-phi3.gguf', 'golden-phi3.json']]) {
    const g = JSON.parse(readFileSync(join(dir, 'gguf', golden), 'utf8'));
    const { model } = await loadModel(join(dir, 'gguf', file), { backend });
    const kept = [...model.namedModules()].flatMap(([, m]) => (m instanceof k.nn.Linear && m.quantized ? [m.quantized.type] : []));
    const { logits } = k.noGrad(() => model.call({ inputIds: k.tensor(g.ids.data, { shape: g.ids.shape, dtype: 'i32' }) })) as { logits: k.Tensor };
    emit({ check: 'gguf kept quantized', file, kept: [...new Set(kept)], logitsRelErr: relErr(await logits.toArray(), g.logits.data), tolerance: 1e-3 });
  }
  const V = 32000;
  const opts = { temperature: 1.3, topK: 200, topP: 0.8, minP: 0.02, repetitionPenalty: 1.2, frequencyPenalty: 0.3, presencePenalty: 0.5, seed: 8 };
  const sampler = new DeviceSampler(backend, [[1, 2, 3]], V, opts);
  const rng = new Rng(8);
  const gen: number[] = [];
  let same = 0;
  for (let step = 0; step < 32; step++) {
    const row = Float32Array.from({ length: V }, (_, i) => Math.round(4 * Math.sin(i * 0.37 + step * 1.3) * Math.cos(i * 0.011)) / 2);
    const got = await sampler.sample(k.tensor(row, { shape: [1, 1, V], backend })).toArray();
    const want = pickToken(processLogits(row, opts, [1, 2, 3, ...gen], gen), opts, rng);
    same += +(got[0] === want);
    gen.push(want);
  }
  sampler.dispose();
  emit({ check: 'device sampler vs host reference', vocab: V, steps: 32, sameToken: same });
}

/** Where a decode step's time goes: GPU time per kernel (timestamp queries) against wall time. */
async function profileDecode(model: k.models.DecoderLM, backend: k.Backend, name: string, prompt: number): Promise<void> {
  const ids = Array.from({ length: prompt }, (_, i) => (i * 7 + 3) % model.config.vocabSize);
  const gen = generateTokens(model, ids, { greedy: true, maxTokens: 17 });
  await gen.next(); // prefill
  const p = await k.profile(async () => { for (let i = 0; i < 16; i++) await gen.next(); }, backend);
  await gen.return('length');
  emit({ profile: name, steps: 16, wallMsPerStep: +(p.wallMs / 16).toFixed(3), kernelMsPerStep: +(p.kernelMs / 16).toFixed(3), top: p.kernels.slice(0, 12).map((r) => ({ key: r.key, calls: r.calls / 16, msPerStep: +(r.ms / 16).toFixed(4) })) });
  // the host's share (no profiling): recording kernels (run) and submitting (flush), per step
  const be = backend as unknown as { run: (c: unknown) => void; flush: () => void };
  const [run, flush] = [be.run.bind(be), be.flush.bind(be)];
  const t = { run: 0, flush: 0, runs: 0 };
  be.run = (c) => { const t0 = performance.now(); run(c); t.run += performance.now() - t0; t.runs++; };
  be.flush = () => { const t0 = performance.now(); flush(); t.flush += performance.now() - t0; };
  const g2 = generateTokens(model, ids, { greedy: true, maxTokens: 18 });
  await g2.next();
  await g2.next();
  Object.assign(t, { run: 0, flush: 0, runs: 0 });
  const t0 = performance.now();
  for (let i = 0; i < 16; i++) await g2.next();
  const wall = performance.now() - t0;
  await g2.return('length');
  Object.assign(be, { run, flush });
  emit({ host: name, wallMsPerStep: +(wall / 16).toFixed(3), dispatchesPerStep: t.runs / 16, runMsPerStep: +(t.run / 16).toFixed(3), flushMsPerStep: +(t.flush / 16).toFixed(3) });
}

async function speed(backend: k.Backend, adapter: string): Promise<void> {
  const models: [string, Record<string, number | boolean>, number, number][] = [
    ['llama-shaped ~100M (random)', { vocabSize: 32000, hiddenSize: 640, numLayers: 12, numHeads: 10, numKVHeads: 5, intermediateSize: 1728 }, 128, 64],
    ['llama-shaped ~1.1B (random)', { vocabSize: 32000, hiddenSize: 2048, numLayers: 16, numHeads: 32, numKVHeads: 8, intermediateSize: 5632 }, 512, 64],
  ];
  // --smoke: the same code on a model small enough for a software adapter
  if (process.argv.includes('--smoke')) models.splice(0, 2, ['llama-shaped smoke', { vocabSize: 512, hiddenSize: 256, numLayers: 2, numHeads: 4, numKVHeads: 2, intermediateSize: 512 }, 16, 4]);
  for (const [name, shape, prompt, decode] of models) {
    const cfg = { ...shape, maxPositionEmbeddings: 1024, tieWordEmbeddings: false } as unknown as k.models.DecoderConfig;
    // the weights' values do not change the work: skip the init (buffers start zeroed)
    const model = new k.models.DecoderLM(cfg, { backend, skipInit: true }).eval();
    const params = [...model.namedParameters()].reduce((a, [, p]) => a + p.size, 0);
    emit({ bench: 'generate', backend: 'webgpu', adapter, model: name, params, prompt, decode, weights: 'f32', ...(await measure(model, backend, prompt, decode)) });
    await profileDecode(model, backend, `${name} f32`, prompt);
    {
      // and a prefill's kernels
      const ids = Array.from({ length: prompt }, (_, i) => (i * 7 + 3) % model.config.vocabSize);
      const p = await k.profile(async () => { for await (const _ of generateTokens(model, ids, { greedy: true, maxTokens: 1 })); }, backend);
      emit({ profile: `${name} f32 prefill of ${prompt}`, wallMs: +p.wallMs.toFixed(2), kernelMs: +p.kernelMs.toFixed(2), top: p.kernels.slice(0, 8).map((r) => ({ key: r.key, calls: r.calls, ms: +r.ms.toFixed(3) })) });
    }
    for (const type of ['q8_0', 'q4_0'] as QuantType[]) {
      for (const [n, m] of model.namedModules()) {
        if (!(m instanceof k.nn.Linear) || !/layers\.\d+\./.test(n)) continue;
        const [N, K] = [m.outFeatures, m.inFeatures];
        m.setQuantized(qWeight({ qs: new Int32Array(N * (type === 'q8_0' ? K / 4 : K / 8)), scales: new Float32Array((N * K) / 32) }, N, K, backend, type));
      }
      emit({ bench: 'generate', backend: 'webgpu', adapter, model: name, params, prompt, decode, weights: `projections ${type.toUpperCase()}`, ...(await measure(model, backend, prompt, decode)) });
      await profileDecode(model, backend, `${name} ${type}`, prompt);
    }
    for (const [, t] of [...model.namedParameters(), ...model.namedBuffers()]) t.dispose();
  }
}

const backend = await k.createBackend('webgpu');
k.use(backend);
const report = (backend as k.WebGPUBackend).report;
emit({ adapter: report });
const adapter = `${report.vendor} ${report.architecture} ${report.description}`.trim();
{
  // a round trip with no work: submit, then read 4 bytes back
  const t = k.tensor([1], { backend });
  await t.toArray();
  const t0 = performance.now();
  for (let i = 0; i < 20; i++) await k.add(t, 1).toArray();
  emit({ roundTripMs: +((performance.now() - t0) / 20).toFixed(3) });
}
if (!process.argv.includes('--speed-only')) await conformance(backend);
if (!process.argv.includes('--check-only')) await speed(backend, adapter);
