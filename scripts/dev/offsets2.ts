import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { tokenizerFiles } from '../../tests/tokenizers/fixtures.js';
import { parityCorpus } from '../../tests/tokenizers/corpus.js';
const Native = createRequire(import.meta.url)('@anush008/tokenizers').Tokenizer;
const name = process.argv[2] as any;
const f = tokenizerFiles(name);
const k = Tokenizer.fromString(readFileSync(f.json, 'utf8'));
const n = Native.fromFile(f.json);
const lines = parityCorpus(process.cwd() + '/').split('\n').filter((_, i) => i % 37 === 0);
let shown = 0;
for (const text of lines) {
  const a = k.encode(text); const b = await n.encode(text, null, { addSpecialTokens: true });
  const cp = Array.from(text); const u2c: number[] = []; let c = 0;
  for (let i = 0; i < text.length; i++) { u2c[i] = c; const x = text.charCodeAt(i); if (x >= 0xd800 && x <= 0xdbff && i + 1 < text.length) { u2c[++i] = c; } c++; } u2c[text.length] = c;
  const ao = a.offsets.map(([s, e]) => [u2c[s], u2c[e]]); const bo = b.getOffsets();
  for (let i = 0; i < ao.length; i++) if (ao[i][0] !== bo[i][0] || ao[i][1] !== bo[i][1]) {
    console.log(JSON.stringify({ tok: a.tokens[i], kiln: ao[i], nat: bo[i], ctx: cp.slice(Math.max(0, bo[i][0] - 3), bo[i][1] + 3).join(''), kctx: cp.slice(ao[i][0], ao[i][1]).join('') }));
    if (++shown > 6) process.exit(0);
    break;
  }
}
