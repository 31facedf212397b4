// tokenizer.json's normalizers and pre-tokenizers, built from their JSON with the path of every
// field in errors. Each follows the Rust `tokenizers` crate, which is the reference for ids.
import { KilnError } from '../core/errors.js';
import { LinearRegExp } from './linear-regex.js';
import { eachMatch, mapChars, NBuilder, NStr, prepend, replaceMatches, unicodeNormalize } from './normalized.js';
import {
  isChineseChar,
  lowercaseChars,
  NONSPACING_MARK,
  NUMERIC,
  OTHER,
  PUNCTUATION,
  backtrackingRisk,
  translateOnigPattern,
  WHITESPACE,
} from './unicode.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export function configError(path: string, message: string): KilnError {
  return new KilnError('config', 'Tokenizer', `${path}: ${message}`);
}

function str(j: Json, key: string, path: string, dflt?: string): string {
  const v = j[key];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'string') throw configError(`${path}.${key}`, `expected a string, got ${JSON.stringify(v)}`);
  return v;
}
function bool(j: Json, key: string, path: string, dflt: boolean): boolean {
  const v = j[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw configError(`${path}.${key}`, `expected a boolean, got ${JSON.stringify(v)}`);
  return v;
}
function list(j: Json, key: string, path: string): Json[] {
  const v = j[key];
  if (!Array.isArray(v)) throw configError(`${path}.${key}`, `expected an array, got ${JSON.stringify(v)}`);
  return v;
}
function typeOf(j: Json, path: string): string {
  if (!j || typeof j !== 'object') throw configError(path, `expected an object, got ${JSON.stringify(j)}`);
  return str(j, 'type', path);
}
/** How deep a component (Sequence in Sequence ...) may nest: real files use 2 or 3 levels. */
export const MAX_NESTING = 64;

/**
 * Refuses a component nested deeper than MAX_NESTING objects / arrays, walking it without
 * recursion, so that building it (which recurses per Sequence) cannot overflow the stack.
 */
export function checkNesting(j: Json, path: string): void {
  const todo: [Json, string, number][] = [[j, path, 0]];
  while (todo.length) {
    const [v, p, depth] = todo.pop()!;
    if (!v || typeof v !== 'object') continue;
    if (depth >= MAX_NESTING) {
      const where = p.length > 120 ? `${p.slice(0, 60)}...${p.slice(-40)}` : p;
      throw configError(path, `nested more than ${MAX_NESTING} levels deep (at ${where})`);
    }
    for (const [k, x] of Object.entries(v)) if (x && typeof x === 'object') todo.push([x, Array.isArray(v) ? `${p}[${k}]` : `${p}.${k}`, depth + 1]);
  }
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

/**
 * A `{"String": s}` or `{"Regex": r}` pattern (Split, Replace, the Replace decoder) as a global,
 * Unicode JavaScript RegExp. A pattern that JavaScript's backtracking could take exponential time
 * on (a repeated group holding a repetition or an alternation) runs on the linear-time matcher.
 */
export function pattern(j: Json, path: string): RegExp {
  if (j && typeof j.String === 'string') return new RegExp(escapeRe(j.String), 'gu');
  if (j && typeof j.Regex === 'string') {
    let src: string;
    try {
      src = translateOnigPattern(j.Regex);
      new RegExp(src, 'gu');
    } catch (e) {
      throw configError(`${path}.Regex`, `cannot use pattern ${JSON.stringify(j.Regex)}: ${(e as Error).message}`);
    }
    const risk = backtrackingRisk(src);
    if (!risk) return new RegExp(src, 'gu');
    try {
      return new LinearRegExp(src);
    } catch (e) {
      throw configError(`${path}.Regex`, `pattern ${JSON.stringify(j.Regex)} could backtrack catastrophically (${risk}) and the linear-time matcher cannot run it: ${(e as Error).message}`);
    }
  }
  throw configError(path, `expected {"String": ...} or {"Regex": ...}, got ${JSON.stringify(j)}`);
}

// ---------------------------------------------------------------- normalizers

export type Normalizer = (n: NStr) => NStr;

/** What the model needs to know from the normalizer: whether it maps bytes to characters. */
export interface Flags {
  byteLevel: boolean;
}

// Per UTF-16 unit, what a character-wise rewrite does with it: 1 keep, 2 make a space, 3 drop
// (0: not yet known). Astral characters (surrogate pairs) take the callback.
const KEEP = 1;
const SPACE = 2;
const DROP = 3;
function rewriteByTable(n: NStr, table: Uint8Array, classify: (c: string, cp: number) => number): NStr {
  const s = n.s;
  let b: NBuilder | null = null;
  let kept = 0;
  for (let i = 0; i < s.length; i++) {
    const u = s.charCodeAt(i);
    let w = 1;
    let act: number;
    if (u >= 0xd800 && u <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      w = 2;
      act = classify(s.slice(i, i + 2), s.codePointAt(i)!);
    } else {
      act = table[u];
      if (!act) act = table[u] = classify(s[i], u);
    }
    if (act === KEEP || (act === SPACE && u === 32)) {
      i += w - 1;
      continue;
    }
    b ??= new NBuilder(n);
    b.keep(kept, i);
    if (act === SPACE) b.put(' ', i, i + w);
    kept = i + w;
    i += w - 1;
  }
  if (!b) return n;
  b.keep(kept, s.length);
  return b.done();
}
const CLEAN = new Uint8Array(65536);
const classifyClean = (c: string, cp: number): number =>
  cp === 0 || cp === 0xfffd ? DROP : c === '\t' || c === '\n' || c === '\r' ? SPACE : OTHER.test(c) ? DROP : WHITESPACE.test(c) ? SPACE : KEEP;
const MARKS = new Uint8Array(65536);
const classifyMark = (c: string): number => (NONSPACING_MARK.test(c) ? DROP : KEEP);

const NFD_MARKS = (n: NStr): NStr => {
  const d = unicodeNormalize(n, 'NFD');
  return HAS_MN.test(d.s) ? rewriteByTable(d, MARKS, classifyMark) : d;
};
const NEEDS_CLEAN = /(?! )[\p{C}\p{White_Space}\ufffd]/u;
const HAS_CJK = /[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u{20000}-\u{2a6df}\u{2a700}-\u{2ceaf}\u{2f800}-\u{2fa1f}]/u;
const NON_ASCII = /[^\0-\x7f]/;
const HAS_MN = /\p{Mn}/u;

export function buildNormalizer(j: Json, path: string, flags: Flags): Normalizer | null {
  if (j === null || j === undefined) return null;
  const t = typeOf(j, path);
  switch (t) {
    case 'Sequence': {
      const parts = list(j, 'normalizers', path).map((x, i) => buildNormalizer(x, `${path}.normalizers[${i}]`, flags));
      const fs = parts.filter((p): p is Normalizer => p !== null);
      return (n) => fs.reduce((acc, f) => f(acc), n);
    }
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
      return (n) => unicodeNormalize(n, t);
    case 'Lowercase':
      return lowercase;
    case 'StripAccents':
      return (n) => (HAS_MN.test(n.s) ? rewriteByTable(n, MARKS, classifyMark) : n);
    case 'Strip': {
      const left = bool(j, 'strip_left', path, true);
      const right = bool(j, 'strip_right', path, true);
      return (n) => strip(n, left, right);
    }
    case 'Replace': {
      const re = pattern(j.pattern, `${path}.pattern`);
      const content = str(j, 'content', path);
      return (n) => replaceMatches(n, re, content);
    }
    case 'Prepend': {
      const p = str(j, 'prepend', path);
      return (n) => prepend(n, p);
    }
    case 'BertNormalizer': {
      const clean = bool(j, 'clean_text', path, true);
      const chinese = bool(j, 'handle_chinese_chars', path, true);
      const lower = bool(j, 'lowercase', path, true);
      const accents = j.strip_accents === null || j.strip_accents === undefined ? lower : bool(j, 'strip_accents', path, lower);
      return (n) => {
        // Each step first asks one regex whether the text has anything for it to change.
        if (clean && NEEDS_CLEAN.test(n.s)) n = rewriteByTable(n, CLEAN, classifyClean);
        if (chinese && HAS_CJK.test(n.s)) n = mapChars(n, (c, cp) => (isChineseChar(cp) ? ` ${c} ` : c));
        if (accents && NON_ASCII.test(n.s)) n = NFD_MARKS(n);
        return lower ? lowercase(n) : n;
      };
    }
    case 'Nmt':
      return (n) =>
        mapChars(n, (c, cp) => {
          if ((cp >= 0x1 && cp <= 0x8) || cp === 0xb || (cp >= 0xe && cp <= 0x1f) || cp === 0x7f || cp === 0x8f || cp === 0x9f) return '';
          if (cp === 0x9 || cp === 0xa || cp === 0xc || cp === 0xd || cp === 0x1680 || (cp >= 0x200b && cp <= 0x200f) || cp === 0x2028 || cp === 0x2029 || cp === 0x2581 || cp === 0xfeff || cp === 0xfffd) return ' ';
          return c;
        });
    case 'ByteLevel':
      flags.byteLevel = true;
      return null;
    default:
      throw configError(`${path}.type`, `unsupported normalizer '${t}' (supported: Sequence, NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Strip, Replace, Prepend, BertNormalizer, Nmt, ByteLevel)`);
  }
}

/** Per-character lowercase; when no character changes length the alignments carry over as they are. */
function lowercase(n: NStr): NStr {
  const l = lowercaseChars(n.s);
  if (l === n.s) return n;
  if (l.length === n.s.length) return new NStr(l, n.os, n.oe, n.base);
  return mapChars(n, (c) => lowercaseChars(c));
}

function strip(n: NStr, left: boolean, right: boolean): NStr {
  let a = 0;
  let b = n.s.length;
  if (left) while (a < b && WHITESPACE.test(n.s[a])) a++;
  if (right) while (b > a && WHITESPACE.test(n.s[b - 1])) b--;
  return n.slice(a, b);
}

// ---------------------------------------------------------------- pre-tokenizers

export type Behavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';
const BEHAVIORS = ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'];

/** Splits `n` given the matches of a pattern: [start, end, isMatch] covering it in order. */
function splitBy(n: NStr, m: number[], behavior: Behavior, out: NStr[]): void {
  // m is flat: start, end, isMatch(0/1), ...
  const k = m.length / 3;
  const emit = (a: number, b: number): void => {
    if (b > a) out.push(n.slice(a, b));
  };
  if (behavior === 'Isolated' || behavior === 'Removed') {
    for (let i = 0; i < k; i++) if (!(behavior === 'Removed' && m[3 * i + 2])) emit(m[3 * i], m[3 * i + 1]);
    return;
  }
  if (behavior === 'Contiguous' || behavior === 'MergedWithPrevious') {
    let prev = false;
    let cs = -1;
    let ce = -1;
    for (let i = 0; i < k; i++) {
      const [s, e, isM] = [m[3 * i], m[3 * i + 1], m[3 * i + 2] === 1];
      const extend = behavior === 'Contiguous' ? isM === prev : isM && !prev;
      if (extend && cs >= 0) ce = e;
      else {
        if (cs >= 0) emit(cs, ce);
        cs = s;
        ce = e;
      }
      prev = isM;
    }
    if (cs >= 0) emit(cs, ce);
    return;
  }
  // MergedWithNext: the same fold, from the end
  const acc: [number, number][] = [];
  let prev = false;
  for (let i = k - 1; i >= 0; i--) {
    const [s, e, isM] = [m[3 * i], m[3 * i + 1], m[3 * i + 2] === 1];
    if (isM && !prev && acc.length) acc[acc.length - 1][0] = s;
    else acc.push([s, e]);
    prev = isM;
  }
  for (let i = acc.length - 1; i >= 0; i--) emit(acc[i][0], acc[i][1]);
}

/** The pieces of `s` for a Split: [start, end, isMatch] covering it, empty matches as boundaries. */
function regexMatches(s: string, re: RegExp, invert: boolean): number[] {
  const m: number[] = [];
  let prev = 0;
  eachMatch(s, re, (a, b) => {
    if (prev !== a) m.push(prev, a, invert ? 1 : 0);
    m.push(a, b, invert ? 0 : 1);
    prev = b;
  });
  if (prev !== s.length) m.push(prev, s.length, invert ? 1 : 0);
  return m;
}

/** Each code point for which `test` holds is a match of its own (the reference's char patterns). */
function charMatches(s: string, test: RegExp): number[] {
  const m: number[] = [];
  let last = 0;
  for (let i = 0; i < s.length; ) {
    const w = s.codePointAt(i)! > 0xffff ? 2 : 1;
    if (test.test(w === 2 ? s.slice(i, i + 2) : s[i])) {
      if (last < i) m.push(last, i, 0);
      m.push(i, i + w, 1);
      last = i + w;
    }
    i += w;
  }
  if (last < s.length) m.push(last, s.length, 0);
  return m;
}

export type PreTokenizer = (pieces: NStr[]) => NStr[];

const perPiece =
  (f: (n: NStr, out: NStr[]) => void): PreTokenizer =>
  (pieces) => {
    const out: NStr[] = [];
    for (const p of pieces) f(p, out);
    return out;
  };

/** Each match of the global `re` is a piece; the text between matches is dropped. */
function matchPieces(n: NStr, re: RegExp, out: NStr[]): void {
  re.lastIndex = 0;
  for (let m = re.exec(n.s); m; m = re.exec(n.s)) out.push(n.slice(m.index, m.index + m[0].length));
}
const NON_WHITESPACE_RUN = /\P{White_Space}+/gu;
const BERT_PIECES = /[!-/:-@[-`{-~\p{P}]|[^\p{White_Space}!-/:-@[-`{-~\p{P}]+/gu;

const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;
const WHITESPACE_WORDS = new RegExp(translateOnigPattern('\\w+|[^\\w\\s]+'), 'gu');

function behaviorOf(j: Json, path: string, dflt: Behavior): Behavior {
  const b = j.behavior ?? dflt;
  if (!BEHAVIORS.includes(b)) throw configError(`${path}.behavior`, `unknown split behavior ${JSON.stringify(b)} (one of ${BEHAVIORS.join(', ')})`);
  return b as Behavior;
}

function metaspacePrefix(j: Json, path: string): 'always' | 'first' | 'never' {
  if (j.prepend_scheme !== undefined) {
    const p = j.prepend_scheme;
    if (p !== 'always' && p !== 'first' && p !== 'never') throw configError(`${path}.prepend_scheme`, `expected always, first or never, got ${JSON.stringify(p)}`);
    return p;
  }
  return bool(j, 'add_prefix_space', path, true) ? 'always' : 'never';
}

export function buildPreTokenizer(j: Json, path: string, flags: Flags): PreTokenizer | null {
  if (j === null || j === undefined) return null;
  const t = typeOf(j, path);
  switch (t) {
    case 'Sequence': {
      const fs = list(j, 'pretokenizers', path)
        .map((x, i) => buildPreTokenizer(x, `${path}.pretokenizers[${i}]`, flags))
        .filter((p): p is PreTokenizer => p !== null);
      return (pieces) => fs.reduce((acc, f) => f(acc), pieces);
    }
    case 'Split': {
      const re = pattern(j.pattern, `${path}.pattern`);
      const behavior = behaviorOf(j, path, 'Isolated');
      const invert = bool(j, 'invert', path, false);
      return perPiece((n, out) => splitBy(n, regexMatches(n.s, re, invert), behavior, out));
    }
    case 'ByteLevel': {
      flags.byteLevel = true;
      const addPrefix = bool(j, 'add_prefix_space', path, true);
      const useRegex = bool(j, 'use_regex', path, true);
      return perPiece((n, out) => {
        if (addPrefix && !n.s.startsWith(' ')) n = prepend(n, ' ');
        if (useRegex) splitBy(n, regexMatches(n.s, GPT2_SPLIT, false), 'Isolated', out);
        else if (n.length) out.push(n);
      });
    }
    case 'Metaspace': {
      const rep = str(j, 'replacement', path, '▁');
      const scheme = metaspacePrefix(j, path);
      const split = bool(j, 'split', path, true);
      const repRe = new RegExp(escapeRe(rep), 'gu');
      return perPiece((n, out) => {
        n = replaceMatches(n, / /g, rep);
        if (!n.s.startsWith(rep) && (scheme === 'always' || (scheme === 'first' && n.orig(0, 0)[0] === 0))) n = prepend(n, rep);
        if (split) splitBy(n, regexMatches(n.s, repRe, false), 'MergedWithNext', out);
        else if (n.length) out.push(n);
      });
    }
    case 'Whitespace':
      return perPiece((n, out) => splitBy(n, regexMatches(n.s, WHITESPACE_WORDS, true), 'Removed', out));
    case 'WhitespaceSplit':
      return perPiece((n, out) => matchPieces(n, NON_WHITESPACE_RUN, out));
    case 'Punctuation': {
      const behavior = behaviorOf(j, path, 'Isolated');
      return perPiece((n, out) => splitBy(n, charMatches(n.s, PUNCTUATION), behavior, out));
    }
    case 'Digits': {
      const individual = bool(j, 'individual_digits', path, false);
      return perPiece((n, out) => splitBy(n, charMatches(n.s, NUMERIC), individual ? 'Isolated' : 'Contiguous', out));
    }
    case 'BertPreTokenizer':
      // whitespace removed, each punctuation character alone: one pass of one regex
      return perPiece((n, out) => matchPieces(n, BERT_PIECES, out));
    case 'CharDelimiterSplit': {
      const d = str(j, 'delimiter', path);
      // the reference's delimiter is one char (a code point): "ab" or "" does not deserialize
      if ([...d].length !== 1) throw configError(`${path}.delimiter`, `expected one character, got ${JSON.stringify(d)}`);
      const re = new RegExp(escapeRe(d), 'u');
      return perPiece((n, out) => splitBy(n, charMatches(n.s, re), 'Removed', out));
    }
    default:
      throw configError(`${path}.type`, `unsupported pre-tokenizer '${t}' (supported: Sequence, Split, ByteLevel, Metaspace, Whitespace, WhitespaceSplit, Punctuation, Digits, BertPreTokenizer, CharDelimiterSplit)`);
  }
}

export { NBuilder };

// ---------------------------------------------------------------- the split patterns run in wasm

export const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT = LLAMA3_SPLIT.replace('\\p{N}{1,3}', '\\p{N}');

export interface WasmSplit {
  /** 1 GPT-2, 2 Llama-3, 3 Qwen2, 4 BertPreTokenizer, 5 WhitespaceSplit (assembly/tokenizer/split.ts). */
  kind: number;
  /** ByteLevel's add_prefix_space: a space put before each text that lacks one. */
  prefixSpace: boolean;
}

/**
 * The pre-tokenizers whose split the wasm module runs itself: for byte-level BPE, GPT-2's
 * ByteLevel regex and Split with the Llama-3 or Qwen2 pattern then ByteLevel without regex; for
 * any other model, BertPreTokenizer and WhitespaceSplit. Null for any other.
 */
export function wasmSplitOf(j: Json, byteLevelBpe: boolean): WasmSplit | null {
  if (!byteLevelBpe) {
    if (j?.type === 'BertPreTokenizer') return { kind: 4, prefixSpace: false };
    if (j?.type === 'WhitespaceSplit') return { kind: 5, prefixSpace: false };
    return null;
  }
  if (j?.type === 'ByteLevel' && j.use_regex !== false) return { kind: 1, prefixSpace: j.add_prefix_space ?? true };
  if (j?.type !== 'Sequence' || !Array.isArray(j.pretokenizers) || j.pretokenizers.length !== 2) return null;
  const [split, bl] = j.pretokenizers;
  if (split?.type !== 'Split' || (split.behavior ?? 'Isolated') !== 'Isolated' || split.invert) return null;
  if (bl?.type !== 'ByteLevel' || bl.use_regex !== false || bl.add_prefix_space) return null;
  const re = split.pattern?.Regex;
  return re === LLAMA3_SPLIT ? { kind: 2, prefixSpace: false } : re === QWEN2_SPLIT ? { kind: 3, prefixSpace: false } : null;
}
