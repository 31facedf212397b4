// The fuzzer's only source of randomness: a case is (target, seed, index), and the same triple
// makes the same mutation on every machine.

/** mulberry32: a small, fast, well-mixed 32-bit generator. */
function mulberry32(a) {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a over a string: the case's stream seed from its (target, seed, index). */
function fnv(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export class Rng {
  constructor(target, seed, index) {
    this.next = mulberry32(fnv(`${target}/${seed}/${index}`));
  }
  /** integer in [lo, hi) */
  int(lo, hi) {
    return lo + Math.floor(this.next() * (hi - lo));
  }
  pick(arr) {
    return arr[this.int(0, arr.length)];
  }
  chance(p) {
    return this.next() < p;
  }
  /** a pick weighted by each row's first element: [[weight, value], ...] */
  weighted(rows) {
    let r = this.next() * rows.reduce((a, [w]) => a + w, 0);
    for (const [w, v] of rows) if ((r -= w) < 0) return v;
    return rows[rows.length - 1][1];
  }
}
