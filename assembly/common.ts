// Helpers shared by the AssemblyScript kernels: dtype loads/stores and the math functions that
// the pointwise table names (their WGSL twins are in src/kernels/wgsl.ts).

@inline export function uw(u: usize, i: i32): u32 { return load<u32>(u + (<usize>i << 2)); }
@inline export function uf(u: usize, i: i32): f32 { return load<f32>(u + (<usize>i << 2)); }

export function f16ToF32(h: u32): f32 {
  const sign: u32 = (h & 0x8000) << 16;
  const e: u32 = (h >> 10) & 0x1f;
  const m: u32 = h & 0x3ff;
  if (e == 0) {
    const v = <f32>m * f32(5.960464477539063e-8); // 2^-24
    return sign ? -v : v;
  }
  if (e == 0x1f) return reinterpret<f32>(sign | 0x7f800000 | (m << 13));
  return reinterpret<f32>(sign | ((e + 112) << 23) | (m << 13));
}

export function f32ToF16(v: f32): u32 {
  const x = reinterpret<u32>(v);
  const sign = (x >> 16) & 0x8000;
  const exp = <i32>((x >> 23) & 0xff);
  let mant = x & 0x7fffff;
  if (exp == 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = <u32>(14 - e);
    let h = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const half: u32 = 1 << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return sign | h;
  }
  let h = sign | (<u32>e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return h;
}

export function f32ToBf16(v: f32): u32 {
  const x = reinterpret<u32>(v);
  if ((x & 0x7fffffff) > 0x7f800000) return (x >> 16) | 0x40;
  return ((x + 0x7fff + ((x >> 16) & 1)) >> 16) & 0xffff;
}

/** Load element i of a tensor of dtype code dt (0 f32, 1 f16, 2 bf16, 3 i32, 4 u32) as f32. */
@inline export function ld(p: usize, dt: u32, i: u32): f32 {
  if (dt == 0) return load<f32>(p + (<usize>i << 2));
  if (dt == 1) return f16ToF32(<u32>load<u16>(p + (<usize>i << 1)));
  if (dt == 2) return reinterpret<f32>(<u32>load<u16>(p + (<usize>i << 1)) << 16);
  if (dt == 3) return <f32>load<i32>(p + (<usize>i << 2));
  return <f32>load<u32>(p + (<usize>i << 2));
}

@inline export function st(p: usize, dt: u32, i: u32, v: f32): void {
  if (dt == 0) store<f32>(p + (<usize>i << 2), v);
  else if (dt == 1) store<u16>(p + (<usize>i << 1), <u16>f32ToF16(v));
  else if (dt == 2) store<u16>(p + (<usize>i << 1), <u16>f32ToBf16(v));
  else if (dt == 3) store<i32>(p + (<usize>i << 2), <i32>v);
  else store<u32>(p + (<usize>i << 2), <u32>v);
}

// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), the same formula as the WGSL erf_.
export function erf_(x: f32): f32 {
  const s: f32 = x < 0 ? -1 : 1;
  const ax = Mathf.abs(x);
  const t = f32(1) / (f32(1) + f32(0.3275911) * ax);
  const y = f32(1) - ((((f32(1.061405429) * t - f32(1.453152027)) * t + f32(1.421413741)) * t - f32(0.284496736)) * t + f32(0.254829592)) * t * Mathf.exp(-ax * ax);
  return s * y;
}

export function tanh_(x: f32): f32 {
  const c = min<f32>(max<f32>(x, -15), 15);
  const e = Mathf.exp(f32(2) * c);
  return (e - f32(1)) / (e + f32(1));
}

@inline export function sg_(x: f32): f32 { return f32(1) / (f32(1) + Mathf.exp(-x)); }

@inline export function sign_(x: f32): f32 { return x > 0 ? f32(1) : x < 0 ? f32(-1) : f32(0); }

/** x^p with torch semantics for negative bases and integer exponents. */
export function pow_(x: f32, p: f32): f32 {
  if (x >= 0 || Mathf.floor(p) != p) return Mathf.pow(x, p);
  const r = Mathf.pow(-x, p);
  return (<i64>p) & 1 ? -r : r;
}

export function gelu_tanh_grad_(x: f32): f32 {
  const k = f32(0.7978845608028654);
  const inner = k * (x + f32(0.044715) * x * x * x);
  const t = tanh_(inner);
  return f32(0.5) * (f32(1) + t) + f32(0.5) * x * (f32(1) - t * t) * k * (f32(1) + f32(0.134145) * x * x);
}
