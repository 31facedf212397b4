// BPE training: the merges equal the Rust reference trainer's, and the tokenizer.json written
// loads in both reference libraries and encodes exactly as kiln does.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Tokenizer as JsRef } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';
import { KilnError } from '../../src/core/errors.js';
import { Tokenizer, trainBpe } from '../../src/tokenizers/index.js';
import { parityCorpus } from './corpus.js';

const tk = createRequire(import.meta.url)('@anush008/tokenizers');
const GPL = '/usr/share/common-licenses/GPL-3';

describe('trainBpe', () => {
  it('makes the same merges, in the same order, as the Rust BpeTrainer', () => {
    const t = new tk.Tokenizer(tk.BPE.empty());
    t.setPreTokenizer(tk.byteLevelPreTokenizer(false, true));
    t.train([GPL]); // the binding's default trainer: up to 30,000 tokens, every pair seen once
    const path = `${process.cwd()}/.cache/tokenizers/rust-trained.json`;
    t.save(path);
    const rust = JSON.parse(readFileSync(path, 'utf8')).model.merges.map((m: string | string[]) => (Array.isArray(m) ? m.join(' ') : m));
    const ours = trainBpe(readFileSync(GPL, 'utf8').split('\n'), { vocabSize: 30_000, minFrequency: 0 }).model.merges.map((m: string[]) => m.join(' '));
    expect(ours.length).toBeGreaterThan(2000);
    expect(ours).toEqual(rust);
  });

  it('writes a tokenizer.json the references load and encode identically', async () => {
    const corpus = parityCorpus().split('\n');
    const json = trainBpe(corpus.slice(0, 20_000), { vocabSize: 3000, minFrequency: 3, specialTokens: ['<|endoftext|>', '<pad>'], pattern: 'llama3' });
    expect(Object.keys(json.model.vocab).length).toBe(3000);
    expect(json.model.merges.length).toBe(3000 - 258);
    const text = JSON.stringify(json);
    const kiln = Tokenizer.fromString(text);
    const native = tk.Tokenizer.fromString(text);
    const js = new JsRef(JSON.parse(text), {});
    const sample = corpus.filter((_, i) => i % 11 === 0);
    const ref = (await native.encodeBatch(sample, { addSpecialTokens: false })).map((e: { getIds(): number[] }) => e.getIds());
    let bad = 0;
    let badJs = 0;
    for (let i = 0; i < sample.length; i++) {
      const ids = kiln.encodeIds(sample[i], { addSpecialTokens: false });
      if (JSON.stringify(ids) !== JSON.stringify(ref[i])) bad++;
      if (JSON.stringify(ids) !== JSON.stringify(js.encode(sample[i], { add_special_tokens: false }).ids)) badJs++;
    }
    expect(bad).toBe(0);
    // the JS library treats U+FEFF as a space and mangles lone surrogates; everything else equal
    expect(badJs).toBeLessThan(sample.length * 0.02);
    expect(kiln.encodeIds('a<|endoftext|>b', { addSpecialTokens: false })).toContain(0);
    expect(kiln.decode(kiln.encodeIds('héllo wörld 😀', { addSpecialTokens: false }))).toBe('héllo wörld 😀');
  });

  it('rejects a vocab smaller than its alphabet', () => {
    expect(() => trainBpe(['x'], { vocabSize: 100 })).toThrow(KilnError);
  });
});
