// The parity corpus (over 2 MB, deterministic): English prose (the licenses every Debian machine
// ships), source code (TypeScript's own lib files, pinned by the lockfile), and generated lines
// of numbers, emoji with joiners, CJK, Arabic, Hebrew, Cyrillic, runs of spaces and tabs,
// special-token strings inside text, combining marks, fullwidth forms and zero-width characters.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SENTENCES = [
  'The quick brown fox jumps over the lazy dog; it wasn’t “really” that quick, was it?',
  "I'm sure they'll say we've done it, but you'd know it's not what he'd've wanted. DON'T SHOUT, it's RUDE.",
  '東京都の天気は晴れです。明日は雨が降るでしょう。今日は2026年11月29日です。',
  '我们在北京学习中文，这是一个很好的机会。机器学习和自然语言处理很有趣。',
  '한국어 문장도 포함됩니다. 오늘 날씨가 정말 좋네요!',
  'مرحبا بالعالم، هذه جملة عربية للاختبار. اللغة العربية جميلة ١٢٣٤٥.',
  'שלום עולם, זה משפט בעברית לבדיקה. עברית נכתבת מימין לשמאל.',
  'Привет, мир! Это предложение на русском языке. Съешь же ещё этих мягких французских булок.',
  'Ελληνικά: Καλημέρα κόσμε, αυτή είναι μια δοκιμή. ΣΟΦΟΣ σοφός ΟΔΟΣ.',
  'हिन्दी में एक वाक्य: नमस्ते दुनिया, यह एक परीक्षण है।',
  'ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ สวัสดีครับ',
  'Ünïcödé àçcéntš: naïve café, Zürich, São Paulo, façade, coöperate, Đorđe, Łódź, İstanbul.',
  'Combining marks: e\u0301 a\u0308 o\u0302\u0323 Z\u0351\u0360\u0363a\u0367\u036al\u0310\u0346g\u0304o\u0305 n\u0303 ḁ\u0301.',
  'Fullwidth: ＨＥＬＬＯ　ｗｏｒｌｄ！ １２３４５ ＡＢＣ ｆｕｌｌｗｉｄｔｈ（ｆｏｒｍｓ）',
  'Zero\u200bwidth\u200cjoin\u200dand\ufeffBOM\u2060word joiner and soft\u00adhyphen',
  'Emoji: 👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏽 thumbs, 🇫🇷🇯🇵 flags, 🧑🏿‍💻 coder, ❤️‍🔥, 1️⃣ keycap, 😀😃😄😁.',
  'Math & symbols: ∀x∈ℝ, x²≥0; ∑ᵢ aᵢ = π·r²; α→β ⇒ γ; ±√2 ≈ 1.41421356; 50% off — €9.99, £5, ¥100, ₹20.',
  'Code-ish: foo_bar(baz, qux) => { return x ** 2 + y?.z ?? 0; } // comment #hash @user $var 0xFF 1e-9',
  'URL https://example.com/path?query=1&x=y#frag and email someone@example.org, path C:\\Users\\me\\file.txt',
  'Numbers: 3.14159 2,718,281 -42 +7 1e10 0.000001 123456789012345678901234567890 10:45 2026-11-29 (555) 123-4567',
  'Special tokens in text: <s> hello </s> [CLS] world [SEP] <|begin_of_text|> <|endoftext|> <|im_start|>user<|im_end|> <bos><eos> <start_of_turn>model <unk> [MASK] <pad>',
  'Tabs\tand\t\tmultiple\t\t\tTABS and     runs of      spaces   here\t \t mixed',
  'Line with trailing spaces and CRLF-like \r inside, vertical\u000btab, form\u000cfeed, NEL\u0085, nbsp\u00a0x, ideographic\u3000space.',
  'ALL CAPS SENTENCE WITH NUMBERS 123 AND PUNCTUATION!!! ??? ... --- *** ___',
  'Mixed: Hello世界مرحباשלוםПривет123ABCabc😀 together without spaces',
];

const RANGES: [number, number][] = [
  [0x4e00, 0x9fff], // CJK
  [0x3041, 0x3096], // Hiragana
  [0x30a1, 0x30fa], // Katakana
  [0xac00, 0xd7a3], // Hangul
  [0x0621, 0x064a], // Arabic
  [0x05d0, 0x05ea], // Hebrew
  [0x0410, 0x044f], // Cyrillic
  [0x0391, 0x03c9], // Greek
  [0x0905, 0x0939], // Devanagari
  [0xff01, 0xff5e], // fullwidth
  [0x1f600, 0x1f64f], // emoji
  [0x0300, 0x036f], // combining marks (stray)
];
const ZW = ['\u200b', '\u200c', '\u200d', '\ufeff', '\u2060', '\u00ad'];
const SPECIAL = ['<s>', '</s>', '<|endoftext|>', '<|im_start|>', '<|im_end|>', '[CLS]', '[SEP]', '<bos>', '<eos>', '<|eot_id|>', '<unk>', '[MASK]', '<start_of_turn>'];

function randomLine(r: () => number): string {
  const parts: string[] = [];
  const n = 3 + Math.floor(r() * 14);
  for (let i = 0; i < n; i++) {
    const k = r();
    if (k < 0.3) {
      const [a, b] = RANGES[Math.floor(r() * RANGES.length)];
      const len = 1 + Math.floor(r() * 8);
      let w = '';
      for (let j = 0; j < len; j++) w += String.fromCodePoint(a + Math.floor(r() * (b - a + 1)));
      parts.push(w);
    } else if (k < 0.5) {
      const s = SENTENCES[Math.floor(r() * SENTENCES.length)];
      const a = Math.floor(r() * s.length);
      parts.push(s.slice(a, a + 5 + Math.floor(r() * 40)).replace(/[\ud800-\udbff]$/, ''));
    } else if (k < 0.62) {
      parts.push(String(Math.floor(r() * 10 ** (1 + Math.floor(r() * 12)))) + (r() < 0.3 ? '.' + Math.floor(r() * 1000) : ''));
    } else if (k < 0.7) parts.push(' '.repeat(1 + Math.floor(r() * 6)) + (r() < 0.5 ? '\t'.repeat(Math.floor(r() * 3)) : ''));
    else if (k < 0.76) parts.push(ZW[Math.floor(r() * ZW.length)]);
    else if (k < 0.82) parts.push(SPECIAL[Math.floor(r() * SPECIAL.length)]);
    else if (k < 0.88) parts.push(['👨‍👩‍👧', '🏳️‍🌈', '👍🏻', '🇺🇸', '🧑‍🚀', '❤️', '✨', '🤖'][Math.floor(r() * 8)]);
    else parts.push(['the', 'of', 'Kiln', 'tokenizer', "it's", 'don’t', 'GPU', 'WebGPU', 'naïve', 'x=1;', '()', '...'][Math.floor(r() * 12)]);
  }
  let sep = r() < 0.7 ? ' ' : '';
  return parts.join(sep);
}

let cached: string | null = null;

/** The corpus as one string of lines. */
export function parityCorpus(root = new URL('../..', import.meta.url).pathname): string {
  if (cached) return cached;
  const chunks: string[] = [];
  for (const f of ['GPL-3', 'Apache-2.0', 'GFDL-1.3', 'LGPL-2.1', 'MPL-2.0', 'Artistic', 'GPL-2']) {
    try {
      chunks.push(readFileSync(join('/usr/share/common-licenses', f), 'utf8'));
    } catch {
      /* not every system ships them; the generated part still covers prose */
    }
  }
  const lib = join(root, 'node_modules/typescript/lib');
  const libs = readdirSync(lib).filter((f) => /^lib\.es20(15|16|17|18|19|20)\..*\.d\.ts$/.test(f) || f === 'lib.es5.d.ts').sort();
  for (const f of libs) chunks.push(readFileSync(join(lib, f), 'utf8'));
  const r = rng(20261129);
  const gen: string[] = [];
  for (const s of SENTENCES) gen.push(s);
  let size = chunks.reduce((a, c) => a + c.length, 0);
  while (size < 2_300_000) {
    const line = randomLine(r);
    gen.push(line);
    size += line.length + 1;
  }
  chunks.push(gen.join('\n'));
  cached = chunks.join('\n');
  return cached;
}
