import { readFileSync } from 'node:fs';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { tokenizerFiles } from '../../tests/tokenizers/fixtures.js';
const k = Tokenizer.fromString(readFileSync(tokenizerFiles('gpt2').json, 'utf8'));
const s = 'Zero\u200bwidth\u200cjoin\u200dand\ufeffBOM\u2060word joiner and soft\u00adhyphen';
console.log(JSON.stringify(k.preTokenize(s)));
console.log(JSON.stringify(k.wasmSplitPieces(s)));
