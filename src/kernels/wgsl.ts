// WGSL building blocks shared by every kernel: the uniform block, per-dtype element access and
// the math helpers named by the pointwise table (their AssemblyScript twins: assembly/common.ts).
import type { DType } from '../core/dtype.js';
import type { View } from '../backend/backend.js';

/** A uniform block of `words` u32 (readable as f32 through uf_). */
export const uniformBlock = (binding: number, words: number): string => `
struct Uniforms { w: array<vec4<u32>, ${Math.ceil(words / 4)}> };
@group(0) @binding(${binding}) var<uniform> U: Uniforms;
fn u_(i: u32) -> u32 { return U.w[i / 4u][i % 4u]; }
fn uf_(i: u32) -> f32 { return bitcast<f32>(u_(i)); }
fn ui_(i: u32) -> i32 { return bitcast<i32>(u_(i)); }`;

/** Whether a dtype is stored two to a u32 word in this shader (f16 without shader-f16, bf16 always). */
export const packed = (d: DType, nativeF16: boolean): boolean => d === 'bf16' || (d === 'f16' && !nativeF16);

export function wgslElem(d: DType, nativeF16: boolean): string {
  if (d === 'f32') return 'f32';
  if (d === 'i32') return 'i32';
  if (d === 'f16' && nativeF16) return 'f16';
  return 'u32';
}

/** fn NAME(i: u32) -> f32 reading element i of buffer BUF of dtype d. */
export function loadFn(name: string, buf: string, d: DType, nativeF16: boolean): string {
  let body: string;
  if (d === 'f32') body = `${buf}[i]`;
  else if (d === 'i32' || d === 'u32' || (d === 'f16' && nativeF16)) body = `f32(${buf}[i])`;
  else if (d === 'f16') body = `f16val_((${buf}[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu)`;
  else body = `bitcast<f32>(((${buf}[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu) << 16u)`;
  return `fn ${name}(i: u32) -> f32 { return ${body}; }`;
}

/** Converting f32 to a packed half's bits (low 16 bits of the result). */
export const packHalf = (d: DType, v: string): string => (d === 'f16' ? `f16bits_(${v})` : `bf16_(${v})`);

export const MATH = `
fn erf_(x: f32) -> f32 {
  let s = select(1.0, -1.0, x < 0.0);
  let ax = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * ax);
  let y = 1.0 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-ax * ax);
  return s * y;
}
fn sg_(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn pow_(x: f32, p: f32) -> f32 {
  if (p == 0.0) { return 1.0; }
  if (x >= 0.0 || floor(p) != p) { return exp2(p * log2(x)); } // 0^p: log2(0) = -inf gives 0 or inf
  let r = exp2(p * log2(-x));
  return select(r, -r, (i32(p) & 1) == 1);
}
fn gelu_tanh_grad_(x: f32) -> f32 {
  let k = 0.7978845608028654;
  let t = tanh(clamp(k * (x + 0.044715 * x * x * x), -15.0, 15.0));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 0.134145 * x * x);
}
// f32 <-> IEEE half by bit arithmetic, round to nearest even, exact for subnormals, inf and nan
// (WGSL leaves pack2x16float out of range and its denormal handling implementation-defined).
fn f16bits_(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  let sign = (x >> 16u) & 0x8000u;
  let e = i32((x >> 23u) & 0xffu);
  var m = x & 0x7fffffu;
  if (e == 255) { return sign | 0x7c00u | select(0u, 0x200u, m != 0u); }
  let he = e - 112;
  if (he >= 31) { return sign | 0x7c00u; }
  if (he <= 0) {
    if (he < -10) { return sign; }
    m = m | 0x800000u;
    let shift = u32(14 - he);
    var h = m >> shift;
    let rem = m & ((1u << shift) - 1u);
    let half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (h & 1u) == 1u)) { h += 1u; }
    return sign | h;
  }
  var h = sign | (u32(he) << 10u) | (m >> 13u);
  let rem = m & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) == 1u)) { h += 1u; }
  return h;
}
fn f16val_(h: u32) -> f32 {
  let sign = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  if (e == 0u) { let v = f32(m) * 5.960464477539063e-8; return select(v, -v, sign != 0u); }
  if (e == 31u) { return bitcast<f32>(sign | 0x7f800000u | (m << 13u)); }
  return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}
// sin and cos reduced to [-pi, pi] first, where WGSL's accuracy bound holds
fn sin_(x: f32) -> f32 { return sin(x - 6.283185307179586 * round(x * 0.15915494309189535)); }
fn cos_(x: f32) -> f32 { return cos(x - 6.283185307179586 * round(x * 0.15915494309189535)); }
fn bf16_(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  if ((x & 0x7fffffffu) > 0x7f800000u) { return (x >> 16u) | 0x40u; }
  return ((x + 0x7fffu + ((x >> 16u) & 1u)) >> 16u) & 0xffffu;
}`;

/** The linear workgroup index of a 2-D spread grid (see grid1d). */
export const GROUP_INDEX = 'let gi = wid.y * nwg.x + wid.x;';
export const MAIN_ARGS = '@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32';

/** dtype list of views, for variant keys. */
export const dtypesOf = (vs: readonly View[]): string => vs.map((v) => v.dtype).join(',');

/**
 * Workgroup tree reductions over `sh` (wg threads, all get the result): treeSum, and with
 * `max` also treeMax. Call them in uniform control flow (they contain barriers).
 */
export const workgroupReduce = (wg: number, max = false): string => `
var<workgroup> sh: array<f32, ${wg}>;
fn treeSum(lid: u32, v: f32) -> f32 {
  sh[lid] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { sh[lid] += sh[lid + s]; }
    workgroupBarrier();
  }
  let r = sh[0];
  workgroupBarrier();
  return r;
}${max ? `
fn treeMax(lid: u32, v: f32) -> f32 {
  sh[lid] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { sh[lid] = max(sh[lid], sh[lid + s]); }
    workgroupBarrier();
  }
  let r = sh[0];
  workgroupBarrier();
  return r;
}` : ''}`;
