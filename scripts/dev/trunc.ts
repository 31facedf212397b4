import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { tokenizerFiles } from '../../tests/tokenizers/fixtures.js';
const tk = createRequire(import.meta.url)('@anush008/tokenizers');
const f = tokenizerFiles('bert');
const k = Tokenizer.fromString(readFileSync(f.json, 'utf8'));
const texts = ['Hello world, this is a longer sentence that will be truncated somewhere.', 'Short one.', 'Another text with quite a few words in it for the windows.'];
for (const [maxLength, stride, direction] of [[8, 2, 'right']] as const) {
  const nat = tk.Tokenizer.fromFile(f.json);
  nat.setTruncation(maxLength, { stride, direction });
  nat.setPadding({ padId: 0, padToken: '[PAD]', direction: 'right' });
  const rs = await nat.encodeBatch(texts, { addSpecialTokens: true });
  const os = k.encodeBatch(texts, { truncation: { maxLength, stride, direction }, padding: { padId: 0, padToken: '[PAD]' } });
  for (let i = 0; i < 3; i++) { console.log('nat', JSON.stringify(rs[i].getIds()), JSON.stringify(rs[i].getOverflowing().map((x: any) => x.getIds()))); console.log('kil', JSON.stringify(os[i].ids), JSON.stringify(os[i].overflowing.map((x) => x.ids))); }
}
