// The Chromium generation benchmark page: kiln's WebGPU backend against onnxruntime-web's WebGPU
// execution provider on the same adapter, the same ~95M Llama-shaped model (kiln's with its own
// random weights; the peer's exported by export-onnx.py), greedy decoding through a KV cache.
// Loaded unbundled by scripts/bench.mjs from the loopback server; returns rows to the driver.
import * as kiln from '/dist/kiln.js';

const CFG = { vocabSize: 32000, hiddenSize: 640, numLayers: 12, numHeads: 10, numKVHeads: 5, intermediateSize: 1728, maxPositionEmbeddings: 1024, tieWordEmbeddings: false };
const promptIds = (n) => Array.from({ length: n }, (_, i) => (i * 7 + 3) % CFG.vocabSize);

async function kilnRun(model, backend, prompt, decode) {
  const ids = promptIds(prompt);
  const t0 = performance.now();
  let tFirst = 0;
  let n = 0;
  for await (const _ of kiln.generateTokens(model, ids, { greedy: true, maxTokens: decode })) {
    if (!n) tFirst = performance.now();
    n++;
  }
  const t1 = performance.now();
  return { prefillTokS: +(prompt / ((tFirst - t0) / 1000)).toFixed(2), decodeTokS: +((n - 1) / ((t1 - tFirst) / 1000)).toFixed(3) };
}

/** onnxruntime-web on WebGPU: the KV cache stays on the GPU between steps; logits come back for the argmax. */
async function ortRun(ort, session, prompt, decode) {
  const L = CFG.numLayers, HKV = CFG.numKVHeads, D = CFG.hiddenSize / CFG.numHeads, V = CFG.vocabSize;
  const feeds = (ids, pos, past) => {
    const f = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(pos.map(BigInt)), [1, pos.length]),
    };
    for (let n = 0; n < L; n++) for (const kv of ['key', 'value']) f[`past_${kv}_${n}`] = past ? past[`present_${kv}_${n}`] : new ort.Tensor('float32', new Float32Array(0), [1, HKV, 0, D]);
    return f;
  };
  const argmaxLast = async (t, T) => {
    const data = await t.getData();
    let b = 0;
    const off = (T - 1) * V;
    for (let i = 1; i < V; i++) if (data[off + i] > data[off + b]) b = i;
    return b;
  };
  const release = (out) => { for (const t of Object.values(out)) t.dispose(); };
  const ids = promptIds(prompt);
  const t0 = performance.now();
  let out = await session.run(feeds(ids, ids.map((_, i) => i), null));
  let tok = await argmaxLast(out.logits, prompt);
  const t1 = performance.now();
  for (let s = 0; s < decode - 1; s++) {
    const next = await session.run(feeds([tok], [prompt + s], out));
    release(out);
    out = next;
    tok = await argmaxLast(out.logits, 1);
  }
  const t2 = performance.now();
  release(out);
  return { prefillTokS: +(prompt / ((t1 - t0) / 1000)).toFixed(2), decodeTokS: +((decode - 1) / ((t2 - t1) / 1000)).toFixed(3) };
}

window.runGenerate = async ({ prompt, decode, onnx }) => {
  const rows = [];
  try {
    const { backend } = await kiln.init('webgpu');
    const model = new kiln.models.DecoderLM(CFG, { backend, generator: new kiln.Generator(1) }).eval();
    const params = [...model.namedParameters()].reduce((a, [, p]) => a + p.size, 0);
    await kilnRun(model, backend, 8, 2); // warm up: pipelines compile, buffers pool
    backend.resetPeak();
    const base = backend.memory().liveBytes;
    const ours = await kilnRun(model, backend, prompt, decode);
    const peakMiB = +((backend.memory().peakLiveBytes - base) / 2 ** 20).toFixed(1);
    for (const [, p] of model.namedParameters()) p.dispose();
    const row = { bench: 'generate', runtime: 'chromium', backend: 'webgpu', adapter: backend.report.architecture || backend.report.vendor, model: 'llama-shaped ~100M (random)', params, prompt, decode, ...ours, peakMiB };
    if (!onnx) return { rows: [row] };
    const ort = await import('/node_modules/onnxruntime-web/dist/ort.webgpu.min.mjs');
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
    const kvOut = {};
    for (let n = 0; n < CFG.numLayers; n++) for (const kv of ['key', 'value']) kvOut[`present_${kv}_${n}`] = 'gpu-buffer';
    const session = await ort.InferenceSession.create(onnx, { executionProviders: ['webgpu'], preferredOutputLocation: kvOut });
    await ortRun(ort, session, 8, 2);
    const peer = await ortRun(ort, session, prompt, decode);
    await session.release();
    rows.push({ ...row, peer: `onnxruntime-web ${ort.env.versions?.web ?? ''} webgpu`.replace('  ', ' '), peerPrefillTokS: peer.prefillTokS, peerDecodeTokS: peer.decodeTokS, ratioPrefill: +(ours.prefillTokS / peer.prefillTokS).toFixed(2), ratioDecode: +(ours.decodeTokS / peer.decodeTokS).toFixed(2) });
  } catch (e) {
    return { rows, error: String((e && e.stack) || e) };
  }
  return { rows };
};
