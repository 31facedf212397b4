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

/**
 * The packer's memory limit: every byte it addresses stays below 2 GiB, so its 32-bit offsets
 * and cell indices cannot wrap (a 10^9-token row would otherwise trap in wasm).
 */
export const MAX_PACK_BYTES = 2 ** 31;

function checkMemory(bytes: number, what: string): void {
  if (bytes <= MAX_PACK_BYTES) return;
  const gib = (b: number): string => `${(b / 2 ** 30).toFixed(b < 2 ** 34 ? 2 : 0)} GiB`;
  throw new KilnError('argument', 'packSequences', `${what} needs ${gib(bytes)} of packer memory, over its ${gib(MAX_PACK_BYTES)} limit; use a smaller seqLen or fewer documents per call`);
}

/** Runs a packer call; a trap (memory the host would not grow) becomes a typed error. */
function guard<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) throw new KilnError('argument', 'packSequences', `the packer ran out of memory (${e.message}); use a smaller seqLen or fewer documents per call`);
    throw e;
  }
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
  const n = docs.length;
  const total = docs.reduce((a, d) => a + d.length, 0);
  // what the plan allocates at most (assembly/tokenizer/pack.ts): the inputs, five piece arrays
  // (capacity up to twice the pieces), FFD's counts by length, order and segment tree
  const pieces = Math.floor(total / seqLen) + n + 2;
  checkMemory(8 * n + 5 * total + 40 * pieces + 4 * (seqLen + 2) + 20 * pieces + 1024, `packing ${n} documents (${total} tokens) into rows of ${seqLen}`);
  const x = new WebAssembly.Instance(tokenizerModule(), {}).exports as unknown as Exports;
  const [lensP, startP, tokP, maskP] = guard(() => [x.allocBytes(4 * n + 4), x.allocBytes(4 * n + 4), x.allocBytes(4 * total + 4), lossMasks ? x.allocBytes(total + 4) : 0]);
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
  const rows = guard(() => x.packPlan(lensP, n, seqLen, STRATEGY[strategy]));
  const cells = rows * seqLen;
  checkMemory(x.memory.buffer.byteLength + 16 * cells + 4 * rows + 64, `${rows} row${rows === 1 ? '' : 's'} of ${seqLen} tokens`);
  const outs = guard(() => [0, 1, 2, 3].map(() => x.allocBytes(4 * cells + 4)));
  guard(() => x.packFill(tokP, startP, maskP, seqLen, opts.padId ?? 0, outs[0], outs[1], outs[2], outs[3]));
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
