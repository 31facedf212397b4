// Byte-level BPE training on the user's text: words counted on the host (the same split the
// written tokenizer.json will use), the merge loop in AssemblyScript, the result a
// tokenizer.json that the reference libraries load.
import { KilnError } from '../core/errors.js';
import { LLAMA3_SPLIT, type Json } from './components.js';
import { BYTE_TO_CHAR, tokenizerModule } from './model.js';
import { Tokenizer } from './tokenizer.js';

export interface TrainBpeOptions {
  /** Tokens in the result, special tokens and the 256 byte tokens included. */
  vocabSize: number;
  /** Pairs seen fewer times than this are not merged (default 2). */
  minFrequency?: number;
  /** Added first, with ids 0.., and never split (e.g. ["<|endoftext|>"]). */
  specialTokens?: string[];
  /** The pre-tokenizer split: GPT-2's pattern (default) or Llama-3's (digits in threes). */
  pattern?: 'gpt2' | 'llama3';
}


interface Exports {
  memory: WebAssembly.Memory;
  allocBytes(n: number): number;
  trainInit(symbols: number, offsets: number, counts: number, n: number, bytes: number, ends: number, tokens: number, firstId: number, vocabSize: number): void;
  trainRun(vocabSize: number, minFrequency: bigint, out: number): number;
  trainTokenPtr(id: number): number;
  trainTokenLength(id: number): number;
}

function skeleton(opts: TrainBpeOptions, special: string[]): Json {
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: opts.pattern !== 'llama3' };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: special.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer:
      opts.pattern === 'llama3'
        ? { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: LLAMA3_SPLIT }, behavior: 'Isolated', invert: false }, byteLevel] }
        : byteLevel,
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: {}, merges: [] },
  };
}

/**
 * Trains a byte-level BPE tokenizer on `texts` (each a document or line) and returns its
 * tokenizer.json object. Deterministic: the most frequent pair merges first, ties going to the
 * pair of smaller ids (the 256 bytes are ordered by their ByteLevel characters), as the reference.
 */
export function trainBpe(texts: Iterable<string>, opts: TrainBpeOptions): Json {
  const special = opts.specialTokens ?? [];
  if (new Set(special).size !== special.length) throw new KilnError('argument', 'trainBpe', 'special tokens repeat');
  const base = special.length + 256;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < base) throw new KilnError('argument', 'trainBpe', `vocabSize ${opts.vocabSize} must be an integer of at least ${base} (${special.length} special tokens + 256 bytes)`);
  const minFrequency = opts.minFrequency ?? 2;
  const json = skeleton(opts, special);

  // 1. words and their counts, split exactly as the trained tokenizer will split
  const splitter = new Tokenizer({ ...json, model: { type: 'WordLevel', vocab: { '[UNK]': 0 }, unk_token: '[UNK]' } });
  const counts = new Map<string, number>();
  for (const text of texts) for (const w of splitter.preTokenize(text)) counts.set(w, (counts.get(w) ?? 0) + 1);

  // 2. initial tokens: the special tokens, then the 256 bytes in the order of their characters
  const order = Array.from({ length: 256 }, (_, b) => b).sort((a, b) => BYTE_TO_CHAR[a].charCodeAt(0) - BYTE_TO_CHAR[b].charCodeAt(0));
  const byteId = new Int32Array(256);
  order.forEach((b, i) => (byteId[b] = special.length + i));
  const enc = new TextEncoder();
  const words = [...counts.keys()].map((w) => enc.encode(w));
  const totalSymbols = words.reduce((a, w) => a + w.length, 0);
  const x = new WebAssembly.Instance(tokenizerModule(), {}).exports as unknown as Exports;
  const symP = x.allocBytes(totalSymbols * 4 + 4);
  const offP = x.allocBytes(words.length * 4 + 8);
  const cntP = x.allocBytes(words.length * 4 + 4);
  const bytesP = x.allocBytes(256);
  const endsP = x.allocBytes(256 * 4);
  const outP = x.allocBytes(Math.max(0, opts.vocabSize - base) * 12 + 12);
  {
    const buf = x.memory.buffer;
    const syms = new Int32Array(buf, symP, totalSymbols);
    const offs = new Int32Array(buf, offP, words.length + 1);
    const cnts = new Uint32Array(buf, cntP, words.length);
    const values = [...counts.values()];
    let o = 0;
    words.forEach((w, i) => {
      offs[i] = o;
      cnts[i] = values[i];
      for (let k = 0; k < w.length; k++) syms[o + k] = byteId[w[k]];
      o += w.length;
    });
    offs[words.length] = o;
    // the byte tokens only: special tokens are added tokens, never pieces a merge could make
    const bytes = new Uint8Array(buf, bytesP, 256);
    const ends = new Int32Array(buf, endsP, 256);
    order.forEach((b, i) => {
      bytes[i] = b;
      ends[i] = i + 1;
    });
  }
  x.trainInit(symP, offP, cntP, words.length, bytesP, endsP, 256, special.length, opts.vocabSize);
  const n = x.trainRun(opts.vocabSize, BigInt(minFrequency), outP);

  // 3. tokenizer.json: vocab in ByteLevel characters, merges as pairs of token strings
  const tokenString = (id: number): string => {
    if (id < special.length) return special[id];
    const p = x.trainTokenPtr(id);
    const len = x.trainTokenLength(id);
    const b = new Uint8Array(x.memory.buffer, p, len);
    let s = '';
    for (let i = 0; i < len; i++) s += BYTE_TO_CHAR[b[i]];
    return s;
  };
  const vocab: Record<string, number> = {};
  for (let id = 0; id < base; id++) vocab[tokenString(id)] = id;
  const triples = new Int32Array(x.memory.buffer, outP, n * 3).slice();
  const merges: [string, string][] = [];
  for (let i = 0; i < n; i++) {
    const [a, b, c] = [triples[3 * i], triples[3 * i + 1], triples[3 * i + 2]];
    merges.push([tokenString(a), tokenString(b)]);
    vocab[tokenString(c)] = c;
  }
  json.model.vocab = vocab;
  json.model.merges = merges;
  return json;
}
