// The host side of the AssemblyScript tokenizer models: loads tokenizer.json's model section into
// a wasm instance of its own (vocab and merge tables) and encodes pre-tokenized words through it.
import { KilnError } from '../core/errors.js';
import { TOKENIZER_WASM } from './binary.gen.js';
import { configError, type Json } from './components.js';

let compiled: WebAssembly.Module | null = null;
/** @internal The compiled tokenizer module (each tokenizer or trainer instantiates its own). */
export function tokenizerModule(): WebAssembly.Module {
  if (!compiled) {
    const bin = atob(TOKENIZER_WASM);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    compiled = new WebAssembly.Module(bytes);
  }
  return compiled;
}

interface Exports {
  memory: WebAssembly.Memory;
  allocBytes(n: number): number;
  vocabReserve(count: number, keyBytes: number): void;
  prefixReserve(count: number): void;
  vocabAddAll(keys: number, meta: number, n: number): void;
  mergeReserve(count: number): void;
  mergeAddAll(triples: number, n: number): void;
  modelConfig(kind: number, units: number, unk: number, fuse: number, fallback: number, ignore: number, maxChars: number): void;
  modelAffixes(p: number, pn: number, s: number, sn: number): void;
  modelFinish(): void;
  modelScores(n: number, unkScore: number): number;
  encodeWords(text: number, bounds: number, n: number, ids: number, s: number, e: number, w: number): number;
  encodeText(text: number, n: number, kind: number, bounds: number, ids: number, s: number, e: number, w: number): number;
  splitText(text: number, n: number, kind: number, bounds: number): number;
}

const KINDS = { BPE: 0, WordPiece: 1, Unigram: 2, WordLevel: 3 } as const;
export type ModelType = keyof typeof KINDS;

/** GPT-2's byte <-> printable character table (the ByteLevel alphabet). */
export const BYTE_TO_CHAR: string[] = (() => {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const table: string[] = new Array(256);
  for (const b of bs) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = String.fromCharCode(256 + n++);
  return table;
})();
export const CHAR_TO_BYTE: Map<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

const enc = new TextEncoder();

/** A token's model form as bytes: UTF-8, or for byte-level vocabularies the bytes its characters stand for. */
function keyBytes(tok: string, byteLevel: boolean): Uint8Array | null {
  if (!byteLevel) return enc.encode(tok);
  const out = new Uint8Array(tok.length);
  for (let i = 0; i < tok.length; i++) {
    const b = CHAR_TO_BYTE.get(tok[i]);
    if (b === undefined) return null; // never produced from text: decode-only
    out[i] = b;
  }
  return out;
}

export interface WordTokens {
  /** Token ids, their [start, end) byte offsets into the words' joined UTF-8, and their word index. */
  ids: Int32Array;
  start: Int32Array;
  end: Int32Array;
  word: Int32Array;
  /** Byte offset of each word in the joined UTF-8. */
  wordStart: Int32Array;
}

export class WasmModel {
  readonly type: ModelType;
  /** id -> token string, as tokenizer.json spells it (byte-level characters included). */
  readonly vocab: Map<string, number>;
  readonly idToToken: string[] = [];
  /** The vocab's size as the reference counts it (entries, not the largest id). */
  readonly size: number;
  private readonly x: Exports;
  private io = 0;
  private ioCap = 0;

  constructor(j: Json, path: string, byteLevel: boolean) {
    const t = j?.type ?? (j?.merges ? 'BPE' : undefined);
    if (!(t in KINDS)) throw configError(`${path}.type`, `unsupported model '${t}' (supported: ${Object.keys(KINDS).join(', ')})`);
    this.type = t as ModelType;
    this.x = new WebAssembly.Instance(tokenizerModule(), {}).exports as unknown as Exports;
    this.vocab = new Map();
    const x = this.x;

    // vocab: {token: id} or, for Unigram, [[piece, score], ...]
    let entries: [string, number][];
    let scores: number[] | null = null;
    if (this.type === 'Unigram') {
      if (!Array.isArray(j.vocab)) throw configError(`${path}.vocab`, 'expected an array of [piece, score]');
      entries = [];
      scores = [];
      j.vocab.forEach((e: Json, i: number) => {
        if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'number') throw configError(`${path}.vocab[${i}]`, `expected [piece, score], got ${JSON.stringify(e)}`);
        entries.push([e[0], i]);
        scores!.push(serdeF64(e[1]));
      });
    } else {
      if (!j.vocab || typeof j.vocab !== 'object' || Array.isArray(j.vocab)) throw configError(`${path}.vocab`, 'expected an object {token: id}');
      entries = Object.entries(j.vocab) as [string, number][];
      for (const [k, v] of entries) if (!Number.isInteger(v) || v < 0) throw configError(`${path}.vocab[${JSON.stringify(k)}]`, `expected a non-negative integer id, got ${JSON.stringify(v)}`);
    }
    const keys: Uint8Array[] = [];
    const ids: number[] = [];
    let total = 0;
    for (const [tok, id] of entries) {
      this.vocab.set(tok, id);
      this.idToToken[id] = tok;
      const kb = keyBytes(tok, byteLevel && this.type === 'BPE');
      if (!kb) continue;
      keys.push(kb);
      ids.push(id);
      total += kb.length;
    }
    this.size = this.type === 'Unigram' ? entries.length : this.vocab.size;
    x.vocabReserve(keys.length, total + 16);
    if (this.type === 'Unigram') x.prefixReserve(total + 16); // the lattice's prefix filter
    const kp = this.alloc(total + 16);
    const mp = this.alloc(keys.length * 8 + 8);
    {
      const u8 = new Uint8Array(x.memory.buffer);
      const meta = new Int32Array(x.memory.buffer, mp, keys.length * 2);
      let o = 0;
      keys.forEach((k, i) => {
        u8.set(k, kp + o);
        o += k.length;
        meta[2 * i] = o;
        meta[2 * i + 1] = ids[i];
      });
    }
    x.vocabAddAll(kp, mp, keys.length);

    const unkName = j.unk_token ?? null;
    let unk = -1;
    if (this.type === 'Unigram') {
      unk = j.unk_id ?? -1;
      if (unk !== -1 && !(unk >= 0 && unk < entries.length)) throw configError(`${path}.unk_id`, `${unk} is not an id of the vocab (size ${entries.length})`);
    } else if (unkName !== null) {
      if (typeof unkName !== 'string') throw configError(`${path}.unk_token`, `expected a string, got ${JSON.stringify(unkName)}`);
      unk = this.vocab.get(unkName) ?? -1;
    }
    if (j.dropout !== null && j.dropout !== undefined && j.dropout !== 0) throw configError(`${path}.dropout`, `BPE dropout (${j.dropout}) is not supported`);
    const kind = KINDS[this.type];
    const wordPiece = this.type === 'WordPiece';
    x.modelConfig(
      kind,
      byteLevel && this.type === 'BPE' ? 1 : 0,
      unk,
      this.type === 'Unigram' ? 1 : j.fuse_unk ? 1 : 0,
      j.byte_fallback ? 1 : 0,
      j.ignore_merges ? 1 : 0,
      wordPiece ? (j.max_input_chars_per_word ?? 100) : 0,
    );
    const prefix = enc.encode((wordPiece ? (j.continuing_subword_prefix ?? '##') : j.continuing_subword_prefix) ?? '');
    const suffix = enc.encode(j.end_of_word_suffix ?? '');
    const ap = this.alloc(prefix.length + suffix.length + 2);
    new Uint8Array(x.memory.buffer).set(prefix, ap);
    new Uint8Array(x.memory.buffer).set(suffix, ap + prefix.length);
    x.modelAffixes(ap, prefix.length, ap + prefix.length, suffix.length);

    if (scores) {
      const min = scores.reduce((a, b) => Math.min(a, b), Infinity);
      const sp = x.modelScores(scores.length, min - 10);
      new Float64Array(x.memory.buffer, sp, scores.length).set(scores);
    }
    if (this.type === 'BPE') this.loadMerges(j, path);
    x.modelFinish();
  }

  private loadMerges(j: Json, path: string): void {
    const merges = j.merges ?? [];
    if (!Array.isArray(merges)) throw configError(`${path}.merges`, 'expected an array');
    const n = merges.length;
    this.x.mergeReserve(n);
    const tp = this.alloc(n * 12 + 12);
    const t = new Int32Array(this.x.memory.buffer, tp, n * 3);
    const prefixLen = (j.continuing_subword_prefix ?? '').length;
    for (let i = 0; i < n; i++) {
      const m = merges[i];
      let a: string;
      let b: string;
      if (typeof m === 'string') {
        const sp = m.indexOf(' ', 1);
        if (sp < 0) throw configError(`${path}.merges[${i}]`, `expected "left right", got ${JSON.stringify(m)}`);
        a = m.slice(0, sp);
        b = m.slice(sp + 1);
      } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
        [a, b] = m;
      } else throw configError(`${path}.merges[${i}]`, `expected "left right" or [left, right], got ${JSON.stringify(m)}`);
      const ia = this.vocab.get(a);
      const ib = this.vocab.get(b);
      // The merged token drops the right part's continuing-subword prefix (as the reference: by length).
      const merged = a + b.slice(prefixLen);
      const im = this.vocab.get(merged);
      if (ia === undefined || ib === undefined || im === undefined)
        throw configError(`${path}.merges[${i}]`, `merge ${JSON.stringify([a, b])} uses a token not in the vocab (${JSON.stringify(ia === undefined ? a : ib === undefined ? b : merged)})`);
      t[3 * i] = ia;
      t[3 * i + 1] = ib;
      t[3 * i + 2] = im;
    }
    this.x.mergeAddAll(tp, n);
  }

  private alloc(n: number): number {
    return this.x.allocBytes(n);
  }

  private region(n: number): number {
    if (n > this.ioCap) {
      this.ioCap = Math.max(n, this.ioCap * 2, 1 << 16);
      this.io = this.x.allocBytes(this.ioCap);
    }
    return this.io;
  }

  private buf: ArrayBuffer | null = null;
  private u8 = new Uint8Array(0);
  private i32 = new Int32Array(0);

  /** Views of the module's memory, made again only after it grew. */
  private views(): void {
    if (this.buf !== this.x.memory.buffer) {
      this.buf = this.x.memory.buffer;
      this.u8 = new Uint8Array(this.buf);
      this.i32 = new Int32Array(this.buf);
    }
  }

  /**
   * Splits `text` with a byte-level pattern (see wasmSplitOf) and encodes it, all in wasm. Token
   * offsets are bytes of the text's UTF-8. The arrays are views, valid until the next call.
   */
  encodeText(text: string, kind: number): { ids: Int32Array; start: Int32Array; end: Int32Array } {
    const r = this.layout(text, (text.length * 3 + 8 + 7) & ~7);
    return this.results(this.x.encodeText(r.text, r.written, kind, r.bounds, r.ids, r.start, r.end, r.word), r);
  }

  /**
   * The I/O region for one call: `text` as UTF-8 at its start, then room for `boundPairs` word
   * bounds and, per byte, a token's id, start, end and word.
   */
  private layout(text: string, boundPairs: number) {
    const cap = (text.length * 3 + 8 + 7) & ~7;
    const base = this.region(cap + 8 * boundPairs + 16 * cap + 64);
    const bounds = base + cap;
    const ids = bounds + 8 * boundPairs;
    this.views();
    const { written } = enc.encodeInto(text, this.u8.subarray(base, base + cap));
    return { text: base, written, bounds, ids, start: ids + 4 * cap, end: ids + 8 * cap, word: ids + 12 * cap };
  }

  /** Views of a call's tokens (n of them; a negative n is the model's missing-unknown error). */
  private results(n: number, r: { ids: number; start: number; end: number; word: number }): { ids: Int32Array; start: Int32Array; end: Int32Array; word: Int32Array } {
    if (n < 0) throw new KilnError('config', 'Tokenizer.encode', `the ${this.type} model needs its unknown token for this text, and tokenizer.json's model has none`);
    this.views();
    const at = (p: number): Int32Array => this.i32.subarray(p >> 2, (p >> 2) + n);
    return { ids: at(r.ids), start: at(r.start), end: at(r.end), word: at(r.word) };
  }

  /** The pieces the wasm split makes of `text` (for tests and the pre-tokenizer benchmark). */
  splitText(text: string, kind: number): string[] {
    const cap = (text.length * 3 + 8 + 7) & ~7;
    const base = this.region(cap + 8 * cap + 64);
    this.views();
    const { written } = enc.encodeInto(text, this.u8.subarray(base, base + cap));
    const n = this.x.splitText(base, written, kind, base + cap);
    this.views();
    const dec = new TextDecoder('utf-8', { ignoreBOM: true });
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(dec.decode(this.u8.subarray(base + this.i32[((base + cap) >> 2) + 2 * i], base + this.i32[((base + cap) >> 2) + 2 * i + 1])));
    return out;
  }

  /**
   * Encodes words (strings, in order) into tokens. The arrays returned are views of the module's
   * memory: valid until the next call.
   */
  encode(words: string[]): WordTokens {
    const joined = words.length === 1 ? words[0] : words.join('');
    const nw = words.length;
    const r = this.layout(joined, nw);
    const i32 = this.i32;
    const wordStart = new Int32Array(nw);
    const ascii = r.written === joined.length;
    let o = 0;
    for (let i = 0; i < nw; i++) {
      const len = ascii ? words[i].length : utf8Length(words[i]);
      wordStart[i] = o;
      i32[(r.bounds >> 2) + 2 * i] = o;
      i32[(r.bounds >> 2) + 2 * i + 1] = o + len;
      o += len;
    }
    return { ...this.results(this.x.encodeWords(r.text, r.bounds, nw, r.ids, r.start, r.end, r.word), r), wordStart };
  }
}

/**
 * The f64 that the reference's JSON reader (serde_json without float_roundtrip) makes of a number
 * written in shortest form: the digits as a u64 (digits past its range dropped), then one multiply
 * or divide by an exact power of ten. That is up to 1 ulp off the correctly rounded value
 * JSON.parse gives, and Unigram's Viterbi breaks ties on those last bits, so we reproduce them.
 */
export function serdeF64(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const m = /^(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/.exec(String(Math.abs(x)));
  if (!m) return x;
  const MAX = 18446744073709551615n;
  let sig = 0n;
  let exp = 0;
  for (const c of m[1]) {
    sig = sig * 10n + BigInt(c);
    if (sig > MAX) return x; // a long integer: the reference rounds it correctly
  }
  for (const c of m[2] ?? '') {
    const n = sig * 10n + BigInt(c);
    if (n > MAX) break;
    sig = n;
    exp--;
  }
  exp += Number(m[3] ?? 0);
  let f = Number(sig);
  for (;;) {
    const a = Math.abs(exp);
    if (a <= 308) {
      f = exp >= 0 ? f * Number(`1e${a}`) : f / Number(`1e${a}`);
      break;
    }
    if (f === 0) break;
    f /= 1e308;
    exp += 308;
  }
  return x < 0 ? -f : f;
}

/** UTF-8 length of a JS string as TextEncoder writes it (lone surrogates become U+FFFD: 3 bytes). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
