// The linear-time matcher against JavaScript's own RegExp: the same matches (and the same
// String.replace output) on random short texts for patterns with nested repetition, and on the
// parity corpus for the real split patterns (Unicode properties, classes, lookahead).
import { describe, expect, it } from 'vitest';
import { LinearRegExp } from '../../src/tokenizers/linear-regex.js';
import { LLAMA3_SPLIT } from '../../src/tokenizers/components.js';
import { translateOnigPattern } from '../../src/tokenizers/unicode.js';
import { parityCorpus } from './corpus.js';

/** Every match as index:text, stepping past empty ones as String.prototype.matchAll does. */
function matches(re: RegExp, s: string): string[] {
  const out: string[] = [];
  re.lastIndex = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    out.push(`${m.index}:${m[0]}`);
    if (!m[0].length) re.lastIndex = m.index + (s.codePointAt(m.index)! > 0xffff ? 2 : 1);
  }
  return out;
}

describe('LinearRegExp', () => {
  it('finds what RegExp finds (leftmost, then first alternative / greedy or lazy choice) on random texts', () => {
    const patterns = ['(a+)+$', '(a|a)*$', '(?:\\s*x?)+y', '((a+)?)+$', '(a{1,3}){2,}', '(ab|a)(bc|c)?', 'a*?b|a+?', '\\bab\\b', '(?:a|ab)(?:c|bcd)d*', 'x*', '(?=a)a+|b', '(a|b|)*c?', '(?:a*)*b?', 'a{2,3}?', '(?:ab?){2}?c', '[^a\\s]+|\\s+(?!\\S)|\\s+', '^a|a$|.'];
    const alphabet = ['a', 'b', 'c', 'd', ' ', '\n', 'x', 'y'];
    let seed = 7;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (const p of patterns) {
      const js = new RegExp(p, 'gu');
      const lin = new LinearRegExp(p);
      for (let t = 0; t < 400; t++) {
        let s = '';
        for (let k = Math.floor(rnd() * 12); k > 0; k--) s += alphabet[Math.floor(rnd() * (p.includes('x') || p.includes('s') ? 8 : 4))];
        expect(matches(lin, s), `${p} on ${JSON.stringify(s)}`).toEqual(matches(js, s));
        expect(s.replace(lin, '<$&>'), `${p} replace on ${JSON.stringify(s)}`).toBe(s.replace(js, '<$&>'));
      }
    }
  });

  it('splits the parity corpus as RegExp does with the Llama-3 and GPT-2 patterns', () => {
    const gpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    const lines = parityCorpus().split('\n').slice(0, 400);
    for (const p of [LLAMA3_SPLIT, gpt2]) {
      const src = translateOnigPattern(p);
      const js = new RegExp(src, 'gu');
      const lin = new LinearRegExp(src);
      for (const line of lines) expect(matches(lin, line)).toEqual(matches(js, line));
    }
  });

  it('takes linear time where RegExp takes exponential time', { timeout: 5_000 }, () => {
    const lin = new LinearRegExp('(a+)+$');
    const t0 = performance.now();
    expect(lin.exec('a'.repeat(41) + 'b')).toBeNull(); // RegExp: about 2^41 steps
    lin.lastIndex = 0;
    const m = lin.exec('b' + 'a'.repeat(200_000))!;
    expect([m.index, m[0].length]).toEqual([1, 200_000]);
    expect(performance.now() - t0).toBeLessThan(3_000);
  });

  it('refuses what it cannot run: lookbehind, backreferences', () => {
    expect(() => new LinearRegExp('(?<=a)b+')).toThrow(/lookbehind is not supported/);
    expect(() => new LinearRegExp('(a+)\\1')).toThrow(/backreferences are not supported/);
  });
});
