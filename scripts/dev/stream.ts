import { readFileSync } from 'node:fs';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { tokenizerFiles } from '../../tests/tokenizers/fixtures.js';
const k = Tokenizer.fromString(readFileSync(tokenizerFiles('llama3').json, 'utf8'));
const ids = k.encodeIds('Hi 😀 東京 — naïve 👨‍👩‍👧 done. ĀÆ 🇫🇷 ok', { addSpecialTokens: false });
const st = k.decodeStream();
for (const id of ids) console.log(id, JSON.stringify(k.idToToken(id)), JSON.stringify(st.step(id)));
