// tokenizer.json (and tokenizer_config.json's chat template): component types swapped or
// corrupted, Sequences nested deep, pathological and invalid Split / Replace patterns, merges,
// vocab and added_tokens corrupted, truncation / padding edits, and byte-level damage; each
// tokenizer then encodes, pads and decodes a few strings.
import { JSON_VALUES, MISSING, clone, dec, enc, flipBits, parses, setField } from '../values.mjs';

const CORPUS = ['Hello world, the quick brown fox jumps over the lazy dog.', 'aaaa bbbb abab 1234 12 1', 'ünïcödé 漢字 🙂 tabs\tand\nnewlines', 'The the THE, a an and.'];
/** What each case encodes: plain text, the backtracking trap for (a+)+$, empties, specials. */
export const TEXTS = ['Hello world', 'a'.repeat(32) + '!', 'ünïcödé 漢字 🙂', '  \t\n ', '', '<|endoftext|> and [CLS] <unk>', 'x'.repeat(300)];

/** Small tokenizer.json files of each model kind (BPE trained by kiln, the rest written here). */
export function baseTokenizers(kiln) {
  const bpe = kiln.trainBpe(CORPUS, { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
  const bpe3 = kiln.trainBpe(CORPUS, { vocabSize: 290, specialTokens: ['<|begin_of_text|>', '<|end_of_text|>'], pattern: 'llama3' });
  const pieces = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', 'hello', 'world', 'the', 'quick', 'a', 'b', '##a', '##b', '##s', ',', '.', '!', 'x', '##x', '1', '##1'];
  const wordpiece = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: ['[PAD]', '[UNK]', '[CLS]', '[SEP]'].map((c, id) => ({ id, content: c, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }], pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '[SEP]', type_id: 1 } }], special_tokens: { '[CLS]': { id: '[CLS]', ids: [2], tokens: ['[CLS]'] }, '[SEP]': { id: '[SEP]', ids: [3], tokens: ['[SEP]'] } } },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: Object.fromEntries(pieces.map((p, i) => [p, i])) },
  };
  const uni = ['<pad>', '</s>', '<unk>', '▁', '▁hello', '▁world', 'a', 'b', 'l', 'o', 'h', 'e', '▁a', 'w', 'r', 'd', '!', 'x', '▁x'];
  const unigram = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: ['<pad>', '</s>', '<unk>'].map((c, id) => ({ id, content: c, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }] },
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: { type: 'TemplateProcessing', single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }], pair: null, special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } } },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 2, byte_fallback: false, vocab: uni.map((p, i) => [p, i < 3 ? 0 : -1 - i / 4]) },
  };
  const spmPieces = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`), '▁', 'h', 'e', 'l', 'o', '▁h', 'he', 'll', '▁he', 'llo', '▁hello', 'w', 'r', 'd', '▁w'];
  const spmVocab = Object.fromEntries(spmPieces.map((p, i) => [p, i]));
  const spm = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: ['<unk>', '<s>', '</s>'].map((c, id) => ({ id, content: c, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: null, special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', fuse_unk: true, byte_fallback: true, vocab: spmVocab, merges: [['▁', 'h'], ['h', 'e'], ['l', 'l'], ['▁h', 'e'], ['ll', 'o'], ['▁he', 'llo'], ['▁', 'w']] },
  };
  const wordlevel = {
    version: '1.0', truncation: null, padding: null, added_tokens: [{ id: 0, content: '[UNK]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: { type: 'Lowercase' }, pre_tokenizer: { type: 'Whitespace' }, post_processor: null, decoder: null,
    model: { type: 'WordLevel', unk_token: '[UNK]', vocab: { '[UNK]': 0, hello: 1, world: 2, a: 3, the: 4 } },
  };
  return { 'bpe-gpt2': bpe, 'bpe-llama3': bpe3, wordpiece, unigram, 'spm-bpe': spm, wordlevel };
}

const COMPONENTS = ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder', 'model'];
const KNOWN = {
  normalizer: ['Sequence', 'NFC', 'NFD', 'NFKC', 'NFKD', 'Lowercase', 'StripAccents', 'Strip', 'Replace', 'Prepend', 'BertNormalizer', 'Nmt', 'ByteLevel'],
  pre_tokenizer: ['Sequence', 'Split', 'ByteLevel', 'Metaspace', 'Whitespace', 'WhitespaceSplit', 'Punctuation', 'Digits', 'BertPreTokenizer', 'CharDelimiterSplit'],
  decoder: ['Sequence', 'ByteLevel', 'Metaspace', 'WordPiece', 'Replace', 'ByteFallback', 'Fuse', 'Strip', 'BPEDecoder', 'CTC'],
  post_processor: ['TemplateProcessing', 'BertProcessing', 'RobertaProcessing', 'ByteLevel', 'Sequence'],
  model: ['BPE', 'WordPiece', 'Unigram', 'WordLevel'],
};
const LIST_KEY = { normalizer: 'normalizers', pre_tokenizer: 'pretokenizers', decoder: 'decoders', post_processor: 'processors' };
const REGEXES = [
  ['(a+)+$', 'any'], ['(a|a)*b', 'any'], ['(.*a){20}', 'any'], ['(\\w+\\s?)*$', 'any'], ['', 'any'], ['a*', 'any'], ['\\b', 'any'], ['(?=)', 'any'],
  ['(', 'invalid'], ['[', 'invalid'], ['\\p{Nope}', 'invalid'], ['a{2,1}', 'invalid'], ['(?<name', 'invalid'], ['\\', 'invalid'],
];

/** A text of Sequences nested `depth` deep around `leaf` (written as text: JSON.stringify would recurse). */
function nested(component, depth, leaf) {
  const open = `{"type":"Sequence","${LIST_KEY[component]}":[`;
  return open.repeat(depth) + JSON.stringify(leaf) + ']}'.repeat(depth);
}

/** Paths into the JSON (not into the bulky vocab / merges), for generic edits. */
function paths(j, at = [], out = []) {
  if (j && typeof j === 'object') {
    for (const k of Object.keys(j)) {
      if (k === 'vocab' || k === 'merges') {
        out.push([...at, k]);
        continue;
      }
      out.push([...at, k]);
      paths(j[k], [...at, k], out);
    }
  }
  return out;
}

const MUTATIONS = [
  ['component replaced', (rng, j) => {
    const c = rng.pick(COMPONENTS);
    const [label, v] = rng.pick([['null', null], ['5', 5], ['"x"', 'x'], ['[]', []], ['{}', {}], ['{type:"Nope"}', { type: 'Nope' }], ['{type:5}', { type: 5 }], ['missing', MISSING]]);
    setField(j, c, v);
    const optional = (c === 'post_processor' || c === 'decoder') && (v === null || v === MISSING);
    const absent = v === null || v === MISSING;
    return { desc: `${c} = ${label}`, expect: optional ? 'valid' : absent ? (c === 'model' ? 'invalid' : 'any') : v && typeof v === 'object' && !Array.isArray(v) && !('type' in v) && c !== 'model' ? 'any' : 'invalid' };
  }],
  ['component type swapped (its parameters not)', (rng, j) => {
    const c = rng.pick(COMPONENTS.filter((x) => j[x]));
    const t = rng.pick(KNOWN[c]);
    j[c] = { ...j[c], type: t };
    return { desc: `${c}.type = "${t}"`, expect: 'any' };
  }],
  ['deep Sequence nesting', (rng, j) => {
    const c = rng.pick(['normalizer', 'pre_tokenizer', 'decoder']);
    const depth = rng.pick([100, 1000, 10_000, 100_000]);
    const leaf = { normalizer: { type: 'NFC' }, pre_tokenizer: j.pre_tokenizer ?? { type: 'Whitespace' }, decoder: j.decoder ?? { type: 'Fuse' } }[c];
    return { desc: `${c} nested ${depth} Sequences deep`, expect: 'any', raw: [c, nested(c, depth, leaf)] };
  }],
  ['Split / Replace regex', (rng, j) => {
    const [re, expect] = rng.pick(REGEXES);
    if (rng.chance(0.6)) {
      const behavior = rng.pick(['Isolated', 'Removed', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous']);
      const split = { type: 'Split', pattern: { Regex: re }, behavior, invert: rng.chance(0.3) };
      j.pre_tokenizer = j.pre_tokenizer ? { type: 'Sequence', pretokenizers: [split, j.pre_tokenizer] } : split;
      return { desc: `pre_tokenizer Split ${JSON.stringify(re)} (${behavior}${split.invert ? ', inverted' : ''})`, expect };
    }
    const rep = { type: 'Replace', pattern: rng.chance(0.7) ? { Regex: re } : { String: re }, content: rng.pick(['', 'a', 'aa', '$1']) };
    j.normalizer = j.normalizer ? { type: 'Sequence', normalizers: [rep, j.normalizer] } : rep;
    return { desc: `normalizer Replace ${JSON.stringify(rep.pattern)} -> ${JSON.stringify(rep.content)}`, expect: 'String' in rep.pattern ? 'any' : expect };
  }],
  ['Split behavior / pattern shape', (rng, j) => {
    const [label, split, expect] = rng.pick([
      ['behavior "Bogus"', { type: 'Split', pattern: { String: ' ' }, behavior: 'Bogus', invert: false }, 'invalid'],
      ['pattern {}', { type: 'Split', pattern: {}, behavior: 'Isolated', invert: false }, 'invalid'],
      ['pattern "x" (not an object)', { type: 'Split', pattern: 'x', behavior: 'Isolated', invert: false }, 'invalid'],
      ['pattern {Regex: 5}', { type: 'Split', pattern: { Regex: 5 }, behavior: 'Isolated', invert: false }, 'invalid'],
      ['no pattern', { type: 'Split', behavior: 'Isolated', invert: false }, 'invalid'],
      ['CharDelimiterSplit "ab"', { type: 'CharDelimiterSplit', delimiter: 'ab' }, 'invalid'],
      ['Digits individual_digits "yes"', { type: 'Digits', individual_digits: 'yes' }, 'any'],
      ['Metaspace replacement ""', { type: 'Metaspace', replacement: '', prepend_scheme: 'always', split: true }, 'any'],
      ['Metaspace prepend_scheme 5', { type: 'Metaspace', replacement: '▁', prepend_scheme: 5, split: true }, 'any'],
    ]);
    j.pre_tokenizer = split;
    return { desc: `pre_tokenizer ${label}`, expect };
  }],
  ['merges corrupted', (rng, j) => {
    if (!Array.isArray(j.model.merges)) j.model = { ...j.model, type: 'BPE', merges: [], vocab: Array.isArray(j.model.vocab) ? Object.fromEntries(j.model.vocab.map(([p], i) => [p, i])) : j.model.vocab };
    const m = j.model.merges;
    const i = rng.int(0, Math.max(1, m.length));
    const [label, v, expect] = rng.pick([
      ['"a" (one part)', 'a', 'invalid'], ['"a b c"', 'a b c', 'invalid'], ['["a"]', ['a'], 'invalid'], ['[1, 2]', [1, 2], 'invalid'], ['null', null, 'invalid'],
      ['5', 5, 'invalid'], ['"zz qq" (unknown tokens)', 'zz qq', 'any'], ['"" ', '', 'invalid'], ['" "', ' ', 'any'],
    ]);
    if (rng.chance(0.15)) {
      const [l2, whole] = rng.pick([['5', 5], ['"x"', 'x'], ['{}', {}], ['null', null]]);
      j.model.merges = whole;
      return { desc: `model.merges = ${l2}`, expect: whole === null ? 'any' : 'invalid' };
    }
    m[i] = v;
    return { desc: `model.merges[${i}] = ${label}`, expect };
  }],
  ['vocab corrupted', (rng, j) => {
    const v = j.model.vocab;
    if (Array.isArray(v)) {
      const i = rng.int(0, v.length);
      const [label, x, expect] = rng.pick([['[piece]', [v[i][0]], 'invalid'], ['[piece, "x"]', [v[i][0], 'x'], 'invalid'], ['[5, 0]', [5, 0], 'invalid'], ['null', null, 'invalid'], ['[piece, NaN-ish 1e309]', [v[i][0], 1e308 * 10], 'any'], ['["", 0]', ['', 0], 'any']]);
      v[i] = x;
      return { desc: `model.vocab[${i}] = ${label}`, expect };
    }
    const keys = Object.keys(v);
    const k = rng.pick(keys);
    const [label, x, expect] = rng.pick([
      ['-1', -1, 'invalid'], ['1.5', 1.5, 'invalid'], ['2^31', 2 ** 31, 'any'], ['2^32', 2 ** 32, 'any'], ['"3"', '3', 'invalid'], ['null', null, 'invalid'],
      ['another token\'s id', v[rng.pick(keys)], 'any'], ['deleted', MISSING, 'any'],
    ]);
    setField(v, k, x);
    if (rng.chance(0.1)) {
      const [l2, whole] = rng.pick([['[]', []], ['null', null], ['"x"', 'x'], ['{}', {}]]);
      j.model.vocab = whole;
      return { desc: `model.vocab = ${l2}`, expect: 'any' };
    }
    return { desc: `model.vocab[${JSON.stringify(k)}] = ${label}`, expect };
  }],
  ['added_tokens edited', (rng, j) => {
    const list = j.added_tokens;
    const t = list.length ? list[rng.int(0, list.length)] : (list.push({ id: 0, content: 'x', special: true }), list[0]);
    const [label, expect, edit] = rng.pick([
      ['id -1', 'invalid', () => (t.id = -1)], ['id 1.5', 'invalid', () => (t.id = 1.5)], ['id 2^31', 'any', () => (t.id = 2 ** 31)], ['id "x"', 'invalid', () => (t.id = 'x')],
      ['content ""', 'any', () => (t.content = '')], ['content null', 'invalid', () => (t.content = null)], ['content 5', 'invalid', () => (t.content = 5)],
      ['content 100k chars', 'any', () => (t.content = 'ab'.repeat(50_000))], ['special "yes"', 'any', () => (t.special = 'yes')], ['lstrip/rstrip/single_word', 'any', () => Object.assign(t, { lstrip: true, rstrip: true, single_word: true })],
      ['a duplicate with another id', 'any', () => list.push({ ...t, id: t.id + 1 })], ['added_tokens = {}', 'invalid', () => (j.added_tokens = {})], ['added_tokens = 5', 'invalid', () => (j.added_tokens = 5)],
      ['an entry null', 'invalid', () => list.push(null)], ['content "a" (splits every word)', 'any', () => (t.content = 'a')],
    ]);
    edit();
    return { desc: `added_tokens: ${label}`, expect };
  }],
  ['truncation / padding', (rng, j) => {
    const [label, expect, edit] = rng.pick([
      ['truncation max_length 0', 'any', () => (j.truncation = { max_length: 0, strategy: 'LongestFirst', stride: 0, direction: 'Right' })],
      ['truncation max_length -1', 'invalid', () => (j.truncation = { max_length: -1, strategy: 'LongestFirst', stride: 0, direction: 'Right' })],
      ['truncation max_length "x"', 'invalid', () => (j.truncation = { max_length: 'x', strategy: 'LongestFirst', stride: 0, direction: 'Right' })],
      ['truncation max_length 1.5', 'invalid', () => (j.truncation = { max_length: 1.5, strategy: 'LongestFirst', stride: 0, direction: 'Right' })],
      ['truncation stride >= max_length', 'any', () => (j.truncation = { max_length: 4, strategy: 'LongestFirst', stride: 4, direction: 'Right' })],
      ['truncation strategy "Bogus"', 'invalid', () => (j.truncation = { max_length: 4, strategy: 'Bogus', stride: 0, direction: 'Right' })],
      ['truncation direction 5', 'invalid', () => (j.truncation = { max_length: 4, strategy: 'LongestFirst', stride: 0, direction: 5 })],
      ['padding Fixed -1', 'invalid', () => (j.padding = { strategy: { Fixed: -1 }, direction: 'Right', pad_id: 0, pad_type_id: 0, pad_token: '[PAD]' })],
      ['padding Fixed 2^31', 'any', () => (j.padding = { strategy: { Fixed: 2 ** 31 }, direction: 'Right', pad_id: 0, pad_type_id: 0, pad_token: '[PAD]' })],
      ['padding pad_to_multiple_of 0', 'any', () => (j.padding = { strategy: 'BatchLongest', direction: 'Right', pad_id: 0, pad_type_id: 0, pad_token: '[PAD]', pad_to_multiple_of: 0 })],
      ['padding pad_to_multiple_of -3', 'invalid', () => (j.padding = { strategy: 'BatchLongest', direction: 'Right', pad_id: 0, pad_type_id: 0, pad_token: '[PAD]', pad_to_multiple_of: -3 })],
      ['padding pad_id "x"', 'invalid', () => (j.padding = { strategy: 'BatchLongest', direction: 'Right', pad_id: 'x', pad_type_id: 0, pad_token: '[PAD]' })],
      ['padding = 5', 'invalid', () => (j.padding = 5)],
    ]);
    edit();
    return { desc: label, expect };
  }],
  ['post_processor edits', (rng, j) => {
    const [label, expect, pp] = rng.pick([
      ['a special token id past the vocab', 'any', { type: 'TemplateProcessing', single: [{ SpecialToken: { id: 'Q', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: null, special_tokens: { Q: { id: 'Q', ids: [1e6], tokens: ['Q'] } } }],
      ['an undefined special token', 'invalid', { type: 'TemplateProcessing', single: [{ SpecialToken: { id: 'Nope', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: null, special_tokens: {} }],
      ['Sequence id "C"', 'invalid', { type: 'TemplateProcessing', single: [{ Sequence: { id: 'C', type_id: 0 } }], pair: null, special_tokens: {} }],
      ['single = "$A [SEP]" string form', 'any', { type: 'TemplateProcessing', single: '$A', pair: null, special_tokens: {} }],
      ['ids -1', 'invalid', { type: 'TemplateProcessing', single: [{ SpecialToken: { id: 'Q', type_id: 0 } }], pair: null, special_tokens: { Q: { id: 'Q', ids: [-1], tokens: ['Q'] } } }],
      ['BertProcessing sep ["x"]', 'invalid', { type: 'BertProcessing', sep: ['x'], cls: ['[CLS]', 2] }],
      ['RobertaProcessing cls [1, "x"]', 'invalid', { type: 'RobertaProcessing', sep: ['</s>', 2], cls: [1, 'x'], trim_offsets: true, add_prefix_space: false }],
    ]);
    j.post_processor = pp;
    return { desc: `post_processor: ${label}`, expect };
  }],
  ['a field anywhere', (rng, j) => {
    const p = rng.pick(paths(j));
    let o = j;
    for (const k of p.slice(0, -1)) o = o[k];
    const [label, v] = rng.pick(JSON_VALUES);
    setField(o, p[p.length - 1], v);
    return { desc: `${p.join('.')} = ${label}`, expect: 'any' };
  }],
  ['bytes', (rng, j) => {
    const text = JSON.stringify(j);
    const out = rng.chance(0.5) ? text.slice(0, rng.int(0, text.length)) : dec(flipBits(rng, enc(text), rng.int(1, 4)).bytes);
    return { desc: out.length < text.length ? `cut at ${out.length}` : 'byte flips', expect: parses(out) ? 'any' : 'invalid', text: out };
  }],
  ['chat template', (rng) => {
    const [label, tpl] = rng.pick([
      ['unclosed for', '{% for m in messages %}{{ m.content }}'], ['a loop of 10^9', '{% for i in range(1000000000) %}x{% endfor %}'], ['raise_exception', "{{ raise_exception('no') }}"],
      ['recursive macro', '{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}'], ['a filter that does not exist', '{{ messages | nope }}'], ['5 (not a string)', 5],
      ['a list without names', [{ template: 'x' }]], ['string repeated 10^9 times', "{{ 'x' * 1000000000 }}"], ['content[0] of null', '{{ messages[0].content[0] }}'],
    ]);
    return { desc: `chat_template: ${label}`, expect: 'any', config: { chat_template: tpl, bos_token: '<s>', eos_token: '</s>' } };
  }],
];

function tokenizerCase(rng, bases) {
  const name = rng.pick(Object.keys(bases));
  const j = clone(bases[name]);
  const [kind, mutate] = rng.pick(MUTATIONS);
  const m = mutate(rng, j);
  let text = m.text ?? JSON.stringify(j);
  if (m.raw) {
    const [c, nestedText] = m.raw;
    j[c] = '@RAW@';
    text = JSON.stringify(j).replace('"@RAW@"', nestedText);
  }
  const files = { 'tokenizer.json': enc(text) };
  if (m.config) files['tokenizer_config.json'] = enc(JSON.stringify(m.config));
  return { desc: `${name}: ${m.desc}`, kind, files, job: { kind: 'tokenizer', texts: TEXTS, chat: !!m.config }, expect: m.expect };
}

export const tokenizerTargets = { tokenizer: tokenizerCase };
