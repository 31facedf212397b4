import { KilnError, fmtShape } from './errors.js';

export type Shape = readonly number[];

/** Kernels take up to this many dims; views of higher rank are made contiguous first. */
export const MAX_RANK = 8;

export const numel = (s: Shape): number => s.reduce((a, b) => a * b, 1);

export function contiguousStrides(s: Shape): number[] {
  const st = new Array<number>(s.length);
  let acc = 1;
  for (let i = s.length - 1; i >= 0; i--) { st[i] = acc; acc *= s[i]; }
  return st;
}

export function isContiguous(shape: Shape, strides: readonly number[]): boolean {
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== acc) return false;
    acc *= shape[i];
  }
  return true;
}

/** Normalises a possibly negative axis against rank. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= Math.max(rank, 1)) {
    throw new KilnError('index', op, `axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}

export function normAxes(op: string, axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = typeof axes === 'number' ? [axes] : axes;
  const out = [...new Set(list.map((a) => normAxis(op, a, rank)))];
  return out.sort((a, b) => a - b);
}

/** NumPy broadcasting of two shapes. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const r = Math.max(a.length, b.length);
  const out = new Array<number>(r);
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new KilnError('shape', op, `shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast (dim ${i}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides that read a tensor of `shape`/`strides` as if broadcast to `target` (0 on broadcast dims). */
export function broadcastStrides(shape: Shape, strides: readonly number[], target: Shape): number[] {
  const off = target.length - shape.length;
  return target.map((_, i) => (i < off || shape[i - off] === 1 ? 0 : strides[i - off]));
}

/** Resolves a -1 in a reshape target. */
export function inferShape(op: string, from: Shape, to: readonly number[]): number[] {
  const n = numel(from);
  const neg = to.filter((d) => d === -1).length;
  if (neg > 1) throw new KilnError('shape', op, `only one dimension may be -1, got ${fmtShape(to)}`);
  const known = to.reduce((a, d) => (d === -1 ? a : a * d), 1);
  const out = to.map((d) => (d === -1 ? (known === 0 ? 0 : n / known) : d));
  if (out.some((d) => !Number.isInteger(d) || d < 0) || numel(out) !== n) {
    throw new KilnError('shape', op, `cannot view a tensor of shape ${fmtShape(from)} (${n} elements) as ${fmtShape(to)}`);
  }
  return out;
}

/**
 * Strides for viewing (shape, strides) as `to` without a copy, or null when the layout does not
 * allow it (as torch.view: merged dims must be contiguous with each other).
 */
export function viewStrides(shape: Shape, strides: readonly number[], to: Shape): number[] | null {
  // Drop size-1 dims, then walk both shapes in chunks whose products match.
  const dims = shape.map((d, i) => [d, strides[i]] as const).filter(([d]) => d !== 1);
  const out = new Array<number>(to.length).fill(0);
  let i = 0;
  let j = 0;
  while (j < to.length || i < dims.length) {
    if (j < to.length && to[j] === 1) { out[j] = 1; j++; continue; }
    if (i >= dims.length || j >= to.length) return numel(to) === 0 ? contiguousStrides(to) : null;
    // a chunk of source dims [i, i2) that must be mutually contiguous
    let pa = dims[i][0];
    let pb = to[j];
    let i2 = i + 1;
    let j2 = j + 1;
    while (pa !== pb) {
      if (pa < pb) { if (i2 >= dims.length) return null; pa *= dims[i2][0]; i2++; }
      else { if (j2 >= to.length) return null; pb *= to[j2]; j2++; }
    }
    for (let k = i; k < i2 - 1; k++) if (dims[k][1] !== dims[k + 1][1] * dims[k + 1][0]) return null;
    // assign strides to target dims j..j2-1 from the innermost stride outward
    let st = dims[i2 - 1][1];
    for (let k = j2 - 1; k >= j; k--) { out[k] = st; st *= to[k]; }
    i = i2;
    j = j2;
  }
  return out;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
