// The tokenizer models over pre-tokenized words (UTF-8 bytes): BPE (byte-level or by character,
// with byte fallback and unk fusing), WordPiece (greedy longest match), Unigram (Viterbi) and
// WordLevel. Each follows the Hugging Face `tokenizers` crate step for step, so ids match it.
import { alloc, bytesEqual, fnv, fnvByte, FNV_SEED, pow2AtLeast, regrow, utf8Len } from './mem';
import { maxKeyBytes, mergeFind, prefixHas, vocabFind, vocabFind2 } from './vocab';

export const MODEL_BPE = 0;
export const MODEL_WORDPIECE = 1;
export const MODEL_UNIGRAM = 2;
export const MODEL_WORDLEVEL = 3;
/** Returned (negated count) when a word needs the unknown token and the model has none. */
export const ERR_NO_UNK = -1;

let kind: i32 = MODEL_BPE;
let byteUnits = false; // byte-level BPE: every byte is one initial symbol
let unkId: i32 = -1;
let fuseUnk = false;
let byteFallback = false;
let ignoreMerges = false;
let maxInputChars: i32 = 100;
let unkScore: f64 = 0;
let prefixPtr: usize = 0;
let prefixLen: u32 = 0;
let suffixPtr: usize = 0;
let suffixLen: u32 = 0;
let prefixHash: u32 = FNV_SEED;
let scores: usize = 0; // f64 per id (Unigram)
let byteIds: usize = 0; // i32[256]: the id of "<0xXX>" (byte fallback), -1 when absent
let unitIds: usize = 0; // i32[256]: the id of each single byte (byte-level fast path)

export function modelConfig(k: i32, units: i32, unk: i32, fuse: i32, fallback: i32, ignore: i32, maxChars: i32): void {
  kind = k;
  byteUnits = units != 0;
  unkId = unk;
  fuseUnk = fuse != 0;
  byteFallback = fallback != 0;
  ignoreMerges = ignore != 0;
  maxInputChars = maxChars;
  byteIds = alloc(1024);
  unitIds = alloc(1024);
}

/** Copies the continuing-subword prefix and end-of-word suffix (either may be empty). */
export function modelAffixes(p: usize, pn: u32, s: usize, sn: u32): void {
  prefixPtr = alloc(pn + 1);
  memory.copy(prefixPtr, p, pn);
  prefixLen = pn;
  prefixHash = fnv(FNV_SEED, prefixPtr, pn);
  suffixPtr = alloc(sn + 1);
  memory.copy(suffixPtr, s, sn);
  suffixLen = sn;
}

/** Called once the vocab is loaded: fills the per-byte tables. */
export function modelFinish(): void {
  const k = alloc(8);
  const hex = '0123456789ABCDEF';
  for (let b = 0; b < 256; b++) {
    // "<0xXX>"
    store<u8>(k, 0x3c);
    store<u8>(k + 1, 0x30);
    store<u8>(k + 2, 0x78);
    store<u8>(k + 3, <u8>hex.charCodeAt(b >> 4));
    store<u8>(k + 4, <u8>hex.charCodeAt(b & 15));
    store<u8>(k + 5, 0x3e);
    store<i32>(byteIds + (<usize>b << 2), vocabFind(k, 6));
    store<u8>(k, <u8>b);
    store<i32>(unitIds + (<usize>b << 2), vocabFind(k, 1));
  }
}

export function modelScores(n: i32, unkS: f64): usize {
  scores = alloc(<usize>n << 3);
  unkScore = unkS;
  return scores;
}

// ---- per-word token buffer (ids and byte offsets relative to the word) ----
let tCap: i32 = 0;
let tId: usize = 0;
let tS: usize = 0;
let tE: usize = 0;
let tN: i32 = 0;

function ensureTokens(n: i32): void {
  if (n <= tCap) return;
  const c = pow2AtLeast(max(n, tCap * 2), 64);
  tId = alloc(<usize>c << 2);
  tS = alloc(<usize>c << 2);
  tE = alloc(<usize>c << 2);
  tCap = c;
}

@inline function push(id: i32, s: i32, e: i32): void {
  const o = <usize>tN << 2;
  store<i32>(tId + o, id);
  store<i32>(tS + o, s);
  store<i32>(tE + o, e);
  tN++;
}

// ---- BPE ----
let sCap: i32 = 0;
let symId: usize = 0;
let symS: usize = 0;
let symE: usize = 0;
let symPrev: usize = 0;
let symNext: usize = 0;
let heap: usize = 0;
let heapN: i32 = 0;
let kbuf: usize = 0;
let kbufCap: usize = 0;
let nSym: i32 = 0;

function ensureSymbols(n: i32): void {
  if (n <= sCap) return;
  const c = pow2AtLeast(max(n, sCap * 2), 256);
  symId = alloc(<usize>c << 2);
  symS = alloc(<usize>c << 2);
  symE = alloc(<usize>c << 2);
  symPrev = alloc(<usize>c << 2);
  symNext = alloc(<usize>c << 2);
  heap = alloc(<usize>c * 24 + 64); // at most 3 entries per symbol
  sCap = c;
}

@inline function addSym(id: i32, s: i32, e: i32): void {
  const o = <usize>nSym << 2;
  store<i32>(symId + o, id);
  store<i32>(symS + o, s);
  store<i32>(symE + o, e);
  nSym++;
}

// Min-heap of (rank << 32 | position): lowest rank first, leftmost on ties, as the reference.
function heapPush(v: u64): void {
  let i = heapN++;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const pv = load<u64>(heap + (<usize>parent << 3));
    if (pv <= v) break;
    store<u64>(heap + (<usize>i << 3), pv);
    i = parent;
  }
  store<u64>(heap + (<usize>i << 3), v);
}

function heapPop(): u64 {
  const top = load<u64>(heap);
  const last = load<u64>(heap + (<usize>(--heapN) << 3));
  let i = 0;
  const n = heapN;
  while (true) {
    let c = 2 * i + 1;
    if (c >= n) break;
    let cv = load<u64>(heap + (<usize>c << 3));
    if (c + 1 < n) {
      const rv = load<u64>(heap + (<usize>(c + 1) << 3));
      if (rv < cv) { c++; cv = rv; }
    }
    if (last <= cv) break;
    store<u64>(heap + (<usize>i << 3), cv);
    i = c;
  }
  if (n > 0) store<u64>(heap + (<usize>i << 3), last);
  return top;
}

@inline function sym(arr: usize, i: i32): i32 { return load<i32>(arr + (<usize>i << 2)); }
@inline function setSym(arr: usize, i: i32, v: i32): void { store<i32>(arr + (<usize>i << 2), v); }

function pushPair(left: i32): void {
  const right = sym(symNext, left);
  if (right < 0) return;
  const m = mergeFind(sym(symId, left), sym(symId, right));
  if (m != 0) heapPush((<u64><u32>load<i32>(m + 8) << 32) | <u64><u32>left);
}

/** The id of unit [i, i+ul) of the word with the prefix (not first) and suffix (last) applied. */
function unitLookup(p: usize, i: i32, ul: i32, n: i32): i32 {
  const pre = i > 0 && prefixLen > 0;
  const suf = i + ul >= n && suffixLen > 0;
  if (!pre && !suf) {
    if (ul == 1) return load<i32>(unitIds + (<usize>load<u8>(p + i) << 2));
    return vocabFind(p + i, ul);
  }
  const len = (pre ? prefixLen : 0) + <u32>ul + (suf ? suffixLen : 0);
  kbuf = regrow(kbuf, kbufCap, len);
  if (kbufCap < len) kbufCap = len;
  let o: usize = 0;
  if (pre) { memory.copy(kbuf, prefixPtr, prefixLen); o = prefixLen; }
  memory.copy(kbuf + o, p + i, ul);
  o += ul;
  if (suf) memory.copy(kbuf + o, suffixPtr, suffixLen);
  return vocabFind(kbuf, len);
}

function bpeWord(p: usize, n: i32): i32 {
  if (ignoreMerges) {
    const id = vocabFind(p, n);
    if (id >= 0) { push(id, 0, n); return 0; }
  }
  ensureSymbols(n + 1);
  nSym = 0;
  let pendS: i32 = -1;
  let pendE: i32 = 0;
  let i: i32 = 0;
  while (i < n) {
    let ul = byteUnits ? 1 : utf8Len(load<u8>(p + i));
    if (i + ul > n) ul = n - i;
    const id = unitLookup(p, i, ul, n);
    if (id >= 0) {
      if (pendS >= 0) { addSym(unkId, pendS, pendE); pendS = -1; }
      addSym(id, i, i + ul);
    } else {
      let done = false;
      if (byteFallback && prefixLen == 0 && suffixLen == 0) {
        let all = true;
        for (let j = 0; j < ul; j++) if (load<i32>(byteIds + (<usize>load<u8>(p + i + j) << 2)) < 0) { all = false; break; }
        if (all) {
          // the reference does not flush a pending unknown here, so neither do we
          for (let j = 0; j < ul; j++) addSym(load<i32>(byteIds + (<usize>load<u8>(p + i + j) << 2)), i + j, i + j + 1);
          done = true;
        }
      }
      if (!done) {
        if (unkId < 0) return ERR_NO_UNK;
        if (pendS >= 0 && fuseUnk) pendE = i + ul;
        else {
          if (pendS >= 0) addSym(unkId, pendS, pendE);
          pendS = i;
          pendE = i + ul;
        }
      }
    }
    i += ul;
  }
  if (pendS >= 0) addSym(unkId, pendS, pendE);
  for (let k = 0; k < nSym; k++) {
    setSym(symPrev, k, k - 1);
    setSym(symNext, k, k + 1 < nSym ? k + 1 : -1);
  }
  heapN = 0;
  for (let k = 0; k + 1 < nSym; k++) pushPair(k);
  while (heapN > 0) {
    const top = heapPop();
    const pos = <i32><u32>top;
    const rank = <i32>(top >> 32);
    if (sym(symS, pos) < 0) continue; // merged away
    const right = sym(symNext, pos);
    if (right < 0) continue;
    const m = mergeFind(sym(symId, pos), sym(symId, right));
    if (m == 0 || load<i32>(m + 8) != rank) continue; // stale entry
    setSym(symId, pos, load<i32>(m + 12));
    setSym(symE, pos, sym(symE, right));
    setSym(symS, right, -1);
    const rn = sym(symNext, right);
    setSym(symNext, pos, rn);
    if (rn >= 0) setSym(symPrev, rn, pos);
    const pv = sym(symPrev, pos);
    if (pv >= 0) pushPair(pv);
    pushPair(pos);
  }
  for (let k = 0; k >= 0 && k < nSym; k = sym(symNext, k)) push(sym(symId, k), sym(symS, k), sym(symE, k));
  return 0;
}

// ---- WordPiece ----
function wordPieceWord(p: usize, n: i32): i32 {
  let chars = 0;
  for (let i = 0; i < n; i++) if ((load<u8>(p + i) & 0xc0) != 0x80) chars++;
  if (chars > maxInputChars) {
    if (unkId < 0) return ERR_NO_UNK;
    push(unkId, 0, n);
    return 0;
  }
  const first = tN;
  let start = 0;
  while (start < n) {
    let end = n;
    let cur = -1;
    const room = maxKeyBytes - (start > 0 ? <i32>prefixLen : 0);
    while (start < end) {
      if (end - start <= room) {
        cur = start > 0
          ? vocabFind2(fnv(prefixHash, p + start, end - start), prefixPtr, prefixLen, p + start, end - start)
          : vocabFind(p + start, end - start);
        if (cur >= 0) break;
      }
      end--;
      while (end > start && (load<u8>(p + end) & 0xc0) == 0x80) end--;
    }
    if (cur < 0) {
      if (unkId < 0) return ERR_NO_UNK;
      tN = first;
      push(unkId, 0, n);
      return 0;
    }
    push(cur, start, end);
    start = end;
  }
  return 0;
}

// ---- Unigram (Viterbi over the byte positions that start characters) ----
let lCap: i32 = 0;
let bestScore: usize = 0;
let bestStart: usize = 0;
let bestId: usize = 0;

function fallbackOrUnk(p: usize, s: i32, e: i32): i32 {
  const id = vocabFind(p + s, e - s);
  if (id >= 0) { push(id, s, e); return 0; }
  if (byteFallback) {
    let all = true;
    for (let j = s; j < e; j++) if (load<i32>(byteIds + (<usize>load<u8>(p + j) << 2)) < 0) { all = false; break; }
    if (all) {
      for (let j = s; j < e; j++) push(load<i32>(byteIds + (<usize>load<u8>(p + j) << 2)), s, e);
      return 0;
    }
  }
  if (unkId < 0) return ERR_NO_UNK;
  push(unkId, s, e);
  return 0;
}

function unigramWord(p: usize, n: i32): i32 {
  if (n + 1 > lCap) {
    const c = pow2AtLeast(max(n + 1, lCap * 2), 256);
    bestScore = alloc(<usize>c << 3);
    bestStart = alloc(<usize>c << 2);
    bestId = alloc(<usize>c << 2);
    lCap = c;
  }
  for (let i = 0; i <= n; i++) {
    store<f64>(bestScore + (<usize>i << 3), 0);
    store<i32>(bestStart + (<usize>i << 2), -1);
  }
  let s = 0;
  while (s < n) {
    const here = load<f64>(bestScore + (<usize>s << 3));
    let mb = utf8Len(load<u8>(p + s));
    if (s + mb > n) mb = n - s;
    let single = false;
    let h = FNV_SEED;
    const lim = min(n - s, maxKeyBytes);
    for (let len = 1; len <= lim; len++) {
      h = fnvByte(h, load<u8>(p + s + len - 1));
      if (!prefixHas(h)) break; // no token starts with these bytes
      if (s + len < n && (load<u8>(p + s + len) & 0xc0) == 0x80) continue; // not a character end
      const id = vocabFind2(h, p + s, len, 0, 0);
      if (id < 0) continue;
      const e = s + len;
      const cand = load<f64>(scores + (<usize>id << 3)) + here;
      if (load<i32>(bestStart + (<usize>e << 2)) < 0 || cand > load<f64>(bestScore + (<usize>e << 3))) {
        store<f64>(bestScore + (<usize>e << 3), cand);
        store<i32>(bestStart + (<usize>e << 2), s);
        store<i32>(bestId + (<usize>e << 2), id);
      }
      if (len == mb) single = true;
    }
    if (!single) {
      if (unkId < 0) return ERR_NO_UNK;
      const e = s + mb;
      const cand = unkScore + here;
      if (load<i32>(bestStart + (<usize>e << 2)) < 0 || cand > load<f64>(bestScore + (<usize>e << 3))) {
        store<f64>(bestScore + (<usize>e << 3), cand);
        store<i32>(bestStart + (<usize>e << 2), s);
        store<i32>(bestId + (<usize>e << 2), unkId);
      }
    }
    s += mb;
  }
  // Backtrack into the symbol arrays (reversed), fusing runs of unknowns, then emit in order.
  ensureSymbols(n + 1);
  nSym = 0;
  let e = n;
  let ue: i32 = -1;
  let us: i32 = 0;
  while (e > 0) {
    const st = load<i32>(bestStart + (<usize>e << 2));
    const id = load<i32>(bestId + (<usize>e << 2));
    if (fuseUnk && id == unkId) {
      if (ue < 0) ue = e;
      us = st;
    } else {
      if (ue >= 0) { addSym(-1, us, ue); ue = -1; }
      addSym(id, st, e);
    }
    e = st;
  }
  if (ue >= 0) addSym(-1, us, ue);
  for (let k = nSym - 1; k >= 0; k--) {
    const id = sym(symId, k);
    const a = sym(symS, k);
    const b = sym(symE, k);
    if (id >= 0 && id != unkId) push(id, a, b);
    else {
      const r = fallbackOrUnk(p, a, b);
      if (r < 0) return r;
    }
  }
  return 0;
}

function wordLevelWord(p: usize, n: i32): i32 {
  const id = vocabFind(p, n);
  if (id >= 0) push(id, 0, n);
  else if (unkId >= 0) push(unkId, 0, n);
  else return ERR_NO_UNK;
  return 0;
}

// ---- the word cache: word bytes -> its tokens ----
const CACHE_SLOTS: u32 = 1 << 16;
const CACHE_MAX_WORD: i32 = 256;
const CACHE_ARENA: usize = 8 << 20;
let cTab: usize = 0;
let cArena: usize = 0;
let cTop: usize = 0;
let cCount: u32 = 0;

function cacheClear(): void {
  if (cTab == 0) {
    cTab = alloc(<usize>CACHE_SLOTS << 4);
    cArena = alloc(CACHE_ARENA);
  }
  memory.fill(cTab, 0, <usize>CACHE_SLOTS << 4);
  cTop = cArena;
  cCount = 0;
}

// Slot: [hash u32, arena offset u32, word length + 1 u32, token count u32]; the arena holds the
// word bytes (padded to 4) then per token (id, start, end).
function cacheGet(h: u32, p: usize, n: i32): usize {
  let i = h & (CACHE_SLOTS - 1);
  while (true) {
    const s = cTab + (<usize>i << 4);
    const len = load<u32>(s + 8);
    if (len == 0) return 0;
    if (len == <u32>n + 1 && load<u32>(s) == h && bytesEqual(cArena + load<u32>(s + 4), p, n)) return s;
    i = (i + 1) & (CACHE_SLOTS - 1);
  }
}

function cachePut(h: u32, p: usize, n: i32, from: i32): void {
  const count = tN - from;
  const need = <usize>((n + 3) & ~3) + <usize>count * 12;
  if (cCount >= (CACHE_SLOTS >> 1) || cTop + need > cArena + CACHE_ARENA) cacheClear();
  let i = h & (CACHE_SLOTS - 1);
  while (load<u32>(cTab + (<usize>i << 4) + 8) != 0) i = (i + 1) & (CACHE_SLOTS - 1);
  const s = cTab + (<usize>i << 4);
  store<u32>(s, h);
  store<u32>(s + 4, <u32>(cTop - cArena));
  store<u32>(s + 8, <u32>n + 1);
  store<u32>(s + 12, <u32>count);
  memory.copy(cTop, p, n);
  let o = cTop + <usize>((n + 3) & ~3);
  for (let k = from; k < tN; k++) {
    store<i32>(o, load<i32>(tId + (<usize>k << 2)));
    store<i32>(o + 4, load<i32>(tS + (<usize>k << 2)));
    store<i32>(o + 8, load<i32>(tE + (<usize>k << 2)));
    o += 12;
  }
  cTop = o;
  cCount++;
}

function modelWord(p: usize, n: i32): i32 {
  if (kind == MODEL_BPE) return bpeWord(p, n);
  if (kind == MODEL_WORDPIECE) return wordPieceWord(p, n);
  if (kind == MODEL_UNIGRAM) return unigramWord(p, n);
  return wordLevelWord(p, n);
}

/**
 * Encodes `nWords` words of `text` (bounds: [start, end) byte pairs) into ids with byte offsets
 * in the text and the index of the word each token came from. Returns the token count, or a
 * negative error code. The output arrays must hold as many entries as the words have bytes.
 */
export function encodeWords(text: usize, bounds: usize, nWords: i32, outIds: usize, outS: usize, outE: usize, outWord: usize): i32 {
  if (cTab == 0) cacheClear();
  let total = 0;
  for (let w = 0; w < nWords; w++) {
    const ws = load<i32>(bounds + (<usize>w << 3));
    const we = load<i32>(bounds + (<usize>w << 3) + 4);
    const n = we - ws;
    if (n <= 0) continue;
    const p = text + ws;
    const cacheable = n < CACHE_MAX_WORD;
    let h: u32 = 0;
    if (cacheable) {
      h = fnv(FNV_SEED, p, n);
      const s = cacheGet(h, p, n);
      if (s != 0) {
        const count = <i32>load<u32>(s + 12);
        let o = cArena + load<u32>(s + 4) + <usize>((n + 3) & ~3);
        for (let k = 0; k < count; k++) {
          const t = <usize>(total + k) << 2;
          store<i32>(outIds + t, load<i32>(o));
          store<i32>(outS + t, load<i32>(o + 4) + ws);
          store<i32>(outE + t, load<i32>(o + 8) + ws);
          store<i32>(outWord + t, w);
          o += 12;
        }
        total += count;
        continue;
      }
    }
    ensureTokens(n + 8);
    tN = 0;
    const r = modelWord(p, n);
    if (r < 0) return r;
    if (cacheable) cachePut(h, p, n, 0);
    for (let k = 0; k < tN; k++) {
      const t = <usize>(total + k) << 2;
      const o = <usize>k << 2;
      store<i32>(outIds + t, load<i32>(tId + o));
      store<i32>(outS + t, load<i32>(tS + o) + ws);
      store<i32>(outE + t, load<i32>(tE + o) + ws);
      store<i32>(outWord + t, w);
    }
    total += tN;
  }
  return total;
}
