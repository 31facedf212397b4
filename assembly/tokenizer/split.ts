// The split patterns of byte-level tokenizers, as hand-written matchers over UTF-8 with the same
// matches as the regular expressions (leftmost alternative first, greedy runs, the backtracking of
// `\s*[\r\n]+` and `\s+(?!\S)` worked out):
//   GPT-2     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   Llama-3   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   Qwen2     the same with \p{N} one digit at a time
// (\s is White_Space, as the Rust library's Oniguruma reads it.)
import { charClass as charClass5, CLS_LETTER, CLS_NUMBER, CLS_OTHER, CLS_PUNCT, CLS_SPACE } from './unicode.gen';

// The regex patterns know no punctuation class: it is 'other' to them.
@inline function charClass(cp: u32): u32 { const c = charClass5(cp); return c == CLS_PUNCT ? CLS_OTHER : c; }

export const SPLIT_GPT2 = 1;
export const SPLIT_LLAMA3 = 2;
export const SPLIT_QWEN2 = 3;
/** BertPreTokenizer: whitespace removed, each punctuation character a piece of its own. */
export const SPLIT_BERT = 4;
/** WhitespaceSplit: runs of non-whitespace. */
export const SPLIT_WHITESPACE = 5;

let cpLen: i32 = 1;
/** The code point at byte i (its byte length in cpLen); text is valid UTF-8 from TextEncoder. */
@inline function cpAt(p: usize, i: i32, n: i32): u32 {
  const b0 = <u32>load<u8>(p + i);
  if (b0 < 0x80) { cpLen = 1; return b0; }
  if (b0 < 0xe0 && i + 1 < n) { cpLen = 2; return ((b0 & 0x1f) << 6) | (<u32>load<u8>(p + i + 1) & 0x3f); }
  if (b0 < 0xf0 && i + 2 < n) { cpLen = 3; return ((b0 & 0x0f) << 12) | ((<u32>load<u8>(p + i + 1) & 0x3f) << 6) | (<u32>load<u8>(p + i + 2) & 0x3f); }
  if (i + 3 < n) { cpLen = 4; return ((b0 & 0x07) << 18) | ((<u32>load<u8>(p + i + 1) & 0x3f) << 12) | ((<u32>load<u8>(p + i + 2) & 0x3f) << 6) | (<u32>load<u8>(p + i + 3) & 0x3f); }
  cpLen = 1;
  return 0xfffd;
}

@inline function classAt(p: usize, i: i32, n: i32): u32 { return charClass(cpAt(p, i, n)); }

/** End of the run of class `c` starting at byte i. */
function runOf(p: usize, i: i32, n: i32, c: u32): i32 {
  while (i < n) {
    if (classAt(p, i, n) != c) break;
    i += cpLen;
  }
  return i;
}

@inline function lowerAscii(b: u32): u32 { return b >= 65 && b <= 90 ? b + 32 : b; }

/** Length of a contraction ('s 't 're 've 'm 'll 'd) at i, or 0. */
function contraction(p: usize, i: i32, n: i32, fold: bool): i32 {
  if (load<u8>(p + i) != 39 || i + 1 >= n) return 0;
  let b1 = <u32>load<u8>(p + i + 1);
  if (fold) b1 = lowerAscii(b1);
  if (b1 == 115 || b1 == 116 || b1 == 109 || b1 == 100) return 2; // s t m d
  if (i + 2 >= n) return 0;
  let b2 = <u32>load<u8>(p + i + 2);
  if (fold) b2 = lowerAscii(b2);
  if ((b1 == 114 && b2 == 101) || (b1 == 118 && b2 == 101) || (b1 == 108 && b2 == 108)) return 3; // re ve ll
  return 0;
}

/** The whitespace alternatives at i (a White_Space character): returns the match end. */
function spaces(p: usize, i: i32, n: i32, newlines: bool): i32 {
  let end = i;
  let last = i; // start of the run's last character
  let lastNl = -1; // the last \r or \n in the run
  while (end < n) {
    const cp = cpAt(p, end, n);
    if (charClass(cp) != CLS_SPACE) break;
    if (cp == 10 || cp == 13) lastNl = end;
    last = end;
    end += cpLen;
  }
  if (newlines && lastNl >= 0) return lastNl + 1; // \s*[\r\n]+
  if (end == n) return end; // \s+(?!\S) at the end of the text
  if (last > i) return last; // \s+(?!\S): all but the last space, which the next piece takes
  return end; // \s+
}

/** One piece at byte i: returns its end. */
function piece(p: usize, i: i32, n: i32, kind: i32): i32 {
  const llama = kind != SPLIT_GPT2;
  const k = contraction(p, i, n, llama);
  if (k) return i + k;
  const cp0 = cpAt(p, i, n);
  const l0 = cpLen;
  const c0 = charClass(cp0);
  const c1 = i + l0 < n ? classAt(p, i + l0, n) : 0xff;
  if (llama) {
    if (c0 == CLS_LETTER) return runOf(p, i, n, CLS_LETTER);
    if (cp0 != 10 && cp0 != 13 && c0 != CLS_NUMBER && c1 == CLS_LETTER) return runOf(p, i + l0, n, CLS_LETTER);
    if (c0 == CLS_NUMBER) {
      const max = kind == SPLIT_LLAMA3 ? 3 : 1;
      let j = i;
      for (let d = 0; d < max && j < n; d++) {
        if (classAt(p, j, n) != CLS_NUMBER) break;
        j += cpLen;
      }
      return j;
    }
    let j = i;
    if (cp0 == 32 && c1 == CLS_OTHER) j = i + 1;
    if (j < n && classAt(p, j, n) == CLS_OTHER) {
      j = runOf(p, j, n, CLS_OTHER);
      while (j < n && (load<u8>(p + j) == 10 || load<u8>(p + j) == 13)) j++;
      return j;
    }
    return spaces(p, i, n, true);
  }
  // GPT-2: an optional leading space, then a run of one class
  if (cp0 == 32 && c1 != CLS_SPACE && c1 != 0xff) return runOf(p, i + 1, n, c1);
  if (c0 != CLS_SPACE) return runOf(p, i, n, c0);
  return spaces(p, i, n, false);
}

/** The whitespace-separated splits: BertPreTokenizer and WhitespaceSplit. */
function splitWords(p: usize, n: i32, bert: bool, bounds: usize): i32 {
  let count = 0;
  let i = 0;
  while (i < n) {
    const c = charClass5(cpAt(p, i, n));
    const l = cpLen;
    if (c == CLS_SPACE) { i += l; continue; }
    let e = i + l;
    if (!(bert && c == CLS_PUNCT)) {
      while (e < n) {
        const d = charClass5(cpAt(p, e, n));
        if (d == CLS_SPACE || (bert && d == CLS_PUNCT)) break;
        e += cpLen;
      }
    }
    store<i32>(bounds + (<usize>count << 3), i);
    store<i32>(bounds + (<usize>count << 3) + 4, e);
    count++;
    i = e;
  }
  return count;
}

/** Splits text into pieces, writing [start, end) byte pairs to `bounds`; returns the count. */
export function splitText(p: usize, n: i32, kind: i32, bounds: usize): i32 {
  if (kind == SPLIT_BERT || kind == SPLIT_WHITESPACE) return splitWords(p, n, kind == SPLIT_BERT, bounds);
  let count = 0;
  let i = 0;
  while (i < n) {
    const e = piece(p, i, n, kind);
    store<i32>(bounds + (<usize>count << 3), i);
    store<i32>(bounds + (<usize>count << 3) + 4, e);
    count++;
    i = e;
  }
  return count;
}
