// Packing against a plain reference written here (a direct first-fit / next-fit over a list of
// rows), and the dataset rows: plain text, JSONL text, chat rows with assistant-only loss.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KilnError } from '../../src/core/errors.js';
import { packSequences, type PackStrategy } from '../../src/data/packing.js';
import { parseRows, tokenizeRows, trainValidationSplit } from '../../src/data/dataset.js';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { tokenizerFiles } from '../tokenizers/fixtures.js';

function lcg(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
}

/** Reference placement: pieces (doc, start, len) -> (row, offset), the obvious way. */
function referencePlan(lens: number[], seqLen: number, strategy: PackStrategy): { doc: number; start: number; len: number; row: number; off: number }[] {
  const out: { doc: number; start: number; len: number; row: number; off: number }[] = [];
  if (strategy === 'concat') {
    let pos = 0;
    lens.forEach((len, doc) => {
      let s = 0;
      while (s < len) {
        const row = Math.floor(pos / seqLen);
        const off = pos % seqLen;
        const take = Math.min(len - s, seqLen - off);
        out.push({ doc, start: s, len: take, row, off });
        s += take;
        pos += take;
      }
    });
    return out;
  }
  const pieces: { doc: number; start: number; len: number }[] = [];
  lens.forEach((len, doc) => {
    for (let s = 0; s < len; s += seqLen) pieces.push({ doc, start: s, len: Math.min(seqLen, len - s) });
  });
  const used: number[] = [];
  const order = strategy === 'ffd' ? pieces.map((p, i) => [p, i] as const).sort((a, b) => b[0].len - a[0].len || a[1] - b[1]).map((x) => x[0]) : pieces;
  for (const p of order) {
    let row = strategy === 'ffd' ? used.findIndex((u) => u + p.len <= seqLen) : used.length - 1;
    if (row < 0 || used[row] + p.len > seqLen) {
      row = used.length;
      used.push(0);
    }
    out.push({ ...p, row, off: used[row] });
    used[row] += p.len;
  }
  return out;
}

describe('packSequences', () => {
  it.each(['ffd', 'greedy', 'concat'] as PackStrategy[])('%s: rows equal the reference placement, with labels, positions and document ids', (strategy) => {
    const r = lcg(7);
    const seqLen = 64;
    const docs = Array.from({ length: 300 }, (_, d) => Array.from({ length: 1 + Math.floor(r() ** 2 * 150) }, (_, k) => 1000 * d + k + 1));
    const masks = docs.map((d, i) => (i % 3 === 0 ? d.map((_, k) => (k % 2 ? 1 : 0)) : null));
    const packed = packSequences(docs, { seqLen, strategy, padId: -7 }, masks);
    const plan = referencePlan(docs.map((d) => d.length), seqLen, strategy);
    const rows = Math.max(...plan.map((p) => p.row)) + 1;
    expect(packed.rows).toBe(rows);
    const ids = new Int32Array(rows * seqLen).fill(-7);
    const labels = new Int32Array(rows * seqLen).fill(-100);
    const pos = new Int32Array(rows * seqLen);
    for (const p of plan) {
      for (let k = 0; k < p.len; k++) {
        const at = p.row * seqLen + p.off + k;
        const t = docs[p.doc][p.start + k];
        ids[at] = t;
        const m = masks[p.doc];
        labels[at] = k > 0 && (!m || m[p.start + k]) ? t : -100;
        pos[at] = k;
      }
    }
    expect(Array.from(packed.inputIds)).toEqual(Array.from(ids));
    expect(Array.from(packed.labels)).toEqual(Array.from(labels));
    expect(Array.from(packed.positionIds)).toEqual(Array.from(pos));
    // document ids: one per piece within a row, -1 on padding, changing exactly at piece starts
    for (const p of plan) {
      const at = p.row * seqLen + p.off;
      const id = packed.documentIds[at];
      expect(id).toBeGreaterThanOrEqual(0);
      for (let k = 0; k < p.len; k++) expect(packed.documentIds[at + k]).toBe(id);
    }
    const pads = Array.from(packed.inputIds).filter((t) => t === -7).length;
    expect(Array.from(packed.documentIds).filter((t) => t === -1).length).toBe(pads);
    expect(packed.efficiency).toBeCloseTo(docs.reduce((a, d) => a + d.length, 0) / (rows * seqLen), 12);
  });

  it('FFD packs at least as tightly as greedy, and bad arguments are typed errors', () => {
    const r = lcg(3);
    const docs = Array.from({ length: 2000 }, () => new Array(1 + Math.floor(r() * 500)).fill(5));
    const ffd = packSequences(docs, { seqLen: 512, strategy: 'ffd' });
    const greedy = packSequences(docs, { seqLen: 512, strategy: 'greedy' });
    expect(ffd.efficiency).toBeGreaterThan(greedy.efficiency);
    expect(ffd.efficiency).toBeGreaterThan(0.97);
    expect(() => packSequences(docs, { seqLen: 1 })).toThrow(KilnError);
    expect(() => packSequences(docs, { seqLen: 8, strategy: 'best' as PackStrategy })).toThrow(KilnError);
  });

  it('a row length the packer cannot hold is a typed error naming its memory, not a wasm trap', () => {
    const docs = [[1, 2, 3], [4, 5]];
    // FFD's counts by length alone would need 4 bytes per row position: 3.73 GiB at 10^9
    expect(() => packSequences(docs, { seqLen: 1_000_000_000 })).toThrow(/packSequences: packing 2 documents \(5 tokens\) into rows of 1000000000 needs 3\.73 GiB of packer memory, over its 2\.00 GiB limit/);
    // the plan fits, the row (2 x 10^8 cells x 4 arrays x 4 bytes = 2.98 GiB) does not
    expect(() => packSequences(docs, { seqLen: 200_000_000, strategy: 'greedy' })).toThrow(/packSequences: 1 row of 200000000 tokens needs 2\.98 GiB/);
    for (const seqLen of [2 ** 31, 1e15]) expect(() => packSequences(docs, { seqLen, strategy: 'concat' })).toThrow(KilnError);
    // a large row that fits still packs: one row, the two documents back to back, then padding
    const r = packSequences(docs, { seqLen: 1_000_000, strategy: 'concat', padId: 9 });
    expect(r.rows).toBe(1);
    expect(Array.from(r.inputIds.subarray(0, 7))).toEqual([1, 2, 3, 4, 5, 9, 9]);
  });
});

describe('datasets', () => {
  const f = tokenizerFiles('llama3');
  const tok = Tokenizer.fromString(readFileSync(f.json, 'utf8'), readFileSync(f.config!, 'utf8'));

  it('plain text splits on blank lines; JSONL takes text and chat rows, and names the bad line', () => {
    expect(parseRows('one\ntwo\n\n\nthree\n \nfour', 'a.txt')).toEqual([{ text: 'one\ntwo' }, { text: 'three' }, { text: 'four' }]);
    const rows = parseRows('{"text": "hi"}\n{"messages": [{"role": "user", "content": "q"}]}\n', 'd.jsonl');
    expect(rows.length).toBe(2);
    expect(() => parseRows('{"text": "hi"}\n{"nope": 1}\n', 'd.jsonl')).toThrow(/d\.jsonl:2/);
    expect(() => parseRows('{"text": "hi"}\n{bad\n', 'd.jsonl')).toThrow(/d\.jsonl:2: not valid JSON/);
  });

  it('chat rows take the loss on assistant turns only (their text and end-of-turn token)', () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Capital of France?' },
      { role: 'assistant', content: 'Paris.' },
      { role: 'user', content: 'And of Spain?' },
      { role: 'assistant', content: 'Madrid.' },
    ];
    const [doc] = tokenizeRows(tok, [{ messages }]);
    expect(tok.decode(doc.ids)).toBe(tok.applyChatTemplate(messages));
    const kept = doc.ids.filter((_, i) => doc.lossMask![i]);
    expect(tok.decode(kept)).toBe('Paris.<|eot_id|>Madrid.<|eot_id|>');
  });

  it("text rows get the template's BOS and the config's EOS; the split is seeded", () => {
    const f2 = tokenizerFiles('llama2');
    const llama2 = Tokenizer.fromString(readFileSync(f2.json, 'utf8'), readFileSync(f2.config!, 'utf8'));
    const [doc] = tokenizeRows(llama2, [{ text: 'hello world' }]);
    expect(doc.ids[0]).toBe(1);
    expect(doc.ids[doc.ids.length - 1]).toBe(2);
    expect(llama2.decode(doc.ids.slice(1, -1))).toBe('hello world');
    const items = Array.from({ length: 100 }, (_, i) => i);
    const a = trainValidationSplit(items, 0.1, 42);
    expect(a.validation.length).toBe(10);
    expect(a).toEqual(trainValidationSplit(items, 0.1, 42));
    expect(trainValidationSplit(items, 0.1, 43).validation).not.toEqual(a.validation);
    expect([...a.train, ...a.validation].sort((x, y) => x - y)).toEqual(items);
  });
});
