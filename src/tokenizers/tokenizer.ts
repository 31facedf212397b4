// A Hugging Face tokenizer.json, run by kiln: normalizer, pre-tokenizer and added tokens on the
// host, the model (BPE / WordPiece / Unigram / WordLevel) in AssemblyScript, then the
// post-processor. Ids equal the Rust `tokenizers` crate's; decode and streaming decode too.
import { KilnError } from '../core/errors.js';
import { buildMatchers, parseAddedTokens, type AddedMatcher, type AddedToken } from './added.js';
import { buildNormalizer, buildPreTokenizer, checkNesting, configError, wasmSplitOf, type Flags, type Json, type Normalizer, type PreTokenizer, type WasmSplit } from './components.js';
import { renderChat, type ChatMessage, type ChatTemplateOptions } from './chat.js';
import { WasmModel } from './model.js';
import { NStr, prepend } from './normalized.js';
import { buildDecoder, buildPostProcessor, concatSeqs, parsePadding, parseTruncation, type Decoder, type PaddingOptions, type PostProcessor, type Seq, type TruncationOptions } from './processing.js';

export type { PaddingOptions, TruncationOptions };

export interface Encoding {
  ids: number[];
  /** Token strings as the vocab spells them. */
  tokens: string[];
  typeIds: number[];
  attentionMask: number[];
  specialTokensMask: number[];
  /** [start, end) in UTF-16 units of the input string ([0, 0] for added special tokens). */
  offsets: [number, number][];
  /** Input sequence (0 = text, 1 = pair) of each token; null for the post-processor's tokens. */
  sequenceIds: (number | null)[];
  /** Windows cut off by truncation (with `stride` tokens of overlap), as the reference. */
  overflowing: Encoding[];
}

export interface EncodeOptions {
  pair?: string | null;
  /** Add the post-processor's special tokens (BOS, [CLS]...); default true. */
  addSpecialTokens?: boolean;
}

export interface BatchOptions extends EncodeOptions {
  pairs?: string[];
  truncation?: TruncationOptions | null;
  padding?: PaddingOptions | null;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

export class Tokenizer {
  readonly model: WasmModel;
  readonly addedTokens: AddedToken[];
  /** tokenizer_config.json, when it was given (chat template, bos/eos names, ...). */
  readonly config: Json;
  private readonly normalizer: Normalizer | null;
  private readonly preTokenizer: PreTokenizer | null;
  /** Set when the wasm module runs the split itself (byte-level BPE with a known pattern). */
  private readonly wasmSplit: WasmSplit | null;
  private readonly postProcessor: PostProcessor | null;
  private readonly decoder: Decoder | null;
  private readonly matchers: { raw: AddedMatcher; normalized: AddedMatcher };
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedByContent = new Map<string, number>();
  private readonly specialIds = new Set<number>();
  readonly truncation: TruncationOptions | null;
  readonly padding: PaddingOptions | null;

  /**
   * `options.wasmSplit: false` keeps the byte-level split on the JavaScript regex path (the
   * benchmark's comparison; ids are the same either way).
   */
  constructor(json: Json, config: Json = null, options: { wasmSplit?: boolean } = {}) {
    if (!json || typeof json !== 'object') throw configError('tokenizer.json', 'expected a JSON object');
    if (!json.model) throw configError('tokenizer.json.model', 'missing');
    for (const k of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) checkNesting(json[k], k);
    const flags: Flags = { byteLevel: false };
    this.normalizer = buildNormalizer(json.normalizer, 'normalizer', flags);
    this.preTokenizer = buildPreTokenizer(json.pre_tokenizer, 'pre_tokenizer', flags);
    this.postProcessor = buildPostProcessor(json.post_processor, 'post_processor');
    this.decoder = buildDecoder(json.decoder, 'decoder');
    this.model = new WasmModel(json.model, 'model', flags.byteLevel);
    const byteLevelBpe = flags.byteLevel && this.model.type === 'BPE' && json.normalizer?.type !== 'ByteLevel';
    this.wasmSplit = options.wasmSplit !== false && (byteLevelBpe || !flags.byteLevel) ? wasmSplitOf(json.pre_tokenizer, byteLevelBpe) : null;
    // Ids as the reference assigns them on load: a token the model knows takes the model's id,
    // others take the next id after the vocab, in file order (tokenizer.json's ids normally agree).
    this.addedTokens = [];
    let next = this.model.size;
    for (const t of parseAddedTokens(json.added_tokens, 'added_tokens')) {
      if (!t.content) continue;
      const known = this.addedByContent.get(t.content) ?? this.model.vocab.get(t.content);
      const id = known ?? next++;
      const token = { ...t, id };
      const i = this.addedTokens.findIndex((x) => x.id === id);
      if (i >= 0) this.addedTokens[i] = token;
      else this.addedTokens.push(token);
      this.addedById.set(id, token);
      this.addedByContent.set(t.content, id);
      if (t.special) this.specialIds.add(id);
      else this.specialIds.delete(id);
    }
    const norm = this.normalizer;
    this.matchers = buildMatchers(this.addedTokens, norm ? (s) => norm(NStr.of(s)).s : null);
    this.config = config;
    this.truncation = parseTruncation(json.truncation, 'truncation');
    this.padding = parsePadding(json.padding, 'padding');
    // the ids the post-processor adds must be tokens of this vocabulary (the model embeds them)
    if (this.postProcessor) {
      const none: Seq = concatSeqs([]);
      for (const id of [...this.postProcessor(none, null).ids, ...this.postProcessor(none, none).ids])
        if (id >= this.vocabSize) throw configError('post_processor', `adds token id ${id}, past the vocabulary's ${this.vocabSize} ids`);
    }
  }

  /** Parses tokenizer.json text (and tokenizer_config.json text, if any). */
  static fromString(json: string, config?: string | null, options: { wasmSplit?: boolean } = {}): Tokenizer {
    let j: Json;
    let c: Json = null;
    try {
      j = JSON.parse(json);
    } catch (e) {
      throw configError('tokenizer.json', `not valid JSON: ${(e as Error).message}`);
    }
    if (config) {
      try {
        c = JSON.parse(config);
      } catch (e) {
        throw configError('tokenizer_config.json', `not valid JSON: ${(e as Error).message}`);
      }
    }
    return new Tokenizer(j, c, options);
  }

  get vocabSize(): number {
    let n = this.model.idToToken.length;
    for (const t of this.addedTokens) n = Math.max(n, t.id + 1);
    return n;
  }

  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token) ?? this.model.vocab.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.model.idToToken[id];
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  // ---------------------------------------------------------------- encoding

  /** One sequence through added tokens, normalizer, pre-tokenizer and model, without special tokens. */
  /** The wasm-split path: each text between added tokens goes to wasm whole. */
  private encodeSplitInWasm(text: string, seqIndex: number, wantOffsets: boolean, split: WasmSplit): Seq {
    const seq: Seq = { ids: [], typeIds: [], offsets: [], special: [], seqIds: [] };
    const segment = (n: NStr): void => {
      if (split.prefixSpace && !n.s.startsWith(' ')) n = prepend(n, ' ');
      if (!n.length) return;
      const t = this.model.encodeText(n.s, split.kind);
      for (let k = 0; k < t.ids.length; k++) seq.ids.push(t.ids[k]);
      if (!wantOffsets) return;
      const map = charBounds(n.s);
      for (let k = 0; k < t.ids.length; k++) {
        const s = t.start[k];
        const e = t.end[k];
        const a = map ? map.start[s] : s;
        const b = e <= s ? a : map ? map.end[e - 1] : e;
        seq.offsets.push(n.orig(a, b));
      }
    };
    for (const piece of this.matchers.raw.split(NStr.of(text))) {
      if (piece.id >= 0) {
        seq.ids.push(piece.id);
        if (wantOffsets) seq.offsets.push(piece.n.orig(0, piece.n.length));
        continue;
      }
      const normalized = this.normalizer ? this.normalizer(piece.n) : piece.n;
      for (const sub of this.matchers.normalized.split(normalized)) {
        if (sub.id >= 0) {
          seq.ids.push(sub.id);
          if (wantOffsets) seq.offsets.push(sub.n.orig(0, sub.n.length));
        } else segment(sub.n);
      }
    }
    return fillSeq(seq, seqIndex, wantOffsets);
  }

  private encodeSequence(text: string, seqIndex: number, wantOffsets: boolean): Seq {
    if (this.wasmSplit) return this.encodeSplitInWasm(text, seqIndex, wantOffsets, this.wasmSplit);
    // items: words (id -1) and added tokens, in order; the words go to the model in one call
    const items: { n: NStr; id: number }[] = [];
    const words: string[] = [];
    let added = 0;
    for (const piece of this.matchers.raw.split(NStr.of(text))) {
      if (piece.id >= 0) {
        items.push(piece);
        added++;
        continue;
      }
      const normalized = this.normalizer ? this.normalizer(piece.n) : piece.n;
      for (const sub of this.matchers.normalized.split(normalized)) {
        if (sub.id >= 0) {
          items.push(sub);
          added++;
          continue;
        }
        const ws = this.preTokenizer ? this.preTokenizer([sub.n]) : sub.n.length ? [sub.n] : [];
        for (const w of ws) {
          items.push({ n: w, id: -1 });
          words.push(w.s);
        }
      }
    }
    const wt = words.length ? this.model.encode(words) : null;
    const seq: Seq = { ids: [], typeIds: [], offsets: [], special: [], seqIds: [] };
    if (!wantOffsets && !added) {
      // the fast path: only words, no offsets
      seq.ids = wt ? Array.from(wt.ids) : [];
    } else {
      let k = 0;
      let w = 0;
      for (const it of items) {
        if (it.id >= 0) {
          seq.ids.push(it.id);
          if (wantOffsets) seq.offsets.push(it.n.orig(0, it.n.length));
          continue;
        }
        const word = it.n;
        const base = wt!.wordStart[w];
        // byte offsets within the word -> UTF-16 character bounds, only for words with non-ASCII text
        let map: CharBounds | null | undefined;
        for (; k < wt!.ids.length && wt!.word[k] === w; k++) {
          seq.ids.push(wt!.ids[k]);
          if (!wantOffsets) continue;
          if (map === undefined) map = charBounds(word.s);
          const s = wt!.start[k] - base;
          const e = wt!.end[k] - base;
          // a token that is part of a character (byte fallback) covers the whole character
          const a = map ? map.start[s] : s;
          const b = e <= s ? a : map ? map.end[e - 1] : e;
          seq.offsets.push(word.orig(a, b));
        }
        w++;
      }
    }
    return fillSeq(seq, seqIndex, wantOffsets);
  }

  private finish(seq: Seq): Encoding {
    return {
      ids: seq.ids,
      tokens: seq.ids.map((id) => this.idToToken(id) ?? ''),
      typeIds: seq.typeIds,
      attentionMask: seq.ids.map(() => 1),
      specialTokensMask: seq.special,
      offsets: seq.offsets,
      sequenceIds: seq.seqIds,
      overflowing: [],
    };
  }

  private process(a: Seq, b: Seq | null, addSpecial: boolean): Seq {
    if (addSpecial && this.postProcessor) return this.postProcessor(a, b);
    return b ? concatSeqs([a, { ...b, typeIds: b.ids.map(() => 1) }]) : a;
  }

  /** The wasm split's pieces of `text` (before added tokens and normalization), or null when this tokenizer's split runs as a regex. */
  wasmSplitPieces(text: string): string[] | null {
    return this.wasmSplit ? this.model.splitText(text, this.wasmSplit.kind) : null;
  }

  /** `text` through the normalizer (as the model's input, before pre-tokenization). */
  normalize(text: string): string {
    return this.normalizer ? this.normalizer(NStr.of(text)).s : text;
  }

  /** The words the model would see: added tokens split out, normalized, pre-tokenized (by the regex path). */
  preTokenize(text: string): string[] {
    const out: string[] = [];
    for (const piece of this.matchers.raw.split(NStr.of(text))) {
      if (piece.id >= 0) continue;
      const normalized = this.normalizer ? this.normalizer(piece.n) : piece.n;
      for (const sub of this.matchers.normalized.split(normalized)) {
        if (sub.id >= 0) continue;
        const words = this.preTokenizer ? this.preTokenizer([sub.n]) : sub.n.length ? [sub.n] : [];
        for (const w of words) out.push(w.s);
      }
    }
    return out;
  }

  /** Encodes `text` (and `pair`) with offsets, token strings and masks. */
  encode(text: string, opts: EncodeOptions = {}): Encoding {
    checkText(text, 'Tokenizer.encode');
    const addSpecial = opts.addSpecialTokens ?? true;
    const a = this.encodeSequence(text, 0, true);
    const b = opts.pair != null ? this.encodeSequence(opts.pair, 1, true) : null;
    if (this.truncation) return this.truncatedEncoding(a, b, addSpecial, this.truncation);
    return this.finish(this.process(a, b, addSpecial));
  }

  /** Only the ids: the fast path for training data and generation. */
  encodeIds(text: string, opts: EncodeOptions = {}): number[] {
    checkText(text, 'Tokenizer.encodeIds');
    if (this.truncation) return this.encode(text, opts).ids;
    const addSpecial = opts.addSpecialTokens ?? true;
    const a = this.encodeSequence(text, 0, false);
    const b = opts.pair != null ? this.encodeSequence(opts.pair, 1, false) : null;
    if (!addSpecial && !b) return a.ids;
    return this.process(a, b, addSpecial).ids;
  }

  /** How many tokens the post-processor adds around one sequence (or a pair). */
  numSpecialTokensToAdd(pair: boolean): number {
    if (!this.postProcessor) return 0;
    const empty: Seq = { ids: [], typeIds: [], offsets: [], special: [], seqIds: [] };
    return this.postProcessor(empty, pair ? empty : null).ids.length;
  }

  private truncatedEncoding(a: Seq, b: Seq | null, addSpecial: boolean, t: TruncationOptions): Encoding {
    const budget = t.maxLength - (addSpecial ? this.numSpecialTokensToAdd(b !== null) : 0);
    if (budget < 0) throw new KilnError('argument', 'Tokenizer.encode', `truncation max_length ${t.maxLength} is smaller than the ${t.maxLength - budget} special tokens added`);
    const stride = t.stride ?? 0;
    const left = t.direction === 'left';
    const strategy = t.strategy ?? 'longest_first';
    let keepA = a.ids.length;
    let keepB = b ? b.ids.length : 0;
    const over = keepA + keepB - budget;
    if (over > 0) {
      if (!b || strategy === 'only_first') keepA = Math.max(0, keepA - over);
      else if (strategy === 'only_second') keepB = Math.max(0, keepB - over);
      else {
        // longest_first: remove one token at a time from the longer sequence
        let n = over;
        while (n-- > 0) {
          if (keepA >= keepB) keepA--;
          else keepB--;
        }
      }
    }
    const cut = (s: Seq, keep: number): { main: Seq; rest: Seq[] } => {
      if (keep >= s.ids.length) return { main: s, rest: [] };
      const windows: Seq[] = [];
      const step = keep - stride;
      if (keep > 0 && step <= 0) throw new KilnError('argument', 'Tokenizer.encode', `truncation stride ${stride} must be smaller than the ${keep} tokens kept`);
      const n = s.ids.length;
      const slice = (from: number, to: number): Seq => ({
        ids: s.ids.slice(from, to),
        typeIds: s.typeIds.slice(from, to),
        offsets: s.offsets.slice(from, to),
        special: s.special.slice(from, to),
        seqIds: s.seqIds.slice(from, to),
      });
      if (keep === 0) return { main: slice(0, 0), rest: [] };
      // windows of `keep` tokens, `stride` shared with the previous one; from the end when left
      for (let i = 0; ; i++) {
        const a = i * step;
        windows.push(left ? slice(Math.max(0, n - a - keep), n - a) : slice(a, Math.min(n, a + keep)));
        if (a + keep >= n) break;
      }
      return { main: windows[0], rest: windows.slice(1) };
    };
    const ca = cut(a, keepA);
    const cb = b ? cut(b, keepB) : null;
    const enc = this.finish(this.process(ca.main, cb ? cb.main : null, addSpecial));
    enc.overflowing = ca.rest.map((r) => this.finish(this.process(r, cb ? cb.main : null, addSpecial)));
    if (cb) for (const r of cb.rest) enc.overflowing.push(this.finish(this.process(ca.main, r, addSpecial)));
    return enc;
  }

  /** Encodes several texts, with truncation and padding (the options, else tokenizer.json's). */
  encodeBatch(texts: string[], opts: BatchOptions = {}): Encoding[] {
    if (opts.pairs && opts.pairs.length !== texts.length) throw new KilnError('argument', 'Tokenizer.encodeBatch', `${texts.length} texts but ${opts.pairs.length} pairs`);
    const truncation = opts.truncation === undefined ? this.truncation : opts.truncation;
    const padding = opts.padding === undefined ? this.padding : opts.padding;
    const addSpecial = opts.addSpecialTokens ?? true;
    const out = texts.map((text, i) => {
      checkText(text, `Tokenizer.encodeBatch[${i}]`);
      const a = this.encodeSequence(text, 0, true);
      const b = opts.pairs ? this.encodeSequence(opts.pairs[i], 1, true) : null;
      return truncation ? this.truncatedEncoding(a, b, addSpecial, truncation) : this.finish(this.process(a, b, addSpecial));
    });
    if (padding) this.pad(out, padding);
    return out;
  }

  private pad(encs: Encoding[], p: PaddingOptions): void {
    let target = p.length === undefined || p.length === 'longest' ? Math.max(0, ...encs.map((e) => e.ids.length)) : p.length;
    if (p.padToMultipleOf && target % p.padToMultipleOf) target += p.padToMultipleOf - (target % p.padToMultipleOf);
    const padId = p.padId ?? this.tokenToId(p.padToken ?? '') ?? 0;
    const padToken = p.padToken ?? this.idToToken(padId) ?? '';
    const left = p.direction === 'left';
    // overflow windows are padded with their encoding, as the reference does
    for (const e of encs.flatMap((x) => [x, ...x.overflowing])) {
      const n = target - e.ids.length;
      if (n <= 0) continue;
      const fill = <T>(arr: T[], v: T): void => {
        const add = new Array<T>(n).fill(v);
        if (left) arr.unshift(...add);
        else arr.push(...add);
      };
      fill(e.ids, padId);
      fill(e.tokens, padToken);
      fill(e.typeIds, p.padTypeId ?? 0);
      fill(e.attentionMask, 0);
      fill(e.specialTokensMask, 1);
      fill<[number, number]>(e.offsets, [0, 0]);
      fill<number | null>(e.sequenceIds, null);
    }
  }

  // ---------------------------------------------------------------- chat

  /** The conversation as text, through tokenizer_config.json's chat template. */
  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
    return renderChat(this.config, messages, opts);
  }

  /**
   * The conversation as ids. The template writes the special tokens itself, so none are added
   * (as transformers' apply_chat_template(tokenize=True)).
   */
  encodeChat(messages: ChatMessage[], opts: ChatTemplateOptions = {}): number[] {
    return this.encodeIds(this.applyChatTemplate(messages, opts), { addSpecialTokens: false });
  }

  // ---------------------------------------------------------------- decoding

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    const skip = opts.skipSpecialTokens ?? false;
    const tokens: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const t = this.idToToken(id);
      if (t === undefined) continue; // the reference drops unknown ids
      if (skip && this.specialIds.has(id)) continue;
      tokens.push(t);
    }
    return this.decoder ? this.decoder(tokens).join('') : tokens.join(' ');
  }

  /** A decoder fed one id at a time that only ever emits whole characters. */
  decodeStream(opts: DecodeOptions = {}): DecodeStream {
    return new DecodeStream(this, opts.skipSpecialTokens ?? false);
  }
}

/**
 * Streaming decode, as the reference's DecodeStream: decode a short window of ids, emit the text
 * that extends the previous window's text, and hold back while it ends in a partial character.
 */
export class DecodeStream {
  private ids: number[] = [];
  private prefix = '';
  private prefixIndex = 0;
  constructor(
    private readonly tok: Tokenizer,
    private readonly skip: boolean,
  ) {}

  /** Adds one id; returns the new text, or null while it would end inside a character. */
  step(id: number): string | null {
    const dec = (ids: number[]): string => this.tok.decode(ids, { skipSpecialTokens: this.skip });
    if (!this.prefix && this.ids.length) {
      const p = dec(this.ids);
      if (!p.endsWith('�')) {
        this.prefix = p;
        this.prefixIndex = this.ids.length;
      }
    }
    this.ids.push(id);
    const s = dec(this.ids);
    if (s.length > this.prefix.length && !s.endsWith('�')) {
      if (!s.startsWith(this.prefix)) throw new KilnError('argument', 'DecodeStream.step', `id ${id}: the decoded text no longer starts with the emitted text`);
      const text = s.slice(this.prefix.length);
      const newIndex = this.ids.length - this.prefixIndex;
      this.ids = this.ids.slice(this.prefixIndex);
      this.prefix = dec(this.ids);
      this.prefixIndex = newIndex;
      return text;
    }
    return null;
  }
}

/** The per-token fields of a sequence that only has ids (and offsets when asked). */
function fillSeq(seq: Seq, seqIndex: number, wantOffsets: boolean): Seq {
  const n = seq.ids.length;
  if (!wantOffsets) seq.offsets = new Array(n).fill([0, 0]);
  seq.typeIds = new Array(n).fill(0);
  seq.special = new Array(n).fill(0);
  seq.seqIds = new Array(n).fill(seqIndex);
  return seq;
}

function checkText(text: unknown, op: string): void {
  if (typeof text !== 'string') throw new KilnError('argument', op, `expected a string, got ${text === null ? 'null' : typeof text}`);
}

interface CharBounds {
  /** Per UTF-8 byte: the UTF-16 start and end of the character that holds it. */
  start: Int32Array;
  end: Int32Array;
}

/** UTF-8 byte -> bounds of its character in UTF-16 units (null when the string is ASCII). */
function charBounds(s: string): CharBounds | null {
  let ascii = true;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) { ascii = false; break; }
  if (ascii) return null;
  const start = new Int32Array(s.length * 3 + 1);
  const end = new Int32Array(s.length * 3 + 1);
  let b = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let n = 3;
    let units = 1;
    if (c < 0x80) n = 1;
    else if (c < 0x800) n = 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { n = 4; units = 2; }
    for (let k = 0; k < n; k++) {
      start[b + k] = i;
      end[b + k] = i + units;
    }
    b += n;
    i += units - 1;
  }
  start[b] = s.length;
  end[b] = s.length;
  return { start, end };
}
