import { readFileSync } from 'node:fs';
import { Tokenizer as Ref } from '@huggingface/tokenizers';
import { Tokenizer as Native } from '@anush008/tokenizers';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { parityCorpus } from '../../tests/tokenizers/corpus.js';
import { tokenizerFiles, TOKENIZERS } from '../../tests/tokenizers/fixtures.js';

const names = process.argv[2] ? process.argv[2].split(',') : TOKENIZERS;
const maxLines = Number(process.argv[3] ?? 1e9);
const lines = parityCorpus(process.cwd() + '/').split('\n').slice(0, maxLines);
console.log('lines', lines.length, 'chars', lines.reduce((a, l) => a + l.length, 0));
for (const name of names as any) {
  const f = tokenizerFiles(name);
  const jt = readFileSync(f.json, 'utf8');
  const ct = f.config ? readFileSync(f.config, 'utf8') : null;
  let t0 = performance.now();
  const kiln = Tokenizer.fromString(jt, ct);
  const tLoad = performance.now() - t0;
  const ref = new Ref(JSON.parse(jt), ct ? JSON.parse(ct) : {});
  const nat = Native.fromFile(f.json);
  let bad = 0, badNat = 0, refVsNat = 0;
  const ex: string[] = [];
  let tk = 0, tr = 0;
  const natIds: number[][] = [];
  for (const l of lines) natIds.push((await nat.encode(l, null, { addSpecialTokens: false })).getIds());
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    t0 = performance.now(); const a = kiln.encodeIds(l, { addSpecialTokens: false }); tk += performance.now() - t0;
    t0 = performance.now(); const b = ref.encode(l, { add_special_tokens: false }).ids; tr += performance.now() - t0;
    const c = natIds[i];
    const eq = (x: number[], y: number[]) => x.length === y.length && x.every((v, k) => v === y[k]);
    if (!eq(a, b)) bad++; if (!eq(a, c)) { if (ex.length < 4) ex.push(JSON.stringify({ l: l.slice(0, 200), kiln: a.slice(0, 40), ref: b.slice(0, 40), nat: c.slice(0, 40) })); }
    if (!eq(a, c)) badNat++;
    if (!eq(b, c)) refVsNat++;
  }
  console.log(name, { load: tLoad.toFixed(0), bad, badNat, refVsNat, kilnMs: tk.toFixed(0), refMs: tr.toFixed(0) });
  for (const e of ex) console.log('  ', e);
}
