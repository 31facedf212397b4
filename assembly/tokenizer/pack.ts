// Sequence packing: documents (token runs) into rows of `seqLen` tokens. A document longer than a
// row is cut into row-sized pieces first. Strategies:
//   FFD    first-fit-decreasing over the whole dataset: pieces by length (counting sort), each
//          into the leftmost row with room (a max segment tree over the rows' free space)
//   NEXT   greedy streaming: pieces in order, a new row when the next one does not fit
//   CONCAT greedy streaming that cuts pieces at row ends (no padding but the last row)
import { alloc, pow2AtLeast } from './mem';

export const PACK_FFD = 0;
export const PACK_NEXT = 1;
export const PACK_CONCAT = 2;

let pCap: i32 = 0;
let pDoc: usize = 0;
let pStart: usize = 0;
let pLen: usize = 0;
let pRow: usize = 0;
let pOff: usize = 0;
let nPieces: i32 = 0;
let nRows: i32 = 0;

function reserve(n: i32): void {
  if (n <= pCap) return;
  const c = pow2AtLeast(max(n, pCap * 2), 1024);
  pDoc = alloc(<usize>c << 2);
  pStart = alloc(<usize>c << 2);
  pLen = alloc(<usize>c << 2);
  pRow = alloc(<usize>c << 2);
  pOff = alloc(<usize>c << 2);
  pCap = c;
}

@inline function get(a: usize, i: i32): i32 { return load<i32>(a + (<usize>i << 2)); }
@inline function set(a: usize, i: i32, v: i32): void { store<i32>(a + (<usize>i << 2), v); }

function addPiece(doc: i32, start: i32, len: i32): void {
  set(pDoc, nPieces, doc);
  set(pStart, nPieces, start);
  set(pLen, nPieces, len);
  nPieces++;
}

/** Places `n` documents of lengths `lens` into rows; returns the row count (pieces: packPieces). */
export function packPlan(lens: usize, n: i32, seqLen: i32, strategy: i32): i32 {
  let total: i64 = 0;
  for (let d = 0; d < n; d++) total += get(lens, d);
  reserve(<i32>(total / seqLen) + n + 2);
  nPieces = 0;
  nRows = 0;
  if (strategy == PACK_CONCAT) {
    let row = 0;
    let used = 0;
    for (let d = 0; d < n; d++) {
      let s = 0;
      const len = get(lens, d);
      while (s < len) {
        if (used == seqLen) { row++; used = 0; }
        const take = min(len - s, seqLen - used);
        set(pRow, nPieces, row);
        set(pOff, nPieces, used);
        addPiece(d, s, take);
        used += take;
        s += take;
      }
    }
    nRows = nPieces ? row + 1 : 0;
    return nRows;
  }
  for (let d = 0; d < n; d++) {
    const len = get(lens, d);
    for (let s = 0; s < len; s += seqLen) addPiece(d, s, min(seqLen, len - s));
  }
  if (strategy == PACK_NEXT) {
    let row = -1;
    let used = seqLen;
    for (let i = 0; i < nPieces; i++) {
      const len = get(pLen, i);
      if (used + len > seqLen) { row++; used = 0; }
      set(pRow, i, row);
      set(pOff, i, used);
      used += len;
    }
    nRows = row + 1;
    return nRows;
  }
  // FFD: order by length, longest first (ties in document order), with a counting sort
  const counts = alloc(<usize>(seqLen + 2) << 2);
  memory.fill(counts, 0, <usize>(seqLen + 2) << 2);
  for (let i = 0; i < nPieces; i++) { const l = get(pLen, i); set(counts, seqLen - l, get(counts, seqLen - l) + 1); }
  let acc = 0;
  for (let k = 0; k <= seqLen; k++) { const c = get(counts, k); set(counts, k, acc); acc += c; }
  const order = alloc(<usize>nPieces << 2);
  for (let i = 0; i < nPieces; i++) { const k = seqLen - get(pLen, i); set(order, get(counts, k), i); set(counts, k, get(counts, k) + 1); }
  // segment tree over rows: the largest free space in each subtree; leaves start empty (seqLen free)
  let leaves = 1;
  while (leaves < nPieces) leaves <<= 1;
  const tree = alloc(<usize>(2 * leaves) << 2);
  for (let i = 0; i < 2 * leaves; i++) set(tree, i, seqLen);
  for (let j = 0; j < nPieces; j++) {
    const i = get(order, j);
    const len = get(pLen, i);
    let node = 1;
    while (node < leaves) node = get(tree, 2 * node) >= len ? 2 * node : 2 * node + 1;
    const row = node - leaves;
    const free = get(tree, node);
    set(pRow, i, row);
    set(pOff, i, seqLen - free);
    set(tree, node, free - len);
    for (node >>= 1; node >= 1; node >>= 1) set(tree, node, max(get(tree, 2 * node), get(tree, 2 * node + 1)));
    if (row + 1 > nRows) nRows = row + 1;
  }
  return nRows;
}

export function packPieces(): i32 { return nPieces; }

/**
 * Writes the packed rows: input ids (pad elsewhere), labels (the ids, but -100 on each piece's
 * first token, on padding and where `lossMask` (u8 per token, 0 = no loss; 0 pointer = all) is 0),
 * position ids restarting at 0 in each piece, and document ids telling the pieces of a row apart
 * (-1 on padding). `tokens` holds the documents back to back from `docStart[d]`.
 */
export function packFill(tokens: usize, docStart: usize, lossMask: usize, seqLen: i32, padId: i32, outIds: usize, outLabels: usize, outPos: usize, outDoc: usize): void {
  const cells = nRows * seqLen;
  for (let i = 0; i < cells; i++) {
    set(outIds, i, padId);
    set(outLabels, i, -100);
    set(outPos, i, 0);
    set(outDoc, i, -1);
  }
  // document ids: 0, 1, 2... for the pieces of each row (any distinct ids would mask the same)
  const nextDoc = alloc(<usize>max(nRows, 1) << 2);
  memory.fill(nextDoc, 0, <usize>max(nRows, 1) << 2);
  for (let i = 0; i < nPieces; i++) {
    const row = get(pRow, i);
    const off = get(pOff, i);
    const len = get(pLen, i);
    const src = get(docStart, get(pDoc, i)) + get(pStart, i);
    const at = row * seqLen + off;
    const docId = get(nextDoc, row);
    set(nextDoc, row, docId + 1);
    for (let k = 0; k < len; k++) {
      const t = get(tokens, src + k);
      set(outIds, at + k, t);
      const keep = k > 0 && (lossMask == 0 || load<u8>(lossMask + <usize>(src + k)) != 0);
      set(outLabels, at + k, keep ? t : -100);
      set(outPos, at + k, k);
      set(outDoc, at + k, docId);
    }
  }
}
