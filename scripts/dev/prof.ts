import { readFileSync } from 'node:fs';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { tokenizerFiles } from '../../tests/tokenizers/fixtures.js';
import { parityCorpus } from '../../tests/tokenizers/corpus.js';
const name = (process.argv[2] ?? 'bert') as any;
const f = tokenizerFiles(name);
const k = Tokenizer.fromString(readFileSync(f.json, 'utf8'));
const lines = parityCorpus('/work/main/').split('\n');
for (let r = 0; r < 3; r++) { const t0 = performance.now(); for (const l of lines) k.encodeIds(l, { addSpecialTokens: false }); console.log((performance.now() - t0).toFixed(0)); }
