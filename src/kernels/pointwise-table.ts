/**
 * The pointwise op table: one row per op, the WGSL and AssemblyScript expressions side by side.
 * Pure data (no imports): scripts/gen-assembly.mjs turns it into assembly/pointwise.gen.ts, and
 * kernels/pointwise.ts turns it into WGSL. Inputs are a, b, c; p0 and p1 are f32 uniforms.
 * Helpers used here (erf_, pow_) are defined once per language in both kernel preambles.
 */
export interface PointwiseRow {
  readonly code: number;
  readonly arity: 0 | 1 | 2 | 3;
  readonly wgsl: string;
  readonly as: string;
}

export const POINTWISE = {
  // arity 0
  fill: { code: 0, arity: 0, wgsl: 'p0', as: 'p0' },
  // arity 1
  identity: { code: 1, arity: 1, wgsl: 'a', as: 'a' },
  neg: { code: 2, arity: 1, wgsl: '-a', as: '-a' },
  exp: { code: 3, arity: 1, wgsl: 'exp(a)', as: 'Mathf.exp(a)' },
  log: { code: 4, arity: 1, wgsl: 'log(a)', as: 'Mathf.log(a)' },
  sqrt: { code: 5, arity: 1, wgsl: 'sqrt(a)', as: 'Mathf.sqrt(a)' },
  rsqrt: { code: 6, arity: 1, wgsl: '1.0 / sqrt(a)', as: 'f32(1) / Mathf.sqrt(a)' },
  abs: { code: 7, arity: 1, wgsl: 'abs(a)', as: 'Mathf.abs(a)' },
  // clamped: some tanh implementations overflow to NaN for |a| > ~44
  tanh: { code: 8, arity: 1, wgsl: 'tanh(clamp(a, -15.0, 15.0))', as: 'tanh_(a)' },
  sigmoid: { code: 9, arity: 1, wgsl: '1.0 / (1.0 + exp(-a))', as: 'f32(1) / (f32(1) + Mathf.exp(-a))' },
  relu: { code: 10, arity: 1, wgsl: 'max(a, 0.0)', as: 'max<f32>(a, 0)' },
  silu: { code: 11, arity: 1, wgsl: 'a / (1.0 + exp(-a))', as: 'a / (f32(1) + Mathf.exp(-a))' },
  geluTanh: { code: 12, arity: 1, wgsl: '0.5 * a * (1.0 + tanh(clamp(0.7978845608028654 * (a + 0.044715 * a * a * a), -15.0, 15.0)))', as: 'f32(0.5) * a * (f32(1) + tanh_(f32(0.7978845608028654) * (a + f32(0.044715) * a * a * a)))' },
  gelu: { code: 13, arity: 1, wgsl: '0.5 * a * (1.0 + erf_(a * 0.7071067811865476))', as: 'f32(0.5) * a * (f32(1) + erf_(a * f32(0.7071067811865476)))' },
  clamp: { code: 14, arity: 1, wgsl: 'min(max(a, p0), p1)', as: 'min<f32>(max<f32>(a, p0), p1)' },
  addScalar: { code: 15, arity: 1, wgsl: 'a + p0', as: 'a + p0' },
  mulScalar: { code: 16, arity: 1, wgsl: 'a * p0', as: 'a * p0' },
  powScalar: { code: 17, arity: 1, wgsl: 'pow_(a, p0)', as: 'pow_(a, p0)' },
  rsubScalar: { code: 18, arity: 1, wgsl: 'p0 - a', as: 'p0 - a' },
  rdivScalar: { code: 19, arity: 1, wgsl: 'p0 / a', as: 'p0 / a' },
  square: { code: 20, arity: 1, wgsl: 'a * a', as: 'a * a' },
  sign: { code: 21, arity: 1, wgsl: 'sign(a)', as: 'sign_(a)' },
  round: { code: 22, arity: 1, wgsl: 'round(a)', as: 'nearest<f32>(a)' }, // ties to even, as torch.round
  floor: { code: 23, arity: 1, wgsl: 'floor(a)', as: 'Mathf.floor(a)' },
  ceil: { code: 24, arity: 1, wgsl: 'ceil(a)', as: 'Mathf.ceil(a)' },
  sin: { code: 25, arity: 1, wgsl: 'sin_(a)', as: 'Mathf.sin(a)' },
  cos: { code: 26, arity: 1, wgsl: 'cos_(a)', as: 'Mathf.cos(a)' },
  gtScalar: { code: 27, arity: 1, wgsl: 'select(0.0, 1.0, a > p0)', as: 'a > p0 ? f32(1) : f32(0)' },
  ltScalar: { code: 28, arity: 1, wgsl: 'select(0.0, 1.0, a < p0)', as: 'a < p0 ? f32(1) : f32(0)' },
  eqScalar: { code: 29, arity: 1, wgsl: 'select(0.0, 1.0, a == p0)', as: 'a == p0 ? f32(1) : f32(0)' },
  // derivatives used by backward rules (d/da of the op named)
  sigmoidGrad: { code: 30, arity: 1, wgsl: 'sg_(a) * (1.0 - sg_(a))', as: 'sg_(a) * (f32(1) - sg_(a))' },
  siluGrad: { code: 31, arity: 1, wgsl: 'sg_(a) * (1.0 + a * (1.0 - sg_(a)))', as: 'sg_(a) * (f32(1) + a * (f32(1) - sg_(a)))' },
  tanhGrad: { code: 32, arity: 1, wgsl: '1.0 - tanh(clamp(a, -15.0, 15.0)) * tanh(clamp(a, -15.0, 15.0))', as: 'f32(1) - tanh_(a) * tanh_(a)' },
  geluTanhGrad: { code: 33, arity: 1, wgsl: 'gelu_tanh_grad_(a)', as: 'gelu_tanh_grad_(a)' },
  geluGrad: { code: 34, arity: 1, wgsl: '0.5 * (1.0 + erf_(a * 0.7071067811865476)) + a * 0.3989422804014327 * exp(-0.5 * a * a)', as: 'f32(0.5) * (f32(1) + erf_(a * f32(0.7071067811865476))) + a * f32(0.3989422804014327) * Mathf.exp(f32(-0.5) * a * a)' },
  clampMask: { code: 35, arity: 1, wgsl: 'select(0.0, 1.0, a >= p0 && a <= p1)', as: '(a >= p0 && a <= p1) ? f32(1) : f32(0)' },
  // arity 2
  add: { code: 40, arity: 2, wgsl: 'a + b', as: 'a + b' },
  sub: { code: 41, arity: 2, wgsl: 'a - b', as: 'a - b' },
  mul: { code: 42, arity: 2, wgsl: 'a * b', as: 'a * b' },
  div: { code: 43, arity: 2, wgsl: 'a / b', as: 'a / b' },
  pow: { code: 44, arity: 2, wgsl: 'pow_(a, b)', as: 'pow_(a, b)' },
  maximum: { code: 45, arity: 2, wgsl: 'max(a, b)', as: 'max<f32>(a, b)' },
  minimum: { code: 46, arity: 2, wgsl: 'min(a, b)', as: 'min<f32>(a, b)' },
  gt: { code: 47, arity: 2, wgsl: 'select(0.0, 1.0, a > b)', as: 'a > b ? f32(1) : f32(0)' },
  lt: { code: 48, arity: 2, wgsl: 'select(0.0, 1.0, a < b)', as: 'a < b ? f32(1) : f32(0)' },
  eq: { code: 49, arity: 2, wgsl: 'select(0.0, 1.0, a == b)', as: 'a == b ? f32(1) : f32(0)' },
  ge: { code: 50, arity: 2, wgsl: 'select(0.0, 1.0, a >= b)', as: 'a >= b ? f32(1) : f32(0)' },
  // d/da of pow(a, b) times nothing: b * a^(b-1)
  powGradBase: { code: 51, arity: 2, wgsl: 'b * pow_(a, b - 1.0)', as: 'b * pow_(a, b - f32(1))' },
  // SwiGLU's product, fused: silu(a) * b
  siluMul: { code: 52, arity: 2, wgsl: 'a / (1.0 + exp(-a)) * b', as: 'a / (f32(1) + Mathf.exp(-a)) * b' },
  // arity 3
  where: { code: 60, arity: 3, wgsl: 'select(c, b, a != 0.0)', as: 'a != f32(0) ? b : c' },
  addcmul: { code: 61, arity: 3, wgsl: 'a + p0 * b * c', as: 'a + p0 * b * c' },
} as const satisfies Record<string, PointwiseRow>;

export type PointwiseOp = keyof typeof POINTWISE;
