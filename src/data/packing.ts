// Packs tokenized documents into fixed-length training rows (the placement and the row writing
// run in the AssemblyScript packer): input_ids, labels (-100 where no loss is taken), position_ids
// restarting per document, and document ids for the attention's document mask.
import { KilnError } from '../core/errors.js';
import { tokenizerModule } from '../tokenizers/model.js';

export type PackStrategy = 'ffd' | 'greedy' | 'concat';
const STRATEGY: Record<PackStrategy, number> = { ffd: 0, greedy: 1, concat: 2 };

export interface PackOptions {
  seqLen: number;
  /**
   * 'ffd': first-fit-decreasing over the whole dataset (fewest rows); 'greedy': streaming, a new
   * row when the next document does not fit; 'concat': streaming, documents cut at row ends.
   */
  strategy?: PackStrategy;
  padId?: number;
}

export interface PackedRows {
  rows: number;
  seqLen: number;
  /** (rows, seqLen) each, row-major. */
  inputIds: Int32Array;
  labels: Int32Array;
  positionIds: Int32Array;
  documentIds: Int32Array;
  /** Non-padding tokens over all cells. */
  efficiency: number;
  tokens: number;
}

interface Exports {
  memory: WebAssembly.Memory;
  allocBytes(n: number): number;
  packPlan(lens: number, n: number, seqLen: number, strategy: number): number;
  packFill(tokens: number, docStart: number, lossMask: number, seqLen: number, padId: number, ids: number, labels: number, pos: number, doc: number): void;
}

/**
 * Packs `docs` (token ids per document; `lossMasks` optionally marks, per token, 1 where the loss
 * is taken, e.g. assistant turns only).
 */
export function packSequences(docs: ArrayLike<number>[], opts: PackOptions, lossMasks?: (ArrayLike<number> | null)[]): PackedRows {
  const { seqLen } = opts;
  const strategy = opts.strategy ?? 'ffd';
  if (!Number.isInteger(seqLen) || seqLen < 2) throw new KilnError('argument', 'packSequences', `seqLen must be an integer >= 2, got ${seqLen}`);
  if (!(strategy in STRATEGY)) throw new KilnError('argument', 'packSequences', `strategy must be ffd, greedy or concat, got ${JSON.stringify(strategy)}`);
  if (lossMasks && lossMasks.length !== docs.length) throw new KilnError('argument', 'packSequences', `${docs.length} documents but ${lossMasks.length} loss masks`);
  const x = new WebAssembly.Instance(tokenizerModule(), {}).exports as unknown as Exports;
  const n = docs.length;
  const total = docs.reduce((a, d) => a + d.length, 0);
  const lensP = x.allocBytes(4 * n + 4);
  const startP = x.allocBytes(4 * n + 4);
  const tokP = x.allocBytes(4 * total + 4);
  const maskP = lossMasks ? x.allocBytes(total + 4) : 0;
  {
    const buf = x.memory.buffer;
    const lens = new Int32Array(buf, lensP, n);
    const starts = new Int32Array(buf, startP, n);
    const toks = new Int32Array(buf, tokP, total);
    const mask = lossMasks ? new Uint8Array(buf, maskP, total) : null;
    let o = 0;
    docs.forEach((d, i) => {
      lens[i] = d.length;
      starts[i] = o;
      toks.set(d, o);
      const m = lossMasks?.[i];
      if (mask) {
        if (m && m.length !== d.length) throw new KilnError('argument', 'packSequences', `document ${i}: ${d.length} tokens but ${m.length} loss-mask entries`);
        for (let k = 0; k < d.length; k++) mask[o + k] = m ? (m[k] ? 1 : 0) : 1;
      }
      o += d.length;
    });
  }
  const rows = x.packPlan(lensP, n, seqLen, STRATEGY[strategy]);
  const cells = rows * seqLen;
  const outs = [0, 1, 2, 3].map(() => x.allocBytes(4 * cells + 4));
  x.packFill(tokP, startP, maskP, seqLen, opts.padId ?? 0, outs[0], outs[1], outs[2], outs[3]);
  const read = (p: number): Int32Array => new Int32Array(x.memory.buffer, p, cells).slice();
  return {
    rows,
    seqLen,
    inputIds: read(outs[0]),
    labels: read(outs[1]),
    positionIds: read(outs[2]),
    documentIds: read(outs[3]),
    efficiency: cells ? total / cells : 1,
    tokens: total,
  };
}
