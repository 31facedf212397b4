import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { tokenizerFiles } from '../../tests/tokenizers/fixtures.js';
const Native = createRequire(import.meta.url)('@anush008/tokenizers').Tokenizer;
const name = process.argv[2] as any;
const f = tokenizerFiles(name);
const k = Tokenizer.fromString(readFileSync(f.json, 'utf8'));
const n = Native.fromFile(f.json);
for (const text of process.argv.slice(3)) {
  const a = k.encode(text); const b = await n.encode(text, null, { addSpecialTokens: true });
  console.log(JSON.stringify(a.tokens), JSON.stringify(a.offsets)); console.log(JSON.stringify(b.getTokens()), JSON.stringify(b.getOffsets()));
}
