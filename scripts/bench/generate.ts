// Generation benchmark (bundled and run by scripts/bench.mjs): prefill and decode tokens/s and
// device memory (resident weights, and the peak above them while generating), for the
// conformance checkpoints (tiny) and a ~100M-parameter random Llama-shaped model, on wasm and
// WebGPU. Greedy decoding through the KV cache. The browser run is scripts/bench/generate-page.js.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '../../src/index.js';
import { generateTokens } from '../../src/generation/generate.js';
import { loadModel } from '../../src/models/load.js';
import { qWeight, quantizeQ4, quantizeQ8 } from '../../src/nn/quant.js';

const root = new URL('../..', import.meta.url).pathname;

/** Prefill and decode tokens/s (greedy, after a warm-up) and device memory; real-gpu.ts uses it too. */
export async function measure(model: k.models.DecoderLM, backend: k.Backend, prompt: number, decode: number) {
  const ids = Array.from({ length: prompt }, (_, i) => (i * 7 + 3) % model.config.vocabSize);
  // warm up (JIT, kernel compiles, memory growth), as the peer is warmed up
  for await (const _ of generateTokens(model, ids, { greedy: true, maxTokens: 2 }));
  backend.resetPeak();
  const base = backend.memory().liveBytes;
  const t0 = performance.now();
  let tFirst = 0;
  let n = 0;
  for await (const _ of generateTokens(model, ids, { greedy: true, maxTokens: decode })) {
    if (!n) tFirst = performance.now();
    n++;
  }
  const t1 = performance.now();
  return {
    prefillTokS: +(prompt / ((tFirst - t0) / 1000)).toFixed(1),
    decodeTokS: n > 1 ? +((n - 1) / ((t1 - tFirst) / 1000)).toFixed(2) : null,
    /** device bytes held before generating: the weights (and RoPE tables) */
    residentMiB: +(base / 2 ** 20).toFixed(1),
    /** the peak above that while generating: KV cache and activations */
    peakMiB: +((backend.memory().peakLiveBytes - base) / 2 ** 20).toFixed(1),
  };
}

/**
 * The same ~95M Llama-shaped model exported to ONNX (scripts/bench/export-onnx.py, needs Debian's
 * python3-torch) and run by onnxruntime-web's wasm backend in Node, one thread as kiln: greedy,
 * KV cache fed back each step. Null when the model cannot be exported here.
 */
async function onnxruntimeWasm(prompt: number, decode: number): Promise<{ prefillTokS: number; decodeTokS: number } | null> {
  const file = join(root, '.cache/bench/llama95m.onnx');
  if (!existsSync(file)) {
    const r = spawnSync('/usr/bin/python3', [join(root, 'scripts/bench/export-onnx.py'), file], { encoding: 'utf8' });
    if (r.status !== 0) {
      console.error(`[generate] no onnxruntime-web comparison: exporting the ONNX model failed (${(r.stderr || r.error?.message || '').trim().split('\n').pop()})`);
      return null;
    }
  }
  const ort = await import(join(root, 'node_modules/onnxruntime-web/dist/ort.wasm.min.mjs'));
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create(readFileSync(file), { executionProviders: ['wasm'] });
  const L = 12, HKV = 5, D = 64, V = 32000;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const feeds = (ids: number[], pos: number[], past: any) => {
    const f: Record<string, unknown> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(pos.map(BigInt)), [1, pos.length]),
    };
    for (let n = 0; n < L; n++) for (const kv of ['key', 'value']) f[`past_${kv}_${n}`] = past ? past[`present_${kv}_${n}`] : new ort.Tensor('float32', new Float32Array(0), [1, HKV, 0, D]);
    return f;
  };
  const argmaxLast = (data: Float32Array, T: number): number => {
    let b = 0;
    const off = (T - 1) * V;
    for (let i = 1; i < V; i++) if (data[off + i] > data[off + b]) b = i;
    return b;
  };
  const ids = Array.from({ length: prompt }, (_, i) => (i * 7 + 3) % V);
  await session.run(feeds(ids, ids.map((_, i) => i), null)); // warm up
  const t0 = performance.now();
  let out = await session.run(feeds(ids, ids.map((_, i) => i), null));
  const t1 = performance.now();
  let tok = argmaxLast(out.logits.data, prompt);
  for (let s = 0; s < decode - 1; s++) {
    out = await session.run(feeds([tok], [prompt + s], out));
    tok = argmaxLast(out.logits.data, 1);
  }
  const t2 = performance.now();
  await session.release();
  return { prefillTokS: +(prompt / ((t1 - t0) / 1000)).toFixed(1), decodeTokS: +((decode - 1) / ((t2 - t1) / 1000)).toFixed(2) };
}

export async function* generateBench(backends: string[]): AsyncGenerator<Record<string, unknown>> {
  for (const name of backends) {
    const backend = await k.createBackend(name as k.BackendName);
    k.use(backend);
    for (const arch of ['llama', 'gpt2', 'mixtral']) {
      const { model } = await loadModel(join(root, 'tests/golden/checkpoints', arch), { backend });
      yield { bench: 'generate', backend: name, model: `tiny ${arch}`, params: [...model.namedParameters()].reduce((a, [, p]) => a + p.size, 0), prompt: 16, decode: 16, ...(await measure(model, backend, 16, 16)) };
    }
    const cfg = { vocabSize: 32000, hiddenSize: 640, numLayers: 12, numHeads: 10, numKVHeads: 5, intermediateSize: 1728, maxPositionEmbeddings: 1024, tieWordEmbeddings: false };
    const model = new k.models.DecoderLM(cfg, { backend, generator: new k.Generator(1) }).eval();
    const params = [...model.namedParameters()].reduce((a, [, p]) => a + p.size, 0);
    const ours = await measure(model, backend, 128, 16);
    const row = { bench: 'generate', backend: name, model: 'llama-shaped ~100M (random)', params, prompt: 128, decode: 16, ...ours };
    const peer = name === 'wasm' ? await onnxruntimeWasm(128, 16) : null;
    yield peer
      ? { ...row, peer: 'onnxruntime-web 1.30 wasm (1 thread)', peerPrefillTokS: peer.prefillTokS, peerDecodeTokS: peer.decodeTokS, ratioPrefill: +(ours.prefillTokS / peer.prefillTokS).toFixed(2), ratioDecode: ours.decodeTokS ? +(ours.decodeTokS / peer.decodeTokS).toFixed(2) : null }
      : row;
    // the same model with its projections kept quantized (dequantized inside the matmul)
    const host: [k.nn.Linear, Float32Array][] = [];
    for (const [n, m] of model.namedModules()) if (m instanceof k.nn.Linear && /layers\.\d+\./.test(n)) host.push([m, (await m.weight.toArray()) as Float32Array]);
    for (const type of ['q8_0', 'q4_0'] as const) {
      for (const [m, w] of host) {
        const [N, K] = [m.outFeatures, m.inFeatures];
        m.setQuantized(qWeight(type === 'q8_0' ? quantizeQ8(w, N, K) : quantizeQ4(w, N, K), N, K, backend, type));
      }
      yield { bench: 'generate', backend: name, model: `llama-shaped ~100M (random), projections ${type.toUpperCase()}`, params, prompt: 128, decode: 16, ...(await measure(model, backend, 128, 16)) };
    }
    for (const [, p] of model.namedParameters()) p.dispose();
  }
}
