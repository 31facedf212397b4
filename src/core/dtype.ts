/**
 * Dtypes. Compute is f32; f16 and bf16 are storage formats packed two to a 32-bit word
 * (so memory halves on every adapter, shader-f16 or not); i32/u32 carry indices.
 */
export type DType = 'f32' | 'f16' | 'bf16' | 'i32' | 'u32';

export const DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'i32', 'u32'];

/** Bytes per element. */
export const itemSize = (d: DType): number => (d === 'f16' || d === 'bf16' ? 2 : 4);

export const isFloat = (d: DType): boolean => d === 'f32' || d === 'f16' || d === 'bf16';

/** Bytes of storage for n elements: packed halves round up to whole 4-byte words. */
export const storageBytes = (d: DType, n: number): number => Math.max(4, Math.ceil((n * itemSize(d)) / 4) * 4);

/** A numeric code per dtype, shared by WGSL and AssemblyScript kernels through uniforms. */
export const dtypeCode = (d: DType): number => DTYPES.indexOf(d);

// ---- host-side conversions (used for uploads, readbacks and tests) ----
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f32 -> IEEE half bits, round to nearest even (as Math.fround then pack). */
export function f32ToF16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> signed zero
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return h;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** f32 -> bf16 bits, round to nearest even (NaN stays NaN). */
export function f32ToBf16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

/** Pack numbers into the storage bytes of `dtype` (into `into` when given: it must be long enough). */
export function encode(dtype: DType, values: ArrayLike<number>, into?: ArrayBuffer): ArrayBuffer {
  const n = values.length;
  const out = into ?? new ArrayBuffer(storageBytes(dtype, n));
  switch (dtype) {
    case 'f32': new Float32Array(out).set(values); break;
    case 'i32': new Int32Array(out).set(values); break;
    case 'u32': new Uint32Array(out).set(values); break;
    case 'f16': { const h = new Uint16Array(out); for (let i = 0; i < n; i++) h[i] = f32ToF16Bits(values[i]); break; }
    case 'bf16': { const h = new Uint16Array(out); for (let i = 0; i < n; i++) h[i] = f32ToBf16Bits(values[i]); break; }
  }
  return out;
}

/** Unpack storage bytes of `dtype` (n elements) into a typed array: Float32Array for floats. */
export function decode(dtype: DType, bytes: ArrayBuffer, n: number): Float32Array | Int32Array | Uint32Array {
  switch (dtype) {
    case 'f32': return new Float32Array(bytes, 0, n).slice();
    case 'i32': return new Int32Array(bytes, 0, n).slice();
    case 'u32': return new Uint32Array(bytes, 0, n).slice();
    case 'f16': { const h = new Uint16Array(bytes, 0, n); const o = new Float32Array(n); for (let i = 0; i < n; i++) o[i] = f16BitsToF32(h[i]); return o; }
    case 'bf16': { const h = new Uint16Array(bytes, 0, n); const o = new Float32Array(n); for (let i = 0; i < n; i++) o[i] = bf16BitsToF32(h[i]); return o; }
  }
}
