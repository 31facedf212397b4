// Cases the harness must classify as given (`want`): if one of these is misread, the fuzz counts
// mean nothing. Run with `node scripts/fuzz.mjs --self-test`.
import { readSafetensors, writeSafetensorsRaw } from './formats.mjs';
import { enc } from './values.mjs';

const folder = (files) => Object.fromEntries(Object.entries(files).map(([f, b]) => [`model/${f}`, b]));

/** The llama checkpoint with model.norm.weight all NaN: it loads, and its logits are NaN. */
function nanWeights(llama) {
  const files = { ...llama };
  for (const f of Object.keys(files).filter((n) => n.endsWith('.safetensors'))) {
    const st = readSafetensors(files[f]);
    const e = st.header['model.norm.weight'];
    if (!e) continue;
    const data = st.data.slice();
    new Float32Array(data.buffer, data.byteOffset + e.data_offsets[0], (e.data_offsets[1] - e.data_offsets[0]) / 4).fill(NaN);
    files[f] = writeSafetensorsRaw(JSON.stringify(st.header), data);
  }
  return files;
}

export function selfTestCases(b) {
  const llama = b.checkpoints.llama;
  const load = { kind: 'load', path: 'model' };
  const self = (what) => ({ kind: 'self', what });
  return [
    { desc: 'the llama checkpoint as it is', want: 'ok', files: folder(llama), job: load, expect: 'valid' },
    { desc: 'a folder with only config.json', want: 'kiln-error', files: folder({ 'config.json': llama['config.json'] }), job: load, expect: 'invalid' },
    { desc: 'a synchronous endless loop', want: 'timeout', files: {}, job: self('hang'), expect: 'any', timeoutMs: 1500 },
    { desc: 'a promise that never settles', want: 'timeout', files: {}, job: self('hang-async'), expect: 'any', timeoutMs: 1500 },
    { desc: 'a TypeError', want: 'exception', files: {}, job: self('type-error'), expect: 'any' },
    { desc: 'a wasm unreachable trap', want: 'trap', files: {}, job: self('trap'), expect: 'any' },
    { desc: 'process.abort()', want: 'crash', files: {}, job: self('crash'), expect: 'any' },
    { desc: 'process.exit(3)', want: 'crash', files: {}, job: self('exit'), expect: 'any' },
    { desc: 'unbounded recursion', want: 'exception', files: {}, job: self('stack'), expect: 'any' },
    { desc: 'memory growing without bound', want: 'memory', files: {}, job: self('memory'), expect: 'any', maxRssMb: 600, timeoutMs: 30000 },
    { desc: 'a checkpoint whose final norm is NaN', want: 'nan', files: folder(nanWeights(llama)), job: load, expect: 'any' },
    { desc: 'a valid checkpoint marked invalid', want: 'accepted-invalid', files: folder(llama), job: load, expect: 'invalid' },
    { desc: 'an invalid folder marked valid', want: 'rejected-valid', files: folder({ 'config.json': enc('{"model_type": "llama"}') }), job: load, expect: 'valid' },
    { desc: 'a rejection nobody awaits', want: 'exception', files: {}, job: self('late-rejection'), expect: 'any' },
    { desc: 'a tokenizer.json that is fine', want: 'ok', files: { 'tokenizer.json': enc(JSON.stringify(b.tokenizers['bpe-gpt2'])) }, job: { kind: 'tokenizer', texts: ['Hello world', ''] }, expect: 'valid' },
  ];
}
