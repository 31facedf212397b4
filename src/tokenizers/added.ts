// Added and special tokens: found in the text before the model runs (leftmost-longest, as the
// reference's Aho-Corasick), honouring single_word, lstrip, rstrip and normalized.
import { configError, type Json } from './components.js';
import type { NStr } from './normalized.js';
import { WHITESPACE, WORD_CHAR } from './unicode.js';

export interface AddedToken {
  id: number;
  content: string;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

export function parseAddedTokens(j: Json, path: string): AddedToken[] {
  if (j === undefined || j === null) return [];
  if (!Array.isArray(j)) throw configError(path, 'expected an array');
  return j.map((t: Json, i: number) => {
    const p = `${path}[${i}]`;
    if (!t || typeof t.content !== 'string') throw configError(`${p}.content`, `expected a string, got ${JSON.stringify(t?.content)}`);
    if (!Number.isInteger(t.id) || t.id < 0) throw configError(`${p}.id`, `expected a non-negative integer, got ${JSON.stringify(t.id)}`);
    const special = !!t.special;
    return {
      id: t.id,
      content: t.content,
      singleWord: !!t.single_word,
      lstrip: !!t.lstrip,
      rstrip: !!t.rstrip,
      normalized: t.normalized ?? !special,
      special,
    };
  });
}

interface Entry {
  token: AddedToken;
  pattern: string;
}

/** Finds added tokens in a string: candidates bucketed by their first UTF-16 unit, longest first. */
export class AddedMatcher {
  private readonly byFirst = new Map<number, Entry[]>();
  readonly size: number;

  constructor(entries: Entry[]) {
    for (const e of entries) {
      if (!e.pattern) continue;
      const k = e.pattern.charCodeAt(0);
      let l = this.byFirst.get(k);
      if (!l) this.byFirst.set(k, (l = []));
      l.push(e);
    }
    for (const l of this.byFirst.values()) l.sort((a, b) => b.pattern.length - a.pattern.length);
    this.size = entries.length;
  }

  /** Splits `n` into pieces that are added tokens (id) or not (-1). */
  split(n: NStr): { n: NStr; id: number }[] {
    const s = n.s;
    const out: { n: NStr; id: number }[] = [];
    if (!this.byFirst.size || !s.length) return [{ n, id: -1 }];
    let startOffset = 0;
    let i = 0;
    while (i < s.length) {
      const cands = this.byFirst.get(s.charCodeAt(i));
      let hit: Entry | null = null;
      if (cands) for (const c of cands) if (s.startsWith(c.pattern, i)) { hit = c; break; }
      if (!hit) { i++; continue; }
      let start = i;
      let stop = i + hit.pattern.length;
      i = stop; // the reference's matcher resumes after a match even when it is discarded below
      const t = hit.token;
      if (t.singleWord) {
        const before = start === 0 || !endsWithWord(s, start);
        const after = stop === s.length || !startsWithWord(s, stop);
        if (!before || !after) continue;
      }
      if (t.lstrip) {
        let a = start;
        while (a > 0 && WHITESPACE.test(charBefore(s, a))) a -= charBefore(s, a).length;
        start = Math.max(a, startOffset);
      }
      if (t.rstrip) {
        while (stop < s.length && WHITESPACE.test(charAt(s, stop))) stop += charAt(s, stop).length;
        i = stop;
      }
      if (startOffset < start) out.push({ n: n.slice(startOffset, start), id: -1 });
      out.push({ n: n.slice(start, stop), id: t.id });
      startOffset = stop;
    }
    if (startOffset < s.length) out.push({ n: n.slice(startOffset, s.length), id: -1 });
    return out;
  }
}

function charAt(s: string, i: number): string {
  const c = s.codePointAt(i)!;
  return c > 0xffff ? s.slice(i, i + 2) : s[i];
}
function charBefore(s: string, i: number): string {
  const lo = s.charCodeAt(i - 1);
  if (i >= 2 && lo >= 0xdc00 && lo <= 0xdfff) {
    const hi = s.charCodeAt(i - 2);
    if (hi >= 0xd800 && hi <= 0xdbff) return s.slice(i - 2, i);
  }
  return s[i - 1];
}
const endsWithWord = (s: string, i: number): boolean => WORD_CHAR.test(charBefore(s, i));
const startsWithWord = (s: string, i: number): boolean => WORD_CHAR.test(charAt(s, i));

export function buildMatchers(tokens: AddedToken[], normalize: ((s: string) => string) | null): { raw: AddedMatcher; normalized: AddedMatcher } {
  const raw: Entry[] = [];
  const norm: Entry[] = [];
  for (const t of tokens) {
    if (t.normalized) norm.push({ token: t, pattern: normalize ? normalize(t.content) : t.content });
    else raw.push({ token: t, pattern: t.content });
  }
  return { raw: new AddedMatcher(raw), normalized: new AddedMatcher(norm) };
}
