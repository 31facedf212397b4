// Tokenizer and packing benchmarks (bundled and run by scripts/bench.mjs).
//  tokenizer: encode throughput on the parity corpus, line by line, for each tokenizer.json,
//    kiln side by side with @huggingface/tokenizers (JS) and @anush008/tokenizers (the Rust
//    library; encodeBatch over all lines, TOKENIZERS_PARALLELISM=false so it is one thread as
//    kiln and the JS library are). Rounds alternate; the median of the per-round ratios is
//    reported, with the best round. Pathological inputs are timed too (kiln vs Rust).
//  packing: efficiency (non-pad share) at seq-len 512 and 2048 for FFD, greedy and concat, on a
//    log-normal document-length distribution (median ~300 tokens, heavy tail), and its speed.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Tokenizer as JsRef } from '@huggingface/tokenizers';
import { packSequences, type PackStrategy } from '../../src/data/packing.js';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { parityCorpus } from '../../tests/tokenizers/corpus.js';
import { tokenizerFiles, TOKENIZERS, type TokenizerName } from '../../tests/tokenizers/fixtures.js';

process.env.TOKENIZERS_PARALLELISM = 'false';
const Native = createRequire(import.meta.url)('@anush008/tokenizers').Tokenizer;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function* tokenizerBench(names: string[] = [...TOKENIZERS], rounds = 3): AsyncGenerator<Record<string, unknown>> {
  const lines = parityCorpus().split('\n');
  const bytes = lines.reduce((a, l) => a + Buffer.byteLength(l, 'utf8'), 0);
  for (const name of names as TokenizerName[]) {
    const f = tokenizerFiles(name);
    const json = readFileSync(f.json, 'utf8');
    const config = f.config ? readFileSync(f.config, 'utf8') : null;
    const kiln = Tokenizer.fromString(json, config);
    const js = new JsRef(JSON.parse(json), config ? JSON.parse(config) : {});
    const nat = Native.fromFile(f.json);
    const time = async (fn: () => unknown): Promise<number> => {
      const t0 = performance.now();
      await fn();
      return (performance.now() - t0) / 1000;
    };
    const mbs = (t: number): number => +(bytes / 1e6 / t).toFixed(2);
    const runKiln = (): void => {
      for (const l of lines) kiln.encodeIds(l, { addSpecialTokens: false });
    };
    const runJs = (): void => {
      for (const l of lines) js.encode(l, { add_special_tokens: false });
    };
    const runNat = async (): Promise<void> => {
      await nat.encodeBatch(lines, { addSpecialTokens: false });
    };
    runKiln(); // warm: JIT, the word cache as a long-running app would have it
    const tk: number[] = [];
    const tj: number[] = [];
    const tn: number[] = [];
    for (let r = 0; r < rounds; r++) {
      tk.push(await time(runKiln));
      tj.push(await time(runJs));
      tn.push(await time(runNat));
    }
    const row = { bench: 'tokenizer', tokenizer: name, corpusMB: +(bytes / 1e6).toFixed(2), lines: lines.length, unit: 'MB/s', kiln: mbs(median(tk)) };
    if (kiln.wasmSplitPieces('x') !== null) {
      // the split in wasm against the same pipeline with the split as a JavaScript regex
      const regex = Tokenizer.fromString(json, config, { wasmSplit: false });
      const runRegex = (): void => {
        for (const l of lines) regex.encodeIds(l, { addSpecialTokens: false });
      };
      runRegex();
      const tw: number[] = [];
      const tr: number[] = [];
      for (let r = 0; r < rounds; r++) {
        tw.push(await time(runKiln));
        tr.push(await time(runRegex));
      }
      yield { bench: 'tokenizer-split', tokenizer: name, unit: 'MB/s', kiln: mbs(median(tw)), peer: 'kiln with the split as a JS regex', peerValue: mbs(median(tr)), ratio: +median(tw.map((t, i) => tr[i] / t)).toFixed(2) };
    }
    yield { ...row, peer: '@huggingface/tokenizers', peerValue: mbs(median(tj)), ratio: +median(tk.map((t, i) => tj[i] / t)).toFixed(2), bestRatio: +Math.max(...tk.map((t, i) => tj[i] / t)).toFixed(2) };
    yield { ...row, peer: '@anush008/tokenizers (Rust, 1 thread)', peerValue: mbs(median(tn)), ratio: +median(tk.map((t, i) => tn[i] / t)).toFixed(2), bestRatio: +Math.max(...tk.map((t, i) => tn[i] / t)).toFixed(2) };
  }
  // pathological single inputs: time to encode, kiln vs Rust
  const cases: [string, string][] = [
    ['1 MB of "a"', 'a'.repeat(1 << 20)],
    ['100k spaces', ' '.repeat(100_000)],
    ['50k emoji', '😀'.repeat(50_000)],
  ];
  for (const name of ['gemma3', 'llama3', 'bert'] as TokenizerName[]) {
    const f = tokenizerFiles(name);
    const kiln = Tokenizer.fromString(readFileSync(f.json, 'utf8'));
    const nat = Native.fromFile(f.json);
    for (const [label, s] of cases) {
      const t0 = performance.now();
      const n = kiln.encodeIds(s, { addSpecialTokens: false }).length;
      const tk = performance.now() - t0;
      const t1 = performance.now();
      await nat.encode(s, null, { addSpecialTokens: false });
      const tn = performance.now() - t1;
      yield { bench: 'tokenizer-pathological', tokenizer: name, input: label, tokens: n, unit: 'ms', kiln: +tk.toFixed(1), peer: '@anush008/tokenizers (Rust)', peerValue: +tn.toFixed(1), ratio: +(tn / tk).toFixed(2) };
    }
  }
}

export function* packingBench(): Generator<Record<string, unknown>> {
  let s = 12345;
  const rand = (): number => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  const gauss = (): number => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  // log-normal lengths: median ~300 tokens, sigma 1 (web-text-like: many short, a long tail)
  const lens = Array.from({ length: 20_000 }, () => Math.max(1, Math.round(Math.exp(Math.log(300) + gauss()))));
  const docs = lens.map((n) => new Int32Array(n).fill(7));
  const tokens = lens.reduce((a, b) => a + b, 0);
  for (const seqLen of [512, 2048]) {
    for (const strategy of ['ffd', 'greedy', 'concat'] as PackStrategy[]) {
      const t0 = performance.now();
      const p = packSequences(docs, { seqLen, strategy });
      const ms = performance.now() - t0;
      yield { bench: 'packing', strategy, seqLen, documents: docs.length, tokens, rows: p.rows, unit: 'efficiency', kiln: +p.efficiency.toFixed(4), ms: +ms.toFixed(1), target: 0.97 };
    }
  }
}
