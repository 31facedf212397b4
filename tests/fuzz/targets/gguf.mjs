// GGUF files: cuts, header byte flips, edited metadata values (model sizes, RoPE, the tokenizer
// arrays), counts and alignment that disagree with the layout, and edited tensor infos.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GGUF, GGML_BLOCK, readGGUF, writeGGUF } from '../formats.mjs';
import { flipBits, isNum } from '../values.mjs';

export function loadGGUFs(dir) {
  return Object.fromEntries(readdirSync(dir).filter((f) => f.endsWith('.gguf')).map((f) => [f, new Uint8Array(readFileSync(join(dir, f)))]));
}

const T = GGUF;
/** [label, type, value]: a value of the entry's own numeric type, or of another type. */
const NUMERIC = [
  ['0', T.U32, 0], ['-1 (i32)', T.I32, -1], ['1.5 (f32)', T.F32, 1.5], ['2^31', T.U32, 2 ** 31], ['2^32 (u64)', T.U64, 2 ** 32], ['1e9', T.U32, 1e9],
  ['2^63 (u64)', T.U64, 2n ** 63n], ['NaN (f32)', T.F32, NaN], ['Infinity (f32)', T.F32, Infinity], ['-1e30 (f32)', T.F32, -1e30], ['1e300 (f64)', T.F64, 1e300],
  ['"abc"', T.STRING, 'abc'], ['"64"', T.STRING, '64'], ['true', T.BOOL, true], ['[1, 2] (u32 array)', T.ARRAY, [1, 2]], ['2 (u8)', T.U8, 2], ['2 (f64)', T.F64, 2],
];
const SIZES = ['context_length', 'embedding_length', 'block_count', 'feed_forward_length', 'attention.head_count', 'attention.head_count_kv', 'vocab_size', 'attention.key_length', 'rope.dimension_count'];
const isNumType = (t) => [T.U8, T.I8, T.U16, T.I16, T.U32, T.I32, T.F32, T.U64, T.I64, T.F64].includes(t);

/** 'invalid' when no reader should accept the edited metadata value, else 'any'. */
function kvVerdict(key, type, v) {
  const num = isNumType(type) ? Number(v) : NaN;
  const field = key.replace(/^[a-z0-9]+\./, '');
  if (SIZES.includes(field)) return Number.isInteger(num) && num > 0 ? 'any' : 'invalid';
  if (field === 'rope.freq_base') return isNum(num) && num > 0 ? 'any' : 'invalid';
  if (field === 'attention.layer_norm_rms_epsilon') return isNum(num) && num >= 0 ? 'any' : 'invalid';
  if (key === 'general.alignment') return Number.isInteger(num) && num > 0 && (num & (num - 1)) === 0 ? 'any' : 'invalid';
  if (key === 'tokenizer.ggml.bos_token_id' || key === 'tokenizer.ggml.eos_token_id') return Number.isInteger(num) && num >= 0 && num < 301 ? 'any' : 'invalid';
  return 'any';
}

function setKV(g, key, type, value, elemType = T.U32) {
  const e = g.kv.find((x) => x.key === key);
  const entry = type === T.ARRAY ? { key, type, elemType, value } : { key, type, value };
  if (e) Object.assign(e, entry, type === T.ARRAY ? {} : { elemType: undefined });
  else g.kv.push(entry);
}

const MUTATIONS = [
  ['truncation', (rng, g, bytes) => {
    const end = Math.max(...g.tensors.map((t) => g.dataStart + t.offset + (t.ne.reduce((a, b) => a * b, 1) / GGML_BLOCK[t.type][0]) * GGML_BLOCK[t.type][1]));
    const cut = rng.chance(0.5) ? rng.int(0, g.headerEnd) : rng.int(g.headerEnd, bytes.length);
    return { bytes: bytes.slice(0, cut), desc: `truncate to ${cut} of ${bytes.length} bytes`, expect: cut < end ? 'invalid' : 'any' };
  }],
  ['header byte flips', (rng, g, bytes) => {
    const { bytes: out, at } = flipBits(rng, bytes, rng.int(1, 4), 0, g.headerEnd);
    return { bytes: out, desc: `flip bits ${at} in the header`, expect: 'any' };
  }],
  ['model metadata value', (rng, g) => {
    const arch = g.kv.find((e) => e.key === 'general.architecture').value;
    const key = `${arch}.${rng.pick([...SIZES, 'rope.freq_base', 'attention.layer_norm_rms_epsilon'])}`;
    const [label, type, v] = rng.pick(NUMERIC);
    setKV(g, key, type, v);
    return { desc: `${key} = ${label}`, expect: kvVerdict(key, type, v) };
  }],
  ['general.* value', (rng, g) => {
    const [key, label, type, v, expect] = rng.pick([
      ['general.architecture', '"llama"', T.STRING, 'llama', 'any'], ['general.architecture', '"qwen2"', T.STRING, 'qwen2', 'any'], ['general.architecture', '"bert"', T.STRING, 'bert', 'invalid'],
      ['general.architecture', '""', T.STRING, '', 'invalid'], ['general.architecture', '5', T.U32, 5, 'invalid'], ['general.architecture', '"__proto__"', T.STRING, '__proto__', 'invalid'],
      ...NUMERIC.map(([l, t, x]) => ['general.alignment', `${l} (layout kept)`, t, x, kvVerdict('general.alignment', t, x) === 'invalid' ? 'invalid' : 'any']),
    ]);
    setKV(g, key, type, v);
    return { desc: `${key} = ${label}`, expect, keepAlign: true };
  }],
  ['tokenizer metadata', (rng, g) => {
    const tokens = g.kv.find((e) => e.key === 'tokenizer.ggml.tokens').value;
    const merges = g.kv.find((e) => e.key === 'tokenizer.ggml.merges').value;
    const [label, expect, edit] = rng.pick([
      ['tokens as a u32 array', 'invalid', () => setKV(g, 'tokenizer.ggml.tokens', T.ARRAY, tokens.map((_, i) => i), T.U32)],
      ['tokens cut to 10', 'invalid', () => setKV(g, 'tokenizer.ggml.tokens', T.ARRAY, tokens.slice(0, 10), T.STRING)],
      ['tokens empty', 'invalid', () => setKV(g, 'tokenizer.ggml.tokens', T.ARRAY, [], T.STRING)],
      ['tokens a string', 'invalid', () => setKV(g, 'tokenizer.ggml.tokens', T.STRING, 'abc')],
      ['tokens with an empty and a repeated token', 'any', () => setKV(g, 'tokenizer.ggml.tokens', T.ARRAY, tokens.map((t, i) => (i === 5 ? '' : i === 6 ? tokens[7] : t)), T.STRING)],
      ['token_type cut to 10', 'invalid', () => setKV(g, 'tokenizer.ggml.token_type', T.ARRAY, Array(10).fill(1), T.I32)],
      ['token_type values 99 / -1', 'any', () => setKV(g, 'tokenizer.ggml.token_type', T.ARRAY, tokens.map((_, i) => (i % 2 ? 99 : -1)), T.I32)],
      ['token_type as strings', 'invalid', () => setKV(g, 'tokenizer.ggml.token_type', T.ARRAY, tokens.map(() => 'x'), T.STRING)],
      ['merges as a u32 array', 'invalid', () => setKV(g, 'tokenizer.ggml.merges', T.ARRAY, merges.map((_, i) => i), T.U32)],
      ['a merge without a space', 'invalid', () => setKV(g, 'tokenizer.ggml.merges', T.ARRAY, merges.map((m, i) => (i === 3 ? 'abc' : m)), T.STRING)],
      ['a merge of unknown tokens', 'any', () => setKV(g, 'tokenizer.ggml.merges', T.ARRAY, [...merges, 'zzz qqq'], T.STRING)],
      ['a merge of three parts', 'invalid', () => setKV(g, 'tokenizer.ggml.merges', T.ARRAY, [...merges, 'a b c'], T.STRING)],
      ['bos_token_id = 301 (past the vocab)', 'invalid', () => setKV(g, 'tokenizer.ggml.bos_token_id', T.U32, 301)],
      ['eos_token_id = 2^32-1', 'invalid', () => setKV(g, 'tokenizer.ggml.eos_token_id', T.U32, 2 ** 32 - 1)],
      ['eos_token_id = -1 (i32)', 'invalid', () => setKV(g, 'tokenizer.ggml.eos_token_id', T.I32, -1)],
      ['bos_token_id = "1"', 'invalid', () => setKV(g, 'tokenizer.ggml.bos_token_id', T.STRING, '1')],
      ['add_bos_token = true', 'any', () => setKV(g, 'tokenizer.ggml.add_bos_token', T.BOOL, true)],
      ['model = "llama" (no scores)', 'any', () => setKV(g, 'tokenizer.ggml.model', T.STRING, 'llama')],
      ['model = "llama", scores cut to 3', 'invalid', () => (setKV(g, 'tokenizer.ggml.model', T.STRING, 'llama'), setKV(g, 'tokenizer.ggml.scores', T.ARRAY, [0, 1, 2], T.F32))],
      ['model = "llama", NaN scores', 'any', () => (setKV(g, 'tokenizer.ggml.model', T.STRING, 'llama'), setKV(g, 'tokenizer.ggml.scores', T.ARRAY, tokens.map(() => NaN), T.F32))],
      ['model = "bert"', 'invalid', () => setKV(g, 'tokenizer.ggml.model', T.STRING, 'bert')],
      ['model = 5', 'invalid', () => setKV(g, 'tokenizer.ggml.model', T.U32, 5)],
      ['pre = "llama-bpe"', 'any', () => setKV(g, 'tokenizer.ggml.pre', T.STRING, 'llama-bpe')],
      ['pre = 7', 'any', () => setKV(g, 'tokenizer.ggml.pre', T.U32, 7)],
      ['chat_template = 5', 'any', () => setKV(g, 'tokenizer.chat_template', T.U32, 5)],
      ['chat_template unparsable', 'any', () => setKV(g, 'tokenizer.chat_template', T.STRING, '{% for %}{{')],
    ]);
    edit();
    return { desc: label, expect };
  }],
  ['counts that lie', (rng, g) => {
    const [label, counts] = rng.pick([
      ['tensor count - 1', { tensors: g.tensors.length - 1 }], ['tensor count + 1', { tensors: g.tensors.length + 1 }], ['tensor count 0', { tensors: 0 }],
      ['tensor count 2^32', { tensors: 2 ** 32 }], ['tensor count 2^63', { tensors: 2n ** 63n }], ['kv count - 1', { kv: g.kv.length - 1 }],
      ['kv count + 1', { kv: g.kv.length + 1 }], ['kv count 2^40', { kv: 2 ** 40 }],
    ]);
    return { desc: label, expect: 'invalid', counts };
  }],
  ['alignment that disagrees with the layout', (rng, g) => {
    const [label, edit, align] = rng.pick([
      ['data padded to 64, general.alignment 32', () => {}, 64],
      ['data padded to 8, general.alignment 32', () => {}, 8],
      ['general.alignment removed, data padded to 64', () => (g.kv = g.kv.filter((e) => e.key !== 'general.alignment')), 64],
      ['general.alignment 64, data padded to 32', () => setKV(g, 'general.alignment', T.U32, 64), 32],
    ]);
    edit();
    return { desc: label, expect: 'any', alignment: align };
  }],
  ['tensor info', (rng, g) => {
    const t = rng.pick(g.tensors);
    const other = rng.pick(g.tensors.filter((x) => x !== t));
    const [label, expect, edit] = rng.pick([
      ['dims reversed', 'any', () => t.ne.reverse()],
      ['first dim 0', 'invalid', () => (t.ne[0] = 0)],
      ['last dim x2', 'invalid', () => (t.ne[t.ne.length - 1] *= 2)],
      ['a dim 2^40', 'invalid', () => (t.ne[t.ne.length - 1] = 2 ** 40)],
      ['an extra dim of 1', 'any', () => t.ne.push(1)],
      ['5 dims', 'invalid', () => t.ne.push(1, 1, 1, 1)],
      ['type 3 (Q4_1)', 'invalid', () => (t.type = 3)],
      ['type 99', 'invalid', () => (t.type = 99)],
      ['type F32 <-> F16', 'invalid', () => (t.type = t.type === 0 ? 1 : 0)],
      ['offset + 1', 'invalid', () => (t.offset += 1)],
      ['offset + 32', 'any', () => (t.offset += 32)],
      ["another tensor's offset", 'invalid', () => (t.offset = other.offset)],
      ['offset past the end', 'invalid', () => (t.offset = 1 << 30)],
      ['offset 2^63', 'invalid', () => (t.offset = 2n ** 63n)],
      ["another tensor's name", 'invalid', () => (t.name = other.name)],
      ['renamed', /^(blk\.\d+\.|output_norm|token_embd)/.test(t.name) ? 'invalid' : 'any', () => (t.name = `${t.name}.x`)],
    ]);
    edit();
    return { desc: `tensor '${t.name}': ${label}`, expect };
  }],
];

function ggufCase(rng, files) {
  const name = rng.pick(Object.keys(files));
  const bytes = files[name];
  const g = readGGUF(bytes);
  const [kind, mutate] = rng.pick(MUTATIONS);
  const m = mutate(rng, g, bytes);
  const out = m.bytes ?? writeGGUF(g, { counts: m.counts, alignment: m.alignment ?? (m.keepAlign ? g.alignment : undefined) });
  const backend = rng.chance(0.05) ? 'webgpu' : 'wasm'; // a few on WebGPU: its first pipelines are slow on SwiftShader
  return { desc: `${name}: ${m.desc}`, kind, files: { 'model.gguf': out }, job: { kind: 'load', path: 'model.gguf', backend }, expect: m.expect };
}

export const ggufTargets = { gguf: ggufCase };
