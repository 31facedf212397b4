// GGUF's tokenizer.ggml.* metadata as the tokenizer.json transformers would write: byte-level BPE
// (model "gpt2") and SentencePiece BPE (model "llama"). The metadata is checked first: a file whose
// tokenizer keys are malformed is an error, not a model that loads without its tokenizer.
import { KilnError } from '../core/errors.js';
import type { GGUFValue } from './loaders/gguf.js';
import { LLAMA3_SPLIT } from '../tokenizers/components.js';
import { Tokenizer } from '../tokenizers/tokenizer.js';

/**
 * Checks the tokenizer.ggml.* keys' types, lengths and ids: tokens are strings (at most the
 * model's vocabSize of them), scores and token types one per token, special ids in range,
 * merges "left right" pairs. Throws KilnError('config', 'loadGGUF', "<file>: <key>: <what>").
 */
export function checkTokenizerMeta(m: Map<string, GGUFValue>, where: string, vocabSize?: number): void {
  const fail = (key: string, what: string): never => {
    throw new KilnError('config', 'loadGGUF', `${where}: ${key}: ${what}`);
  };
  const keys = [...m.keys()].filter((k) => k.startsWith('tokenizer.ggml.'));
  if (!keys.length) return;
  const model = m.get('tokenizer.ggml.model');
  if (typeof model !== 'string') fail('tokenizer.ggml.model', `missing or not a string (the file has ${keys.join(', ')})`);
  const tokens = m.get('tokenizer.ggml.tokens');
  if (!Array.isArray(tokens) || !tokens.length || tokens.some((t) => typeof t !== 'string')) fail('tokenizer.ggml.tokens', 'must be a non-empty array of strings');
  const n = (tokens as string[]).length;
  if (vocabSize !== undefined && n > vocabSize) fail('tokenizer.ggml.tokens', `${n} tokens, more than the ${vocabSize} rows of the embedding`);
  const perToken = (key: string, ok: (v: GGUFValue) => boolean, what: string): void => {
    const v = m.get(key);
    if (v === undefined) return;
    if (!Array.isArray(v) || v.length !== n) fail(key, `must be an array of ${n} ${what} (one per token), got ${Array.isArray(v) ? v.length : typeof v}`);
    const i = (v as GGUFValue[]).findIndex((x) => !ok(x));
    if (i >= 0) fail(key, `entry ${i} is ${JSON.stringify(String((v as GGUFValue[])[i]))}, not ${what}`);
  };
  perToken('tokenizer.ggml.scores', (x) => typeof x === 'number' && !Number.isNaN(x), 'numbers');
  perToken('tokenizer.ggml.token_type', (x) => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 6, 'token types 0..6');
  for (const k of ['bos', 'eos', 'unknown', 'padding', 'seperator'].map((s) => `tokenizer.ggml.${s}_token_id`)) {
    const v = m.get(k);
    if (v !== undefined && !((typeof v === 'number' || typeof v === 'bigint') && Number(v) >= 0 && Number(v) < n)) fail(k, `must be a token id in 0..${n - 1}, got ${String(v)}`);
  }
  const merges = m.get('tokenizer.ggml.merges');
  if (merges !== undefined) {
    if (!Array.isArray(merges)) fail('tokenizer.ggml.merges', 'must be an array of strings');
    const i = (merges as GGUFValue[]).findIndex((x) => typeof x !== 'string' || !/^[^ ]+ [^ ]+$/.test(x));
    if (i >= 0) fail('tokenizer.ggml.merges', `entry ${i} is ${JSON.stringify(String((merges as GGUFValue[])[i]))}, not a "left right" pair`);
  } else if (model === 'gpt2') fail('tokenizer.ggml.merges', 'missing: a byte-level BPE (model "gpt2") needs its merges');
  for (const k of ['tokenizer.ggml.pre', 'tokenizer.chat_template']) if (m.has(k) && typeof m.get(k) !== 'string') fail(k, 'must be a string');
  if (m.has('tokenizer.ggml.add_bos_token') && typeof m.get('tokenizer.ggml.add_bos_token') !== 'boolean') fail('tokenizer.ggml.add_bos_token', 'must be a boolean');
}

/**
 * A tokenizer.json built from GGUF's tokenizer.ggml.* metadata (byte-level BPE: model "gpt2";
 * SentencePiece: "llama"), or null when the file has no tokenizer keys at all.
 */
export function tokenizerFromGGUF(m: Map<string, GGUFValue>, where: string, vocabSize?: number): Tokenizer | null {
  checkTokenizerMeta(m, where, vocabSize);
  const model = m.get('tokenizer.ggml.model');
  if (model === undefined) return null;
  if (model === 'llama') return tokenizerFromSpm(m);
  if (model !== 'gpt2') throw new KilnError('config', 'loadGGUF', `${where}: tokenizer.ggml.model '${String(model)}' is not supported (gpt2: byte-level BPE; llama: SentencePiece BPE)`);
  const tokens = m.get('tokenizer.ggml.tokens') as string[];
  const merges = (m.get('tokenizer.ggml.merges') ?? []) as string[];
  const types = (m.get('tokenizer.ggml.token_type') ?? []) as number[];
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => (vocab[t] = i));
  const pre = String(m.get('tokenizer.ggml.pre') ?? 'default');
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const split = (regex: string) => ({ type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false }, { ...byteLevel, use_regex: false }] });
  const preTokenizer = pre === 'llama-bpe' || pre === 'llama3' ? split(LLAMA3_SPLIT) : pre === 'qwen2' ? split(LLAMA3_SPLIT.replace('\\p{N}{1,3}', '\\p{N}')) : byteLevel;
  const added = tokens.map((content, id) => ({ id, content, type: types[id] })).filter((t) => t.type === 3 || t.type === 4)
    .map((t) => ({ id: t.id, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: t.type === 3 }));
  const bos = m.get('tokenizer.ggml.bos_token_id');
  const eos = m.get('tokenizer.ggml.eos_token_id');
  const addBos = m.get('tokenizer.ggml.add_bos_token') === true && bos !== undefined;
  const json = {
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: preTokenizer,
    post_processor: addBos
      ? { type: 'TemplateProcessing', single: [{ SpecialToken: { id: tokens[Number(bos)], type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: null, special_tokens: { [tokens[Number(bos)]]: { id: tokens[Number(bos)], ids: [Number(bos)], tokens: [tokens[Number(bos)]] } } }
      : null,
    decoder: byteLevel,
    model: { type: 'BPE', vocab, merges, ignore_merges: pre === 'llama-bpe' || pre === 'llama3' },
  };
  const config = {
    chat_template: m.get('tokenizer.chat_template') ?? undefined,
    bos_token: bos !== undefined ? tokens[Number(bos)] : undefined,
    eos_token: eos !== undefined ? tokens[Number(eos)] : undefined,
  };
  return new Tokenizer(json, config);
}

/**
 * A SentencePiece BPE vocabulary (tokenizer.ggml.model "llama": tokens, scores, token types) as
 * the tokenizer.json transformers' converter makes of it: merges are every split of a piece into
 * two pieces, the higher-scored merged piece first; byte fallback to <0xXX>; "▁" for spaces.
 */
function tokenizerFromSpm(m: Map<string, GGUFValue>): Tokenizer {
  const tokens = m.get('tokenizer.ggml.tokens') as string[];
  const scores = (m.get('tokenizer.ggml.scores') ?? tokens.map((_, i) => -i)) as number[];
  const types = (m.get('tokenizer.ggml.token_type') ?? []) as number[];
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => (vocab[t] = i));
  const merges: [string, string, number, number, number][] = [];
  tokens.forEach((piece, id) => {
    if ((types[id] ?? 1) !== 1) return; // normal pieces only (not control, unknown or byte)
    const chars = Array.from(piece);
    const local: [string, string, number, number, number][] = [];
    for (let i = 1; i < chars.length; i++) {
      const l = chars.slice(0, i).join('');
      const r = chars.slice(i).join('');
      if (l in vocab && r in vocab) local.push([l, r, scores[id], vocab[l], vocab[r]]);
    }
    local.sort((a, b) => a[3] - b[3] || a[4] - b[4]);
    merges.push(...local);
  });
  merges.sort((a, b) => b[2] - a[2]); // stable: ties keep the order above
  const unkId = tokens.findIndex((_, i) => types[i] === 2);
  const bos = m.get('tokenizer.ggml.bos_token_id');
  const eos = m.get('tokenizer.ggml.eos_token_id');
  const addBos = (m.get('tokenizer.ggml.add_bos_token') ?? true) === true && bos !== undefined;
  const added = tokens.map((content, id) => ({ id, content, type: types[id] })).filter((t) => t.type === 2 || t.type === 3 || t.type === 4)
    .map((t) => ({ id: t.id, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: t.type !== 4 }));
  const bosTok = bos !== undefined ? tokens[Number(bos)] : undefined;
  const json = {
    added_tokens: added,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: addBos ? { type: 'TemplateProcessing', single: [{ SpecialToken: { id: bosTok, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: null, special_tokens: { [bosTok!]: { id: bosTok, ids: [Number(bos)], tokens: [bosTok] } } } : null,
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', vocab, merges: merges.map(([l, r]) => [l, r]), unk_token: unkId >= 0 ? tokens[unkId] : null, fuse_unk: true, byte_fallback: true },
  };
  return new Tokenizer(json, {
    chat_template: m.get('tokenizer.chat_template') ?? undefined,
    bos_token: bosTok,
    eos_token: eos !== undefined ? tokens[Number(eos)] : undefined,
  });
}

