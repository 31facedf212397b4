// Memory of the tokenizer module: one bump allocator over linear memory. Tables are sized once
// at load; the host's I/O region is reused across calls and only grows.

let top: usize = 0;

@inline function align16(p: usize): usize { return (p + 15) & ~(<usize>15); }

/** The smallest power of two at least n and at least `least` (itself a power of two): table and buffer capacities. */
export function pow2AtLeast(n: i32, least: i32): i32 {
  let c = least;
  while (c < n) c <<= 1;
  return c;
}

export function alloc(n: usize): usize {
  if (top == 0) top = align16(__heap_base);
  const p = align16(top);
  const end = p + n;
  const have = (<usize>memory.size()) << 16;
  if (end > have) {
    const pages = <i32>((end - have + 0xffff) >> 16);
    if (memory.grow(pages) < 0) unreachable();
  }
  top = end;
  return p;
}

/** A region that is reused: returns `cur` when it holds `n` bytes, else a new, larger one. */
export function regrow(cur: usize, curBytes: usize, n: usize): usize {
  if (cur != 0 && curBytes >= n) return cur;
  return alloc(n);
}

// FNV-1a: incremental, so the hash of s[i..j+1] extends the hash of s[i..j] by one byte, which
// the Unigram lattice and the WordPiece longest-match rely on.
export const FNV_SEED: u32 = 2166136261;
@inline export function fnvByte(h: u32, b: u32): u32 { return (h ^ b) * 16777619; }
export function fnv(h: u32, p: usize, n: usize): u32 {
  for (let i: usize = 0; i < n; i++) h = (h ^ <u32>load<u8>(p + i)) * 16777619;
  return h;
}

export function bytesEqual(a: usize, b: usize, n: usize): bool {
  let i: usize = 0;
  for (; i + 8 <= n; i += 8) if (load<u64>(a + i) != load<u64>(b + i)) return false;
  for (; i < n; i++) if (load<u8>(a + i) != load<u8>(b + i)) return false;
  return true;
}

/** The byte length of the UTF-8 sequence that starts with lead byte `b` (1 for a stray byte). */
@inline export function utf8Len(b: u32): i32 {
  if (b < 0xc0) return 1;
  if (b < 0xe0) return 2;
  if (b < 0xf0) return 3;
  return 4;
}
