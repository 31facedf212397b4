// A string being normalized, with the original range of every UTF-16 unit, so tokens can report
// offsets into the text the user passed. Untouched text keeps no arrays (an offset suffices).

/** Original offsets per unit: small plain arrays are far cheaper to make than typed ones. */
export type Offsets = number[] | Int32Array;

export class NStr {
  /** `os`/`oe`: per unit of `s`, its [start, end) in the original text; null means `base + i`. */
  constructor(
    readonly s: string,
    readonly os: Offsets | null,
    readonly oe: Offsets | null,
    readonly base: number,
  ) {}

  static of(s: string, base = 0): NStr {
    return new NStr(s, null, null, base);
  }

  get length(): number {
    return this.s.length;
  }

  /** The original [start, end) of units [a, b). */
  orig(a: number, b: number): [number, number] {
    if (!this.os) return [this.base + a, this.base + b];
    if (a >= b) {
      const at = a < this.s.length ? this.os[a] : this.s.length ? this.oe![this.s.length - 1] : this.base;
      return [at, at];
    }
    return [this.os[a], this.oe![b - 1]];
  }

  slice(a: number, b: number): NStr {
    if (a === 0 && b === this.s.length) return this;
    if (!this.os) return new NStr(this.s.slice(a, b), null, null, this.base + a);
    const cut = (x: Offsets): Offsets => (Array.isArray(x) ? x.slice(a, b) : x.subarray(a, b));
    return new NStr(this.s.slice(a, b), cut(this.os), cut(this.oe!), this.base);
  }
}

/** Builds a new NStr from pieces of an old one (kept alignments) and inserted text (given ranges). */
export class NBuilder {
  private parts: string[] = [];
  private os: number[] = [];
  private oe: number[] = [];
  constructor(private readonly src: NStr) {}

  /** Units [a, b) of the source, unchanged. */
  keep(a: number, b: number): void {
    if (a >= b) return;
    const src = this.src;
    this.parts.push(src.s.slice(a, b));
    const { os, oe } = this;
    if (!src.os) {
      for (let i = a; i < b; i++) {
        os.push(src.base + i);
        oe.push(src.base + i + 1);
      }
    } else {
      const so = src.os;
      const se = src.oe!;
      for (let i = a; i < b; i++) {
        os.push(so[i]);
        oe.push(se[i]);
      }
    }
  }

  /** New text standing for source units [a, b) (an empty range aligns to the point a). */
  put(text: string, a: number, b: number): void {
    if (!text) return;
    const [s, e] = this.src.orig(a, b);
    this.parts.push(text);
    for (let i = 0; i < text.length; i++) {
      this.os.push(s);
      this.oe.push(e);
    }
  }

  done(): NStr {
    return new NStr(this.parts.length === 1 ? this.parts[0] : this.parts.join(''), this.os, this.oe, this.src.base);
  }
}

/** Rewrites each code point through `f` (a string, possibly empty); untouched strings are returned as is. */
export function mapChars(n: NStr, f: (c: string, cp: number) => string): NStr {
  const s = n.s;
  let b: NBuilder | null = null;
  let kept = 0;
  for (let i = 0; i < s.length; ) {
    const cp = s.codePointAt(i)!;
    const w = cp > 0xffff ? 2 : 1;
    const c = w === 2 ? s.slice(i, i + 2) : s[i];
    const r = f(c, cp);
    if (r !== c) {
      b ??= new NBuilder(n);
      b.keep(kept, i);
      b.put(r, i, i + w);
      kept = i + w;
    }
    i += w;
  }
  if (!b) return n;
  b.keep(kept, s.length);
  return b.done();
}

/**
 * Calls `f(start, end)` for each match of the global regex `re` in `s` as the reference's
 * find_iter reports them: empty matches count (they split and take replacements), except one
 * right where the previous match ended.
 */
export function eachMatch(s: string, re: RegExp, f: (a: number, b: number) => void): void {
  let lastEnd = -1;
  re.lastIndex = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    const a = m.index;
    const b = a + m[0].length;
    if (a === b) {
      re.lastIndex = b + (s.codePointAt(b)! > 0xffff ? 2 : 1);
      if (a === lastEnd) continue;
    }
    f(a, b);
    lastEnd = b;
  }
}

/** Replaces each match of the global regex `re` by `content` (or by `f(match)`). */
export function replaceMatches(n: NStr, re: RegExp, content: string | ((m: string) => string)): NStr {
  let b = null as NBuilder | null; // (set in the callback: not narrowed to null here)
  let kept = 0;
  eachMatch(n.s, re, (s, e) => {
    b ??= new NBuilder(n);
    b.keep(kept, s);
    b.put(typeof content === 'string' ? content : content(n.s.slice(s, e)), s, e);
    kept = e;
  });
  if (!b) return n;
  b.keep(kept, n.s.length);
  return b.done();
}

/** Prepends text aligned to the first code point, as the reference's `prepend`. */
export function prepend(n: NStr, text: string): NStr {
  if (!n.s.length) return n;
  const b = new NBuilder(n);
  const w = n.s.codePointAt(0)! > 0xffff ? 2 : 1;
  b.put(text, 0, w);
  b.keep(0, n.s.length);
  return b.done();
}

// Per form, per UTF-16 unit: 0 not yet known, 1 a base character that is its own normal form,
// 2 a base character that changes, 3 a combining mark, 4 a surrogate (taken the slow way).
const KIND: Record<string, Uint8Array> = { NFC: new Uint8Array(65536), NFD: new Uint8Array(65536), NFKC: new Uint8Array(65536), NFKD: new Uint8Array(65536) };
const MARK = /\p{M}/u;
function kindOf(table: Uint8Array, c: number, form: string): number {
  let k = table[c];
  if (k) return k;
  if (c >= 0xd800 && c <= 0xdfff) k = 4;
  else {
    const ch = String.fromCharCode(c);
    k = MARK.test(ch) ? 3 : ch.normalize(form) === ch ? 1 : 2;
  }
  table[c] = k;
  return k;
}

/**
 * A Unicode normalization form with per-character alignments: each output character keeps the
 * original character it came from (decompositions, compatibility mappings, canonical
 * reordering); only characters composed together share the range of their sources.
 */
export function unicodeNormalize(n: NStr, form: 'NFC' | 'NFD' | 'NFKC' | 'NFKD'): NStr {
  const text = n.s;
  const whole = text.normalize(form);
  if (whole === text) return n;
  const table = KIND[form];
  const b = new NBuilder(n);
  let kept = 0; // start of the unchanged run not yet copied
  let i = 0;
  while (i < text.length) {
    // a group: one base character (or none) and the marks after it
    const start = i;
    const k0 = kindOf(table, text.charCodeAt(i), form);
    if (k0 === 4) i += i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
    else if (k0 !== 3) i++;
    let marks = false;
    while (i < text.length) {
      const k = kindOf(table, text.charCodeAt(i), form);
      if (k === 3) { marks = true; i++; }
      else if (k === 4 && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00 && MARK.test(text.slice(i, i + 2))) { marks = true; i += 2; }
      else break;
    }
    if (k0 === 1 && !marks) continue;
    const g = text.slice(start, i);
    const r = g.normalize(form);
    if (r === g) continue;
    b.keep(kept, start);
    kept = i;
    // each source character normalized alone, with its own range
    const srcs: { c: string; a: number; e: number }[] = [];
    for (let j = start; j < i; ) {
      const w = text.codePointAt(j)! > 0xffff ? 2 : 1;
      for (const c of text.slice(j, j + w).normalize(form)) srcs.push({ c, a: j, e: j + w });
      j += w;
    }
    // Output characters align in order with the source characters, as the reference's
    // alignments do; a composed character takes its first source's range and absorbs the marks
    // composed into it.
    const out = Array.from(r);
    let p = 0;
    for (let o = 0; o < out.length; o++) {
      const src = srcs[Math.min(p, srcs.length - 1)];
      b.put(out[o], src.a, src.e);
      p++;
      if (out.length < srcs.length && out[o] !== src.c)
        while (p < srcs.length && srcs.length - p > out.length - o - 1 && MARK.test(srcs[p].c) && srcs[p].c !== out[o + 1]) p++;
    }
  }
  b.keep(kept, n.s.length);
  const out = b.done();
  if (out.s === whole) return out;
  // Composition reached across characters (e.g. conjoining Hangul jamo): align coarsely.
  const wb = new NBuilder(n);
  wb.put(whole, 0, n.s.length);
  return wb.done();
}
