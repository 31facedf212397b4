// Hugging Face folders: mutated model.safetensors files, config.json fields and shard indexes.
// Each case is a folder `model/` (plus, for shard escapes, files beside it) loaded by path.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors, writeSafetensorsRaw } from '../formats.mjs';
import { JSON_VALUES, MISSING, clone, dec, describe, enc, flipBits, isNum, isPosInt, parses, setField } from '../values.mjs';

const ARCHS = ['llama', 'gpt2', 'gemma', 'mistral', 'mixtral', 'phi3', 'qwen2'];
const DTYPE_BYTES = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1, U16: 2, U32: 4, U64: 8 };
/** Tensors a checkpoint may carry that no architecture needs. */
const UNUSED = /attn\.bias$|rotary_emb/;

/** Each tiny checkpoint's files by name. */
export function loadCheckpoints(dir) {
  return Object.fromEntries(ARCHS.map((a) => [a, Object.fromEntries(readdirSync(join(dir, a)).filter((f) => f !== 'golden.json').map((f) => [f, new Uint8Array(readFileSync(join(dir, a, f)))]))]));
}

const folder = (files, prefix = 'model/') => Object.fromEntries(Object.entries(files).map(([f, b]) => [prefix + f, b]));
const load = { kind: 'load', path: 'model' };
const weightFiles = (files) => Object.keys(files).filter((f) => f.endsWith('.safetensors'));

// ---------------------------------------------------------------- safetensors

/** Bits that keep a float finite and within 2x of its value: mantissa and sign. */
const SAFE_BITS = { F32: [...Array(23).keys(), 31], F16: [...Array(10).keys(), 15], BF16: [...Array(7).keys(), 15] };

const SAFETENSORS = [
  ['header byte flips', (rng, st, bytes) => {
    const { bytes: out, at } = flipBits(rng, bytes, rng.int(1, 4), 8, 8 + st.headerLen);
    return { bytes: out, desc: `flip bits ${at} in the header`, expect: parses(dec(out.subarray(8, 8 + st.headerLen))) ? 'any' : 'invalid' };
  }],
  ['data bit flips (values stay finite)', (rng, st, bytes) => {
    const floats = Object.entries(st.header).filter(([n, e]) => n !== '__metadata__' && SAFE_BITS[e.dtype] && e.data_offsets[1] > e.data_offsets[0]);
    const [name, e] = rng.pick(floats);
    const w = DTYPE_BYTES[e.dtype];
    const out = bytes.slice();
    const base = 8 + st.headerLen + e.data_offsets[0];
    const n = (e.data_offsets[1] - e.data_offsets[0]) / w;
    const at = [];
    for (let k = rng.int(1, 9); k > 0; k--) {
      const i = rng.int(0, n);
      const bit = rng.pick(SAFE_BITS[e.dtype]);
      out[base + i * w + (bit >> 3)] ^= 1 << (bit & 7);
      at.push(`${i}.${bit}`);
    }
    return { bytes: out, desc: `flip value bits ${at} of '${name}' (${e.dtype})`, expect: 'valid' };
  }],
  ['truncation', (rng, st, bytes) => {
    const cut = rng.chance(0.5) ? rng.int(0, 8 + st.headerLen + 1) : rng.int(8 + st.headerLen, bytes.length);
    return { bytes: bytes.slice(0, cut), desc: `truncate to ${cut} of ${bytes.length} bytes`, expect: 'invalid' };
  }],
  ['header length field', (rng, st, bytes) => {
    const L = st.headerLen;
    const [label, v] = rng.pick([['0', 0n], ['1', 1n], ['7', 7n], ['len-1', L - 1], ['len+1', L + 1], ['len-8', L - 8], ['len+8', L + 8], ['size-8', bytes.length - 8], ['size-7', bytes.length - 7], ['2^32', 2n ** 32n], ['2^53+1', 2n ** 53n + 1n], ['2^63', 2n ** 63n], ['2^64-1', 2n ** 64n - 1n]]);
    const out = bytes.slice();
    new DataView(out.buffer).setBigUint64(0, BigInt(v), true);
    const n = Number(v);
    const ok = n >= 2 && n <= bytes.length - 8 && parses(dec(bytes.subarray(8, 8 + n)));
    return { bytes: out, desc: `header length ${label} (${v})`, expect: ok ? 'any' : 'invalid' };
  }],
  ['dtype field', (rng, st) => {
    const h = clone(st.header);
    const name = rng.pick(Object.keys(h).filter((n) => n !== '__metadata__'));
    const v = rng.pick(['F64', 'F32', 'F16', 'BF16', 'I32', 'I64', 'U8', 'BOOL', 'F8_E4M3', 'XYZ', 'f32', '', null, 5, ['F32'], MISSING]);
    const same = typeof v === 'string' && DTYPE_BYTES[v] === DTYPE_BYTES[h[name].dtype];
    setField(h[name], 'dtype', v);
    return { header: h, desc: `'${name}'.dtype = ${describe(v)}`, expect: same ? 'any' : 'invalid' };
  }],
  ['shape field', (rng, st) => {
    const h = clone(st.header);
    const name = rng.pick(Object.keys(h).filter((n) => n !== '__metadata__'));
    const s = h[name].shape;
    const [label, v] = rng.pick([
      ['[]', []], ['drop a dim', s.slice(1)], ['append 1', [...s, 1]], ['reversed', [...s].reverse()], ['first x2', [s[0] * 2, ...s.slice(1)]],
      ['a 0', [0, ...s.slice(1)]], ['a -1', [-1, ...s.slice(1)]], ['a 1.5', [1.5, ...s.slice(1)]], ['a "4"', ['4', ...s.slice(1)]], ['a null', [null]],
      ['2^53', [2 ** 53]], ['[2^31, 2^31]', [2 ** 31, 2 ** 31]], ['null', null], ['"16"', '16'], ['missing', MISSING],
    ]);
    const count = (x) => (Array.isArray(x) && x.every((d) => Number.isInteger(d) && d >= 0) ? x.reduce((a, b) => a * b, 1) : -1);
    const same = count(v) === count(s);
    setField(h[name], 'shape', v);
    return { header: h, desc: `'${name}'.shape = ${label}`, expect: same ? 'any' : 'invalid' };
  }],
  ['data_offsets field', (rng, st) => {
    const h = clone(st.header);
    const names = Object.keys(h).filter((n) => n !== '__metadata__');
    const name = rng.pick(names);
    const [b, e] = h[name].data_offsets;
    const other = h[rng.pick(names.filter((n) => n !== name))].data_offsets;
    const [label, v] = rng.pick([
      ['+1', [b + 1, e + 1]], ['-1', [b - 1, e - 1]], ['swapped', [e, b]], ['[b]', [b]], ['[b, e, 0]', [b, e, 0]], ['strings', [String(b), String(e)]],
      ["another tensor's", other], ['[2^53, 2^53+n]', [2 ** 53, 2 ** 53 + e - b]], ['past the end', [b + 1e6, e + 1e6]], ['null', null], ['missing', MISSING],
    ]);
    setField(h[name], 'data_offsets', v);
    return { header: h, desc: `'${name}'.data_offsets = ${label} ${describe(v)}`, expect: 'invalid' };
  }],
  ['missing or renamed tensor', (rng, st) => {
    const h = clone(st.header);
    const name = rng.pick(Object.keys(h).filter((n) => n !== '__metadata__'));
    const to = rng.pick([null, '__proto__', 'constructor', '', `${name}.x`, 'x'.repeat(10000)]);
    if (to !== null) h[to] = h[name];
    delete h[name];
    return { header: h, desc: to === null ? `delete '${name}'` : `rename '${name}' to ${JSON.stringify(to.slice(0, 20))}${to.length > 20 ? '...' : ''}`, expect: UNUSED.test(name) ? 'any' : 'invalid' };
  }],
  ['duplicate tensor key', (rng, st) => {
    const names = Object.keys(st.header).filter((n) => n !== '__metadata__');
    const a = rng.pick(names);
    const b = rng.pick(names.filter((n) => n !== a));
    // a raw duplicate key: JSON.parse keeps the last, which points at b's bytes
    const text = JSON.stringify(st.header).replace(/}$/, `,${JSON.stringify(a)}:${JSON.stringify(st.header[b])}}`);
    return { text, desc: `a second '${a}' entry with '${b}'s dtype/shape/offsets`, expect: 'invalid' };
  }],
  ['__metadata__ and extra entries', (rng, st) => {
    const h = clone(st.header);
    const [label, edit] = rng.pick([
      ['__metadata__ = []', () => (h.__metadata__ = [])], ['__metadata__ = 5', () => (h.__metadata__ = 5)], ['__metadata__ nested', () => (h.__metadata__ = { format: { a: [1] } })],
      ['__metadata__ = null', () => (h.__metadata__ = null)], ['an empty extra tensor', () => (h['extra.weight'] = { dtype: 'F32', shape: [0], data_offsets: [0, 0] })],
      ['extra __proto__ tensor', () => (h.__proto__x = { dtype: 'F32', shape: [0], data_offsets: [0, 0] })],
      ['an extra layer 7 tensor', () => (h['model.layers.7.mlp.gate_proj.weight'] = { dtype: 'F32', shape: [0], data_offsets: [0, 0] })],
    ]);
    edit();
    return { header: h, desc: label, expect: 'any' };
  }],
];

function safetensorsCase(rng, cps) {
  const arch = rng.pick(ARCHS);
  const files = { ...cps[arch] };
  const file = rng.pick(weightFiles(files));
  const bytes = files[file];
  const st = readSafetensors(bytes);
  const [kind, mutate] = rng.pick(SAFETENSORS);
  const m = mutate(rng, st, bytes);
  files[file] = m.bytes ?? writeSafetensorsRaw(m.text ?? JSON.stringify(m.header), st.data);
  return { desc: `${arch}/${file}: ${m.desc}`, kind, files: folder(files), job: load, expect: m.expect };
}

// ---------------------------------------------------------------- config.json

const INT = 'int';
const POS = 'positive';
const EPS = 'eps';
const ENUM = 'enum';
const BOOL = 'bool';
const COMMON = {
  vocab_size: INT, hidden_size: INT, num_hidden_layers: INT, num_attention_heads: INT, num_key_value_heads: INT, intermediate_size: INT,
  max_position_embeddings: INT, head_dim: INT, rope_theta: POS, rms_norm_eps: EPS, partial_rotary_factor: 'fraction', model_type: ENUM,
  hidden_act: ENUM, tie_word_embeddings: BOOL, attention_bias: BOOL, mlp_bias: BOOL, rope_scaling: 'rope',
  sliding_window: 'any', // read only by the types below
};
const WINDOWED = { ...COMMON, sliding_window: 'window' };
const FIELDS = {
  gpt2: { vocab_size: INT, n_embd: INT, n_layer: INT, n_head: INT, n_inner: INT, n_positions: INT, layer_norm_epsilon: EPS, activation_function: ENUM, model_type: ENUM, tie_word_embeddings: BOOL },
  llama: COMMON, gemma: { ...COMMON, hidden_activation: ENUM }, mistral: WINDOWED, phi3: WINDOWED,
  qwen2: { ...COMMON, use_sliding_window: BOOL }, // sliding_window is read only with use_sliding_window (false here)
  mixtral: { ...WINDOWED, num_local_experts: INT, num_experts_per_tok: INT, router_aux_loss_coef: 'any' },
};
const ENUMS = {
  model_type: ['llama', 'mistral', 'qwen2', 'gemma', 'gpt2', 'phi3', 'mixtral'],
  hidden_act: ['silu', 'swish', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'gelu_fast', 'relu'],
};
ENUMS.hidden_activation = ENUMS.activation_function = ENUMS.hidden_act;
const ROPE = [
  { rope_type: 'linear', factor: 2 },
  { rope_type: 'dynamic', factor: 2 },
  { type: 'yarn', factor: 2, original_max_position_embeddings: 16, beta_fast: 32, beta_slow: 1 },
  { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
];
const ROPE_FIELDS = { factor: POS, original_max_position_embeddings: INT, low_freq_factor: POS, high_freq_factor: POS, beta_fast: 'optnonneg', beta_slow: 'optnonneg', mscale: 'optnonneg', mscale_all_dim: 'optnonneg', rope_type: ENUM };
const ENUM_ROPE = ['linear', 'dynamic', 'yarn', 'llama3', 'default'];
/** The fields each scaling type reads (an edit to another one changes nothing). */
const ROPE_READS = {
  linear: ['factor', 'rope_type'], dynamic: ['factor', 'original_max_position_embeddings', 'rope_type'],
  yarn: ['factor', 'original_max_position_embeddings', 'beta_fast', 'beta_slow', 'mscale', 'mscale_all_dim', 'rope_type'],
  llama3: ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings', 'rope_type'],
};

/** What an edited field may do: 'invalid' (must raise a KilnError) or 'any' (load or raise). */
function verdict(kind, v, field) {
  const absent = v === MISSING || v === null;
  switch (kind) {
    case INT: // a size or count: a positive integer; missing may have a default
      return absent ? 'any' : isPosInt(v) ? 'any' : 'invalid';
    case 'window':
      return absent || v === 0 || isPosInt(v) ? 'any' : 'invalid';
    case POS:
      return absent ? 'any' : isNum(v) && v > 0 ? 'any' : 'invalid';
    case 'optpos':
      return absent ? 'any' : isNum(v) && v > 0 ? 'any' : 'invalid';
    case 'optnonneg': // YaRN's betas and mscales: 0 is a valid edge in transformers (a ramp to the last dim, a scale of 1)
      return absent ? 'any' : isNum(v) && v >= 0 ? 'any' : 'invalid';
    case EPS:
      return absent ? 'any' : isNum(v) && v >= 0 ? 'any' : 'invalid';
    case 'fraction':
      return absent || (isNum(v) && v >= 0 && v <= 1) ? 'any' : 'invalid';
    case ENUM:
      if (field === 'model_type') return ENUMS.model_type.includes(v) ? 'any' : 'invalid';
      if (field === 'rope_type') return ENUM_ROPE.includes(v) ? 'any' : 'invalid';
      return absent || ENUMS[field].includes(v) ? 'any' : 'invalid';
    case 'rope':
      return absent || v === 0 || v === false || (v && typeof v === 'object' && !Array.isArray(v)) ? 'any' : 'invalid';
    default:
      return 'any';
  }
}

function configCase(rng, cps) {
  const arch = rng.pick(ARCHS);
  const files = { ...cps[arch] };
  const cfg = JSON.parse(dec(files['config.json']));
  const fields = FIELDS[arch];
  let desc;
  let expect;
  const r = rng.next();
  if (r < 0.1) {
    // text-level: byte flips, a cut, Python's NaN literal, a non-object document
    const text = dec(files['config.json']);
    const [label, out] = rng.pick([
      ['cut', () => text.slice(0, rng.int(0, text.length))],
      ['byte flips', () => dec(flipBits(rng, enc(text), rng.int(1, 4)).bytes)],
      ['rope_theta: NaN literal', () => JSON.stringify({ ...cfg, rope_theta: 0 }).replace('"rope_theta":0', '"rope_theta":NaN')],
      ['an array', () => '[1, 2]'], ['null', () => 'null'], ['a number', () => '5'], ['empty', () => ''],
    ]);
    const t = out();
    files['config.json'] = enc(t);
    let obj;
    try { obj = JSON.parse(t); } catch { obj = undefined; }
    const same = obj && typeof obj === 'object' && !Array.isArray(obj) && JSON.stringify(obj) === JSON.stringify(cfg);
    return { desc: `${arch}/config.json: ${label}`, kind: 'text', files: folder(files), job: load, expect: same ? 'valid' : obj && typeof obj === 'object' && !Array.isArray(obj) ? 'any' : 'invalid' };
  }
  if (r < 0.35 && arch !== 'gpt2') {
    // rope_scaling: a well-formed one (must load), or one with a subfield edited
    const rope = clone(rng.pick(ROPE));
    const type0 = rope.rope_type ?? rope.type;
    cfg.rope_scaling = rope;
    if (rng.chance(0.15)) {
      desc = `rope_scaling = ${JSON.stringify(rope)}`;
      expect = 'valid';
    } else {
      const field = rng.pick(Object.keys(ROPE_FIELDS).filter((f) => f in rope || rng.chance(0.3)));
      const [label, v] = rng.pick(JSON_VALUES);
      const key = field === 'rope_type' && 'type' in rope ? 'type' : field;
      setField(rope, key, v);
      desc = `rope_scaling ${JSON.stringify(ROPE.find((x) => (x.rope_type ?? x.type) === (cfg.rope_scaling.rope_type ?? cfg.rope_scaling.type)) ?? {})}.${key} = ${label}`;
      // factor is required by every scaling type; the others have defaults or are type-specific
      const kind = ROPE_FIELDS[field];
      expect = field === 'factor' && v === MISSING ? 'invalid' : verdict(kind === POS && field !== 'factor' ? 'optpos' : kind, v, field);
      if (field === 'original_max_position_embeddings' && (v === MISSING || v === null)) expect = 'any';
      if (!ROPE_READS[type0].includes(field)) expect = 'any';
    }
    files['config.json'] = enc(JSON.stringify(cfg));
    return { desc: `${arch}/config.json: ${desc}`, kind: 'rope_scaling', files: folder(files), job: load, expect };
  }
  const field = rng.pick(Object.keys(fields));
  const [label, v] = rng.pick(JSON_VALUES);
  setField(cfg, field, v);
  expect = verdict(fields[field], v, field);
  files['config.json'] = enc(JSON.stringify(cfg));
  return { desc: `${arch}/config.json: ${field} = ${label}`, kind: field, files: folder(files), job: load, expect };
}

// ---------------------------------------------------------------- shard indexes

/** The qwen2 checkpoint cut into three shards with an index (the llama one is already two). */
function reshard(files) {
  const st = readSafetensors(files['model.safetensors']);
  const names = Object.keys(st.header).filter((n) => n !== '__metadata__').sort();
  const shards = [[], [], []];
  names.forEach((n, i) => shards[i % 3].push(n));
  const out = { 'config.json': files['config.json'] };
  const weight_map = {};
  shards.forEach((ns, s) => {
    const file = `model-0000${s + 1}-of-00003.safetensors`;
    out[file] = writeSafetensors(Object.fromEntries(ns.map((n) => {
      const e = st.header[n];
      return [n, { dtype: e.dtype, shape: e.shape, bytes: st.data.slice(e.data_offsets[0], e.data_offsets[1]) }];
    })));
    for (const n of ns) weight_map[n] = file;
  });
  out['model.safetensors.index.json'] = enc(JSON.stringify({ metadata: { total_size: st.data.length }, weight_map }, null, 2));
  return out;
}

function shardsCase(rng, cps) {
  const which = rng.pick(['llama', 'qwen2']);
  const files = which === 'llama' ? { ...cps.llama } : reshard(cps.qwen2);
  const index = JSON.parse(dec(files['model.safetensors.index.json']));
  const map = index.weight_map;
  const keys = Object.keys(map);
  const key = rng.pick(keys);
  const shard = map[key];
  const extra = {}; // files outside model/
  const special = {}; // model/NAME -> a FIFO, a symlink or a folder
  const [label, expect, edit] = rng.pick([
    ["a value '../shard' (the shard exists there)", 'invalid', () => { for (const k of keys) if (map[k] === shard) map[k] = `../${shard}`; extra[shard] = files[shard]; }],
    // @CASE@ is the case's folder, an absolute path once written
    ['a value naming an absolute path (that exists)', 'invalid', () => { for (const k of keys) if (map[k] === shard) map[k] = `@CASE@/outside/${shard}`; extra[`outside/${shard}`] = files[shard]; }],
    ["a value 'sub/../shard'", 'any', () => { for (const k of keys) if (map[k] === shard) map[k] = `sub/../${shard}`; special['sub'] = { dir: true }; }],
    ['a missing shard file', 'invalid', () => (map[key] = 'model-00009-of-00009.safetensors')],
    ['a shard that is a FIFO', 'invalid', () => ((map[key] = 'fifo.safetensors'), (special['fifo.safetensors'] = { fifo: true }))],
    ['a shard that links to /dev/zero', 'invalid', () => ((map[key] = 'zero.safetensors'), (special['zero.safetensors'] = { symlink: '/dev/zero' }))],
    ['a shard that is a folder', 'invalid', () => ((map[key] = 'dir.safetensors'), (special['dir.safetensors'] = { dir: true }))],
    ...[['""', ''], ['null', null], ['5', 5], ['{}', {}], ['[]', []], ['"."', '.'], ['"/"', '/']].map(([n, v]) => [`a value ${n}`, 'invalid', () => (map[key] = v)]),
    ...[['[]', []], ['null', null], ['"x"', 'x'], ['{}', {}], ['missing', MISSING]].map(([n, v]) => [`weight_map = ${n}`, 'invalid', () => setField(index, 'weight_map', v)]),
    ['a key renamed (same shard)', 'any', () => { map[`${key}.renamed`] = map[key]; delete map[key]; }],
    ['a shard left out of the index', 'invalid', () => { for (const k of keys) if (map[k] === shard) delete map[k]; }],
    ['config.json is a FIFO', 'invalid', () => (special['config.json'] = { fifo: true })],
    ['config.json links to /dev/zero', 'invalid', () => (special['config.json'] = { symlink: '/dev/zero' })],
    ['tokenizer.json is a FIFO', 'invalid', () => (special['tokenizer.json'] = { fifo: true })],
    ['tokenizer.json links to /dev/zero', 'invalid', () => (special['tokenizer.json'] = { symlink: '/dev/zero' })],
    ['generation_config.json is a folder', 'invalid', () => (special['generation_config.json'] = { dir: true })],
    ['the index is a FIFO', 'invalid', () => (special['model.safetensors.index.json'] = { fifo: true })],
    ['the index cut short', 'invalid', () => (special.cut = true)],
  ]);
  edit();
  let text = JSON.stringify(index);
  if (special.cut) {
    text = text.slice(0, rng.int(0, text.length - 1));
    delete special.cut;
  }
  files['model.safetensors.index.json'] = enc(text);
  for (const f of Object.keys(special)) delete files[f];
  return { desc: `${which}: ${label}${label.includes('value') ? ` (key '${key}')` : ''}`, kind: label.replace(/ \(.*/, ''), files: { ...folder(files), ...folder(special), ...extra }, job: load, expect };
}

export const checkpointTargets = {
  safetensors: safetensorsCase,
  config: configCase,
  shards: shardsCase,
};
