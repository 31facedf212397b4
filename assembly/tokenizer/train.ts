// Byte-level BPE training, the reference trainer's algorithm: count adjacent pairs over the
// unique words (weighted by frequency), repeatedly merge the most frequent pair (ties: the
// smaller pair of ids), updating only the words that hold it, with a lazily re-keyed max-heap.
import { alloc, pow2AtLeast } from './mem';
import { vocabAdd, vocabFind, vocabReserve } from './vocab';

// words: symbols back to back; each word's offset, live length and frequency
let sym: usize = 0;
let wOff: usize = 0;
let wLen: usize = 0;
let wCount: usize = 0;
let wStamp: usize = 0;
let nWords: i32 = 0;

// tokens: bytes of every token id (for the merged token's string and its id)
let tokOff: usize = 0;
let tokLen: usize = 0;
let tokTop: usize = 0; // token bytes: arena chunks, a new one when full
let tokEnd: usize = 0;
let nTok: i32 = 0;
let maxTok: i32 = 0;

// Pair slot (32 bytes): key u64 (all ones = empty), count i64, list ptr u32, list len u32, list cap u32, stamp u32
let pTab: usize = 0;
let pMask: u32 = 0;
let pUsed: u32 = 0;
let heap: usize = 0;
let heapN: i32 = 0;
let heapCap: i32 = 0;
let touched: usize = 0;
let nTouched: i32 = 0;
let stamp: u32 = 0;

@inline function key(a: i32, b: i32): u64 { return (<u64><u32>a << 32) | <u64><u32>b; }

function slot(k: u64): usize {
  let x = k * 0x9e3779b97f4a7c15;
  let i = (<u32>(x >> 32) ^ <u32>x) & pMask;
  while (true) {
    const s = pTab + (<usize>i << 5);
    const sk = load<u64>(s);
    if (sk == k) return s;
    if (sk == u64.MAX_VALUE) {
      store<u64>(s, k);
      store<i64>(s + 8, 0);
      store<u32>(s + 16, 0);
      store<u32>(s + 20, 0);
      store<u32>(s + 24, 0);
      store<u32>(s + 28, 0);
      pUsed++;
      return s;
    }
    i = (i + 1) & pMask;
  }
}

function grow(): void {
  // keep the table at most half full: rehash into twice the slots
  const old = pTab;
  const oldCap = pMask + 1;
  const cap = oldCap * 2;
  pTab = alloc(<usize>cap << 5);
  memory.fill(pTab, 0xff, <usize>cap << 5);
  pMask = cap - 1;
  pUsed = 0;
  for (let i: u32 = 0; i < oldCap; i++) {
    const s = old + (<usize>i << 5);
    const k = load<u64>(s);
    if (k == u64.MAX_VALUE) continue;
    const d = slot(k);
    memory.copy(d + 8, s + 8, 24);
  }
}

function addWord(s: usize, w: i32): void {
  const len = load<u32>(s + 20);
  const ptr = <usize>load<u32>(s + 16);
  if (len > 0 && load<i32>(ptr + (<usize>(len - 1) << 2)) == w) return;
  let cap = load<u32>(s + 24);
  let p = ptr;
  if (len == cap) {
    cap = cap ? cap * 2 : 4;
    p = alloc(<usize>cap << 2);
    if (len) memory.copy(p, ptr, <usize>len << 2);
    store<u32>(s + 16, <u32>p);
    store<u32>(s + 24, cap);
  }
  store<i32>(p + (<usize>len << 2), w);
  store<u32>(s + 20, len + 1);
}

function change(a: i32, b: i32, delta: i64, w: i32): void {
  if (pUsed * 2 >= pMask) grow();
  const s = slot(key(a, b));
  store<i64>(s + 8, load<i64>(s + 8) + delta);
  if (delta > 0) {
    addWord(s, w);
    if (load<u32>(s + 28) != stamp) {
      store<u32>(s + 28, stamp);
      store<u64>(touched + (<usize>nTouched << 3), key(a, b));
      nTouched++;
    }
  }
}

// max-heap of (count, key): the larger count first, then the smaller key
@inline function before(c1: u64, k1: u64, c2: u64, k2: u64): bool { return c1 > c2 || (c1 == c2 && k1 < k2); }

function heapPush(c: u64, k: u64): void {
  if (heapN == heapCap) {
    const cap = heapCap ? heapCap * 2 : 1024;
    const h = alloc(<usize>cap << 4);
    if (heapN) memory.copy(h, heap, <usize>heapN << 4);
    heap = h;
    heapCap = cap;
  }
  let i = heapN++;
  while (i > 0) {
    const p = (i - 1) >> 1;
    const pc = load<u64>(heap + (<usize>p << 4));
    const pk = load<u64>(heap + (<usize>p << 4) + 8);
    if (!before(c, k, pc, pk)) break;
    store<u64>(heap + (<usize>i << 4), pc);
    store<u64>(heap + (<usize>i << 4) + 8, pk);
    i = p;
  }
  store<u64>(heap + (<usize>i << 4), c);
  store<u64>(heap + (<usize>i << 4) + 8, k);
}

let topCount: u64 = 0;
let topKey: u64 = 0;
function heapPop(): void {
  topCount = load<u64>(heap);
  topKey = load<u64>(heap + 8);
  heapN--;
  const lc = load<u64>(heap + (<usize>heapN << 4));
  const lk = load<u64>(heap + (<usize>heapN << 4) + 8);
  let i = 0;
  while (true) {
    let c = 2 * i + 1;
    if (c >= heapN) break;
    let cc = load<u64>(heap + (<usize>c << 4));
    let ck = load<u64>(heap + (<usize>c << 4) + 8);
    if (c + 1 < heapN) {
      const rc = load<u64>(heap + (<usize>(c + 1) << 4));
      const rk = load<u64>(heap + (<usize>(c + 1) << 4) + 8);
      if (before(rc, rk, cc, ck)) { c++; cc = rc; ck = rk; }
    }
    if (!before(cc, ck, lc, lk)) break;
    store<u64>(heap + (<usize>i << 4), cc);
    store<u64>(heap + (<usize>i << 4) + 8, ck);
    i = c;
  }
  if (heapN > 0) {
    store<u64>(heap + (<usize>i << 4), lc);
    store<u64>(heap + (<usize>i << 4) + 8, lk);
  }
}

/**
 * Sets up training: `n` words whose symbols (initial token ids) are at `symbols` (back to back,
 * `offsets[n + 1]`), with frequencies `counts` (u32); `tokens` initial tokens, ids `firstId`..,
 * whose bytes are at `bytes` with `ends` offsets. Room is made for `vocabSize` ids in all.
 */
export function trainInit(symbols: usize, offsets: usize, counts: usize, n: i32, bytes: usize, ends: usize, tokens: i32, firstId: i32, vocabSize: i32): void {
  nWords = n;
  const total = load<i32>(offsets + (<usize>n << 2));
  sym = alloc(<usize>total << 2);
  memory.copy(sym, symbols, <usize>total << 2);
  wOff = alloc(<usize>n << 2);
  wLen = alloc(<usize>n << 2);
  wCount = alloc(<usize>n << 3);
  wStamp = alloc(<usize>n << 2);
  maxTok = max(vocabSize, firstId + tokens) + 1;
  tokOff = alloc(<usize>maxTok << 2);
  tokLen = alloc(<usize>maxTok << 2);
  const initialBytes = load<i32>(ends + (<usize>(tokens - 1) << 2));
  const cap: usize = <usize>initialBytes + <usize>maxTok * 16 + 4096;
  tokTop = alloc(cap);
  tokEnd = tokTop + cap;
  vocabReserve(<u32>maxTok, <u32>cap);
  let s = 0;
  for (let t = 0; t < tokens; t++) {
    const e = load<i32>(ends + (<usize>t << 2));
    const id = firstId + t;
    memory.copy(tokTop, bytes + s, e - s);
    store<i32>(tokOff + (<usize>id << 2), <i32>tokTop);
    store<i32>(tokLen + (<usize>id << 2), e - s);
    vocabAdd(tokTop, e - s, id);
    tokTop += e - s;
    s = e;
  }
  nTok = firstId + tokens;

  const cap2 = <u32>pow2AtLeast(total * 2, 1024);
  pTab = alloc(<usize>cap2 << 5);
  memory.fill(pTab, 0xff, <usize>cap2 << 5);
  pMask = cap2 - 1;
  touched = alloc((<usize>total << 4) + 64);
  stamp = 1;
  nTouched = 0;
  for (let w = 0; w < n; w++) {
    const o = load<i32>(offsets + (<usize>w << 2));
    const len = load<i32>(offsets + (<usize>(w + 1) << 2)) - o;
    store<i32>(wOff + (<usize>w << 2), o);
    store<i32>(wLen + (<usize>w << 2), len);
    store<u64>(wCount + (<usize>w << 3), <u64>load<u32>(counts + (<usize>w << 2)));
    store<u32>(wStamp + (<usize>w << 2), 0);
    const c = <i64>load<u32>(counts + (<usize>w << 2));
    for (let i = 0; i + 1 < len; i++) change(load<i32>(sym + (<usize>(o + i) << 2)), load<i32>(sym + (<usize>(o + i + 1) << 2)), c, w);
  }
  for (let t = 0; t < nTouched; t++) {
    const k = load<u64>(touched + (<usize>t << 3));
    const cnt = load<i64>(slot(k) + 8);
    if (cnt > 0) heapPush(<u64>cnt, k);
  }
}

/** The id of the token a ++ b (a new one when its bytes are new). */
function mergedToken(a: i32, b: i32): i32 {
  const la = load<i32>(tokLen + (<usize>a << 2));
  const lb = load<i32>(tokLen + (<usize>b << 2));
  if (tokTop + la + lb > tokEnd) {
    const size = max<usize>(la + lb, 1 << 20);
    tokTop = alloc(size);
    tokEnd = tokTop + size;
  }
  const p = tokTop;
  memory.copy(p, <usize>load<i32>(tokOff + (<usize>a << 2)), la);
  memory.copy(p + la, <usize>load<i32>(tokOff + (<usize>b << 2)), lb);
  const found = vocabFind(p, la + lb);
  if (found >= 0) return found;
  const id = nTok++;
  store<i32>(tokOff + (<usize>id << 2), <i32>tokTop);
  store<i32>(tokLen + (<usize>id << 2), la + lb);
  vocabAdd(p, la + lb, id);
  tokTop += la + lb;
  return id;
}

/**
 * Runs merges until the vocab holds `vocabSize` tokens, or the best pair is rarer than
 * `minFrequency`. Writes (left, right, merged) triples to `out`; returns how many.
 */
export function trainRun(vocabSize: i32, minFrequency: i64, out: usize): i32 {
  let merges = 0;
  while (nTok < vocabSize && heapN > 0) {
    heapPop();
    const s = slot(topKey);
    const cnt = load<i64>(s + 8);
    if (<u64>cnt != topCount) {
      if (cnt > 0) heapPush(<u64>cnt, topKey);
      continue;
    }
    if (cnt < 1 || cnt < minFrequency) break;
    const a = <i32>(topKey >> 32);
    const b = <i32><u32>topKey;
    const c = mergedToken(a, b);
    store<i32>(out + <usize>merges * 12, a);
    store<i32>(out + <usize>merges * 12 + 4, b);
    store<i32>(out + <usize>merges * 12 + 8, c);
    merges++;
    // merge in every word that holds the pair (the list may repeat a word or hold stale ones)
    stamp++;
    nTouched = 0;
    const list = <usize>load<u32>(s + 16);
    const listLen = load<u32>(s + 20);
    for (let j: u32 = 0; j < listLen; j++) {
      const w = load<i32>(list + (<usize>j << 2));
      if (load<u32>(wStamp + (<usize>w << 2)) == stamp) continue;
      store<u32>(wStamp + (<usize>w << 2), stamp);
      const o = load<i32>(wOff + (<usize>w << 2));
      let len = load<i32>(wLen + (<usize>w << 2));
      const wc = <i64>load<u64>(wCount + (<usize>w << 3));
      const base = sym + (<usize>o << 2);
      let i = 0;
      while (i + 1 < len) {
        if (load<i32>(base + (<usize>i << 2)) == a && load<i32>(base + (<usize>(i + 1) << 2)) == b) {
          if (i > 0) {
            const p = load<i32>(base + (<usize>(i - 1) << 2));
            change(p, a, -wc, w);
            change(p, c, wc, w);
          }
          change(a, b, -wc, w);
          if (i + 2 < len) {
            const nx = load<i32>(base + (<usize>(i + 2) << 2));
            change(b, nx, -wc, w);
            change(c, nx, wc, w);
          }
          store<i32>(base + (<usize>i << 2), c);
          memory.copy(base + (<usize>(i + 1) << 2), base + (<usize>(i + 2) << 2), <usize>(len - i - 2) << 2);
          len--;
        }
        i++;
      }
      store<i32>(wLen + (<usize>w << 2), len);
    }
    // the list of a merged pair is spent
    store<u32>(slot(topKey) + 20, 0);
    for (let t = 0; t < nTouched; t++) {
      const k = load<u64>(touched + (<usize>t << 3));
      const n = load<i64>(slot(k) + 8);
      if (n > 0) heapPush(<u64>n, k);
    }
  }
  return merges;
}

/** Bytes of token `id` (pointer; its length from trainTokenLength). */
export function trainTokenPtr(id: i32): usize { return <usize>load<i32>(tokOff + (<usize>id << 2)); }
export function trainTokenLength(id: i32): i32 { return load<i32>(tokLen + (<usize>id << 2)); }
export function trainTokenCount(): i32 { return nTok; }
