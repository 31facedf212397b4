// The model's lookup tables: token bytes -> id (open addressing, FNV-1a), and for BPE the
// merge table (left id, right id) -> (rank, merged id).
import { alloc, bytesEqual, fnv, FNV_SEED, pow2AtLeast } from './mem';

// Vocab slot: [hash u32, key pointer u32, key length + 1 u32 (0 = empty), id i32]. Keys live in
// arena chunks; a chunk that fills up is followed by a new one.
let vTab: usize = 0;
let vMask: u32 = 0;
let vArenaTop: usize = 0;
let vArenaEnd: usize = 0;
export let maxKeyBytes: i32 = 0;

export function vocabReserve(count: u32, keyBytes: u32): void {
  const cap = <u32>pow2AtLeast(<i32>count * 2, 16); // half full at most
  vTab = alloc(<usize>cap << 4);
  memory.fill(vTab, 0, <usize>cap << 4);
  vMask = cap - 1;
  vArenaTop = alloc(keyBytes);
  vArenaEnd = vArenaTop + keyBytes;
}

// The FNV-1a hashes of every prefix of every key (Unigram): a substring whose hash is absent is
// the start of no token, so the lattice stops extending it. Hashes only, so a collision can only
// make it look further than it needs to.
let phTab: usize = 0;
let phMask: u32 = 0;

export function prefixReserve(count: u32): void {
  const cap = <u32>pow2AtLeast(<i32>count * 2, 16); // half full at most
  phTab = alloc(<usize>cap << 2);
  memory.fill(phTab, 0, <usize>cap << 2);
  phMask = cap - 1;
}

function prefixAdd(h: u32): void {
  const k = h | 1; // 0 marks an empty slot
  let i = (k * 0x9e3779b1) & phMask;
  while (true) {
    const v = load<u32>(phTab + (<usize>i << 2));
    if (v == k) return;
    if (v == 0) { store<u32>(phTab + (<usize>i << 2), k); return; }
    i = (i + 1) & phMask;
  }
}

export function prefixHas(h: u32): bool {
  if (phTab == 0) return true;
  const k = h | 1;
  let i = (k * 0x9e3779b1) & phMask;
  while (true) {
    const v = load<u32>(phTab + (<usize>i << 2));
    if (v == k) return true;
    if (v == 0) return false;
    i = (i + 1) & phMask;
  }
}

/** Adds a key (copied from `p`); a key that is already present keeps its first id. */
export function vocabAdd(p: usize, n: u32, id: i32): void {
  const h = fnv(FNV_SEED, p, n);
  if (phTab != 0) {
    let ph = FNV_SEED;
    for (let i: u32 = 0; i < n; i++) {
      ph = (ph ^ <u32>load<u8>(p + i)) * 16777619;
      prefixAdd(ph);
    }
  }
  if (vocabFind2(h, p, n, 0, 0) >= 0) return;
  if (vArenaTop + n > vArenaEnd) {
    const size = max<usize>(n, 1 << 20);
    vArenaTop = alloc(size);
    vArenaEnd = vArenaTop + size;
  }
  memory.copy(vArenaTop, p, n);
  let i = h & vMask;
  while (load<u32>(vTab + (<usize>i << 4) + 8) != 0) i = (i + 1) & vMask;
  const s = vTab + (<usize>i << 4);
  store<u32>(s, h);
  store<u32>(s + 4, <u32>vArenaTop);
  store<u32>(s + 8, n + 1);
  store<i32>(s + 12, id);
  vArenaTop += n;
  if (<i32>n > maxKeyBytes) maxKeyBytes = <i32>n;
}

/** Looks up the key made of two parts (p1, n1) ++ (p2, n2) whose FNV-1a hash is `h`; -1 if absent. */
export function vocabFind2(h: u32, p1: usize, n1: u32, p2: usize, n2: u32): i32 {
  let i = h & vMask;
  const n = n1 + n2 + 1;
  while (true) {
    const s = vTab + (<usize>i << 4);
    const len = load<u32>(s + 8);
    if (len == 0) return -1;
    if (len == n && load<u32>(s) == h) {
      const k = <usize>load<u32>(s + 4);
      if (bytesEqual(k, p1, n1) && bytesEqual(k + n1, p2, n2)) return load<i32>(s + 12);
    }
    i = (i + 1) & vMask;
  }
}

@inline export function vocabFind(p: usize, n: u32): i32 {
  return vocabFind2(fnv(FNV_SEED, p, n), p, n, 0, 0);
}

// Merge slot: [key u64 (all ones = empty), rank i32, merged id i32]
let mTab: usize = 0;
let mMask: u32 = 0;

@inline function mixPair(key: u64): u32 {
  let x = key * 0x9e3779b97f4a7c15;
  return <u32>(x >> 32) ^ <u32>x;
}

export function mergeReserve(count: u32): void {
  const cap = <u32>pow2AtLeast(<i32>count * 2, 16); // half full at most
  mTab = alloc(<usize>cap << 4);
  memory.fill(mTab, 0xff, <usize>cap << 4);
  mMask = cap - 1;
}

export function mergeAdd(a: i32, b: i32, rank: i32, merged: i32): void {
  const key = (<u64><u32>a << 32) | <u64><u32>b;
  let i = mixPair(key) & mMask;
  while (true) {
    const s = mTab + (<usize>i << 4);
    const k = load<u64>(s);
    if (k == u64.MAX_VALUE) {
      store<u64>(s, key);
      store<i32>(s + 8, rank);
      store<i32>(s + 12, merged);
      return;
    }
    if (k == key) {
      // a repeated pair takes its last line, as the reference's map collection does
      store<i32>(s + 8, rank);
      store<i32>(s + 12, merged);
      return;
    }
    i = (i + 1) & mMask;
  }
}

/** The slot of the merge of (a, b), or 0 when there is none. Rank at +8, merged id at +12. */
export function mergeFind(a: i32, b: i32): usize {
  if (mTab == 0) return 0;
  const key = (<u64><u32>a << 32) | <u64><u32>b;
  let i = mixPair(key) & mMask;
  while (true) {
    const s = mTab + (<usize>i << 4);
    const k = load<u64>(s);
    if (k == key) return s;
    if (k == u64.MAX_VALUE) return 0;
    i = (i + 1) & mMask;
  }
}

/** Adds `n` keys stored back to back at `keys`, with end offsets and ids (i32 pairs) at `meta`. */
export function vocabAddAll(keys: usize, meta: usize, n: i32): void {
  let s: u32 = 0;
  for (let i = 0; i < n; i++) {
    const e = load<u32>(meta + (<usize>i << 3));
    vocabAdd(keys + s, e - s, load<i32>(meta + (<usize>i << 3) + 4));
    s = e;
  }
}

/** Adds `n` merges stored as (left, right, merged) i32 triples; the rank is the index. */
export function mergeAddAll(triples: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const t = triples + <usize>i * 12;
    mergeAdd(load<i32>(t), load<i32>(t + 4), i, load<i32>(t + 8));
  }
}
