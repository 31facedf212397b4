// A string being normalized, with the original range of every UTF-16 unit, so tokens can report
// offsets into the text the user passed. Untouched text keeps no arrays (an offset suffices).

export class NStr {
  /** `os`/`oe`: per unit of `s`, its [start, end) in the original text; null means `base + i`. */
  constructor(
    readonly s: string,
    readonly os: Int32Array | null,
    readonly oe: Int32Array | null,
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
    return new NStr(this.s.slice(a, b), this.os.subarray(a, b), this.oe!.subarray(a, b), this.base);
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
    this.parts.push(this.src.s.slice(a, b));
    for (let i = a; i < b; i++) {
      const [s, e] = this.src.orig(i, i + 1);
      this.os.push(s);
      this.oe.push(e);
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
    return new NStr(this.parts.join(''), Int32Array.from(this.os), Int32Array.from(this.oe), this.src.base);
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

/** Replaces each match of the global regex `re` by `content` (or by `f(match)`). */
export function replaceMatches(n: NStr, re: RegExp, content: string | ((m: string) => string)): NStr {
  re.lastIndex = 0;
  let b: NBuilder | null = null;
  let kept = 0;
  for (let m = re.exec(n.s); m; m = re.exec(n.s)) {
    if (m[0].length === 0) {
      re.lastIndex++;
      continue;
    }
    b ??= new NBuilder(n);
    b.keep(kept, m.index);
    b.put(typeof content === 'string' ? content : content(m[0]), m.index, m.index + m[0].length);
    kept = m.index + m[0].length;
  }
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

/**
 * A Unicode normalization form with per-character alignments: each output character keeps the
 * original character it came from (decompositions, compatibility mappings, canonical
 * reordering); only characters composed together share the range of their sources.
 */
export function unicodeNormalize(n: NStr, form: 'NFC' | 'NFD' | 'NFKC' | 'NFKD'): NStr {
  const whole = n.s.normalize(form);
  if (whole === n.s) return n;
  const b = new NBuilder(n);
  const re = /\P{M}\p{M}*|\p{M}+/gsu;
  let pos = 0;
  for (let m = re.exec(n.s); m; m = re.exec(n.s)) {
    const g = m[0];
    const r = g.normalize(form);
    pos = m.index + g.length;
    if (r === g) {
      b.keep(m.index, pos);
      continue;
    }
    // each source character normalized alone, with its own range
    const srcs: { c: string; a: number; e: number }[] = [];
    for (let i = m.index; i < pos; ) {
      const w = n.s.codePointAt(i)! > 0xffff ? 2 : 1;
      for (const c of n.s.slice(i, i + w).normalize(form)) srcs.push({ c, a: i, e: i + w });
      i += w;
    }
    // Output characters align in order with the source characters, as the reference's
    // alignments do; a composed character takes its first source's range and absorbs the marks
    // composed into it.
    const out = Array.from(r);
    let p = 0;
    for (let i = 0; i < out.length; i++) {
      const src = srcs[Math.min(p, srcs.length - 1)];
      b.put(out[i], src.a, src.e);
      p++;
      if (out.length < srcs.length && out[i] !== src.c)
        while (p < srcs.length && srcs.length - p > out.length - i - 1 && /\p{M}/u.test(srcs[p].c) && srcs[p].c !== out[i + 1]) p++;
    }
  }
  b.keep(pos, n.s.length);
  const out = b.done();
  if (out.s === whole) return out;
  // Composition reached across characters (e.g. conjoining Hangul jamo): align coarsely.
  const wb = new NBuilder(n);
  wb.put(whole, 0, n.s.length);
  return wb.done();
}
