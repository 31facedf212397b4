// Character classes as the Rust `tokenizers` crate defines them, and the translation of its
// Oniguruma split patterns into JavaScript regular expressions with the same matches.

/** Rust `char::is_whitespace`: the Unicode White_Space property (which JS `\s` is not: it adds U+FEFF and lacks U+0085). */
export const WHITESPACE = /\p{White_Space}/u;
/** Rust `is_ascii_punctuation() || is_punctuation()`: ASCII symbols count, other symbols don't. */
export const PUNCTUATION = /[!-/:-@[-`{-~]|\p{P}/u;
/** Rust `char::is_numeric`: Nd, Nl and No. */
export const NUMERIC = /\p{N}/u;
/** Rust regex `\w` (Unicode): what `single_word` added tokens must not touch. */
export const WORD_CHAR = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]/u;
export const NONSPACING_MARK = /\p{Mn}/u;
/** The reference BERT normalizer's "control": Cc, Cf, Co and Cs (unassigned code points are kept). */
export const OTHER = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}]/u;

export const isWhitespace = (c: string): boolean => WHITESPACE.test(c);
export const isPunctuation = (c: string): boolean => PUNCTUATION.test(c);
export const isNumeric = (c: string): boolean => NUMERIC.test(c);

export function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/** Lowercases one code point at a time, as Rust's `char::to_lowercase` (no final-sigma context). */
export function lowercaseChars(s: string): string {
  const lower = s.toLowerCase();
  if (!s.includes('Σ')) return lower;
  let out = '';
  for (const c of s) out += c.toLowerCase();
  return out;
}

const SHORTHANDS: Record<string, [string, string]> = {
  // [outside a class, inside a class]
  s: ['\\p{White_Space}', '\\p{White_Space}'],
  S: ['\\P{White_Space}', '\\P{White_Space}'],
  d: ['\\p{Nd}', '\\p{Nd}'],
  D: ['\\P{Nd}', '\\P{Nd}'],
  w: ['[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]', '\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}'],
  W: ['[^\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]', ''],
};

/**
 * Translates an Oniguruma pattern (as tokenizer.json stores them) into a JavaScript `u`-mode
 * source: Unicode `\s`/`\w`/`\d`, and `(?i:...)` groups expanded into case pairs of ASCII
 * letters (V8 before 12.4 has no inline modifiers). Throws on what it cannot carry over.
 */
export function translateOnigPattern(src: string): string {
  let out = '';
  let inClass = 0;
  let fold = 0; // depth of (?i: groups still open, by their paren depth
  const foldStack: number[] = [];
  let depth = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '\\') {
      const n = src[i + 1];
      if (n === undefined) throw new SyntaxError('pattern ends with a backslash');
      if (SHORTHANDS[n]) {
        const [outside, inside] = SHORTHANDS[n];
        if (inClass && !inside) throw new SyntaxError(`\\${n} inside a character class is not supported`);
        out += inClass ? inside : outside;
        i++;
        continue;
      }
      if (n === 'p' || n === 'P' || n === 'x' || n === 'u') {
        // copy \p{..}, \x{..} / \xHH, \uHHHH as they are
        let j = i + 2;
        if (src[j] === '{') j = src.indexOf('}', j) + 1;
        else j = n === 'x' ? j + 2 : n === 'u' ? j + 4 : j + 1;
        let t = src.slice(i, j);
        if (n === 'x' && t[2] === '{') t = `\\u{${t.slice(3, -1)}}`;
        out += t;
        i = j - 1;
        continue;
      }
      if (n === 'A') { out += '^'; i++; continue; }
      if (n === 'z') { out += '$'; i++; continue; }
      out += c + n;
      i++;
      continue;
    }
    if (inClass) {
      if (c === '[') inClass++;
      else if (c === ']') inClass--;
      if (fold && /[a-zA-Z]/.test(c) && src[i - 1] !== '-' && src[i + 1] !== '-') out += c.toLowerCase() + c.toUpperCase();
      else out += c;
      continue;
    }
    if (c === '[') { inClass = 1; out += c; if (src[i + 1] === '^') { out += '^'; i++; } if (src[i + 1] === ']') { out += '\\]'; i++; } continue; }
    if (c === '(') {
      depth++;
      if (src.startsWith('(?i:', i)) {
        foldStack.push(depth);
        fold++;
        out += '(?:';
        i += 3;
        continue;
      }
      if (src.startsWith('(?>', i)) throw new SyntaxError('atomic groups are not supported');
      out += c;
      continue;
    }
    if (c === ')') {
      if (foldStack.length && foldStack[foldStack.length - 1] === depth) { foldStack.pop(); fold--; }
      depth--;
      out += c;
      continue;
    }
    if (fold && /[a-zA-Z]/.test(c)) { out += `[${c.toLowerCase()}${c.toUpperCase()}]`; continue; }
    if ((c === '+' || c === '*' || c === '?' || c === '}') && src[i + 1] === '+') throw new SyntaxError('possessive quantifiers are not supported');
    out += c;
  }
  return out;
}

/**
 * Why a JavaScript pattern source could backtrack catastrophically, or null. JS RegExp backtracks,
 * so a repeated group that itself holds a repetition or an alternation (`(a+)+$`, `(a|a)*$`) can
 * take exponential time on a short text. Real tokenizer.json patterns have none (star height 1);
 * the ones that do run on the linear-time matcher (linear-regex.ts).
 */
export function backtrackingRisk(src: string): string | null {
  // per open group: its start and whether it holds a repetition / an alternation
  const stack: { start: number; repeat: boolean; alt: boolean }[] = [{ start: 0, repeat: false, alt: false }];
  let last: { start: number; repeat: boolean; alt: boolean } | null = null; // the group just closed
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    const top = stack[stack.length - 1];
    if (c === '\\') {
      if ((src[i + 1] === 'p' || src[i + 1] === 'P' || src[i + 1] === 'u' || src[i + 1] === 'x') && src[i + 2] === '{') i = src.indexOf('}', i);
      else i++;
      last = null;
    } else if (c === '[') {
      for (i++; i < src.length && src[i] !== ']'; i++) if (src[i] === '\\') i++;
      last = null;
    } else if (c === '(') stack.push({ start: i, repeat: false, alt: false });
    else if (c === ')' && stack.length > 1) {
      last = stack.pop()!;
      const parent = stack[stack.length - 1];
      parent.repeat ||= last.repeat;
      parent.alt ||= last.alt;
      continue;
    } else if (c === '|') top.alt = true;
    else if (c === '*' || c === '+' || c === '?' || (c === '{' && /^\{\d+(,\d*)?\}/.test(src.slice(i)))) {
      let max = c === '?' ? 1 : Infinity;
      if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(i))!;
        max = m[2] === undefined ? Number(m[1]) : m[3] === '' ? Infinity : Number(m[3]);
        i += m[0].length - 1;
      }
      if (src[i + 1] === '?') i++; // lazy
      if (max > 1) {
        if (last && (last.repeat || last.alt)) return `the repeated group ${src.slice(last.start, i + 1)} holds ${last.repeat ? 'a repetition' : 'an alternation'}`;
        top.repeat = true;
      }
    }
    last = null;
  }
  return null;
}
