import { readFileSync } from 'node:fs';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { tokenizerFiles } from '../../tests/tokenizers/fixtures.js';
const f = tokenizerFiles('llama3');
const tok = Tokenizer.fromString(readFileSync(f.json, 'utf8'), readFileSync(f.config!, 'utf8'));
const messages = [ { role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Capital of France?' }, { role: 'assistant', content: 'Paris.' }, { role: 'user', content: 'And of Spain?' }, { role: 'assistant', content: 'Madrid.' } ];
console.log(JSON.stringify(tok.applyChatTemplate(messages.slice(0, 2), { addGenerationPrompt: true })));
console.log(JSON.stringify(tok.applyChatTemplate(messages.slice(0, 3))));
console.log(JSON.stringify(tok.applyChatTemplate(messages)));
