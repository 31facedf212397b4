// The tokenizer module: a wasm instance of its own (one per loaded tokenizer), separate from the
// tensor kernels, so tokenizing needs no backend. The host parses tokenizer.json, normalizes and
// pre-tokenizes; this module holds the vocab and merge tables and runs the model loops.
import { alloc } from './mem';

export { vocabReserve, vocabAdd, vocabAddAll, mergeReserve, mergeAdd, mergeAddAll, prefixReserve } from './vocab';
export { modelConfig, modelAffixes, modelFinish, modelScores, encodeWords } from './model';

/** Bytes the host may use for its inputs and outputs; grows with the largest request. */
export function allocBytes(n: usize): usize { return alloc(n); }
export { trainInit, trainRun, trainTokenPtr, trainTokenLength, trainTokenCount } from './train';
export { packPlan, packPieces, packFill } from './pack';

import { splitText } from './split';
import { encodeWords } from './model';
/**
 * Splits text with a byte-level split pattern (split.ts) and encodes the pieces: the whole path
 * from UTF-8 to ids in wasm. `bounds` must hold 8 bytes per byte of text.
 */
export function encodeText(text: usize, n: i32, kind: i32, bounds: usize, outIds: usize, outS: usize, outE: usize, outWord: usize): i32 {
  return encodeWords(text, bounds, splitText(text, n, kind, bounds), outIds, outS, outE, outWord);
}
export { splitText };
