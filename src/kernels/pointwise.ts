// Pointwise kernels: one WGSL shader per (op, dtypes) generated from the table, every operand a
// strided view broadcast to the output's shape. AssemblyScript twin: assembly/pointwise.gen.ts.
import * as L from '../../assembly/layout.js';
import { dtypeCode, type DType } from '../core/dtype.js';
import { KilnError, fmtShape } from '../core/errors.js';
import { contiguousStrides, numel } from '../core/shape.js';
import { grid1d, type Kernel, type KernelCall, type KernelContext, type View } from '../backend/backend.js';
import { POINTWISE, type PointwiseOp } from './pointwise-table.js';
import { GROUP_INDEX, MAIN_ARGS, MATH, loadFn, packHalf, packed, uniformBlock, wgslElem } from './wgsl.js';

const WG = 256;

function wgsl(variant: string, ctx: KernelContext): string {
  const [op, dts] = variant.split('|');
  const [outDt, ...inDts] = dts.split(',') as DType[];
  const row = POINTWISE[op as PointwiseOp];
  const f16 = ctx.f16;
  const usesF16 = f16 && [outDt, ...inDts].includes('f16');
  const vars = ['a', 'b', 'c'];
  const bindings = inDts.map((d, i) => `@group(0) @binding(${i}) var<storage, read> in${i}: array<${wgslElem(d, f16)}>;`);
  const loads = inDts.map((d, i) => loadFn(`ld${i}`, `in${i}`, d, f16));
  const args = vars.map((_, i) => (i < inDts.length ? `ld${i}(o[${i + 1}])` : '0.0'));
  const args1 = vars.map((_, i) => (i < inDts.length ? `ld${i}(o1[${i + 1}])` : '0.0'));
  const outPacked = packed(outDt, f16);
  const store = (v: string): string =>
    outDt === 'f32' ? `out[o.x] = ${v};` : outDt === 'i32' ? `out[o.x] = i32(${v});` : outDt === 'u32' ? `out[o.x] = u32(${v});` : `out[o.x] = half_(${v});`;
  const body = outPacked
    ? `let i = t * 2u;
  if (i >= n) { return; }
  let o = offs(i);
  let v0 = f(${args.join(', ')}, p0, p1);
  var v1 = 0.0;
  if (i + 1u < n) { let o1 = offs(i + 1u); v1 = f(${args1.join(', ')}, p0, p1); }
  out[o.x >> 1u] = ${packHalf(outDt, 'v0')} | (${packHalf(outDt, 'v1')} << 16u);`
    : `let i = t;
  if (i >= n) { return; }
  let o = offs(i);
  ${store(`f(${args.join(', ')}, p0, p1)`)}`;
  return `${usesF16 ? 'enable f16;' : ''}
${bindings.join('\n')}
@group(0) @binding(${inDts.length}) var<storage, read_write> out: array<${wgslElem(outDt, f16)}>;
${uniformBlock(inDts.length + 1, L.PW_WORDS)}
${MATH}
${loads.join('\n')}
${usesF16 ? '// round once by the shared bit routine (exact, inf on overflow); the f16() of that value is exact\nfn half_(v: f32) -> f16 { return f16(f16val_(f16bits_(v))); }' : ''}
// element offsets of (out, in0, in1, in2) for flat output index i
fn offs(i: u32) -> vec4<u32> {
  let base = vec4<u32>(u_(${L.PW_OFF}u), u_(${L.PW_OFF + 1}u), u_(${L.PW_OFF + 2}u), u_(${L.PW_OFF + 3}u));
  if (u_(${L.PW_FAST}u) == 1u) { return base + vec4<u32>(i); }
  var o = base;
  var rem = i;
  for (var d = i32(u_(${L.PW_RANK}u)) - 1; d >= 0; d--) {
    let s = u_(${L.PW_SHAPE}u + u32(d));
    let k = rem % s;
    rem = rem / s;
    o += k * vec4<u32>(u_(${L.PW_STRIDES}u + u32(d)), u_(${L.PW_STRIDES + L.MAX_RANK}u + u32(d)), u_(${L.PW_STRIDES + 2 * L.MAX_RANK}u + u32(d)), u_(${L.PW_STRIDES + 3 * L.MAX_RANK}u + u32(d)));
  }
  return o;
}
fn f(a: f32, b: f32, c: f32, p0: f32, p1: f32) -> f32 { return ${row.wgsl}; }
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let t = gi * ${WG}u + lid;
  let n = u_(${L.PW_N}u);
  let p0 = uf_(${L.PW_P0}u);
  let p1 = uf_(${L.PW_P1}u);
  ${body}
}`;
}

export const pointwiseKernel: Kernel = { name: 'pointwise', wgsl, wasm: 'pointwise', wasmInputs: 3 };

/** Merges adjacent dims that are contiguous with each other in every operand. */
function collapse(shape: readonly number[], strides: number[][]): { shape: number[]; strides: number[][] } {
  const s: number[] = [];
  const st: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = s.length - 1;
    if (last >= 0 && strides.every((x, k) => st[k][last] === x[d] * shape[d])) {
      s[last] *= shape[d];
      strides.forEach((x, k) => (st[k][last] = x[d]));
    } else {
      s.push(shape[d]);
      strides.forEach((x, k) => st[k].push(x[d]));
    }
  }
  return { shape: s, strides: st };
}

/**
 * out = op(ins...) elementwise. Every input view already has the output's shape (broadcast
 * dims carry stride 0). p0, p1: the op's scalar parameters.
 */
export function pointwiseCall(op: PointwiseOp, out: View, ins: readonly View[], p0 = 0, p1 = 0, ctx?: KernelContext): KernelCall {
  const row = POINTWISE[op];
  if (ins.length !== row.arity) throw new KilnError('argument', op, `expects ${row.arity} inputs, got ${ins.length}`);
  const n = numel(out.shape);
  const views = [out, ...ins];
  const c = collapse(out.shape, views.map((v) => [...v.strides]));
  if (c.shape.length > L.MAX_RANK) {
    throw new KilnError('shape', op, `a strided view of shape ${fmtShape(out.shape)} needs more than ${L.MAX_RANK} dims; call contiguous() first`);
  }
  const f16 = ctx?.f16 ?? false;
  if (packed(out.dtype, f16) && (out.offset % 2 !== 0 || c.shape.length > 1 || (c.shape.length === 1 && c.strides[0][0] !== 1))) {
    throw new KilnError('dtype', op, `a ${out.dtype} output must be contiguous and word-aligned`);
  }
  const u = new Uint32Array(L.PW_WORDS);
  const uf = new Float32Array(u.buffer);
  u[L.PW_N] = n;
  u[L.PW_RANK] = c.shape.length;
  u[L.PW_OP] = row.code;
  const cs = contiguousStrides(c.shape);
  u[L.PW_FAST] = views.every((v, k) => v.dtype === 'f32' && c.strides[k].every((s, d) => s === cs[d])) ? 1 : 0;
  views.forEach((v, k) => {
    u[L.PW_OFF + k] = v.offset;
    u[L.PW_DT + k] = dtypeCode(v.dtype);
    c.strides[k].forEach((s, d) => (u[L.PW_STRIDES + k * L.MAX_RANK + d] = s));
  });
  c.shape.forEach((s, d) => (u[L.PW_SHAPE + d] = s));
  uf[L.PW_P0] = p0;
  uf[L.PW_P1] = p1;
  const threads = packed(out.dtype, f16) ? Math.ceil(n / 2) : n;
  return {
    kernel: pointwiseKernel,
    variant: `${op}|${views.map((v) => v.dtype).join(',')}`,
    inputs: ins,
    outputs: [out],
    uniforms: u,
    grid: grid1d(Math.ceil(threads / WG)),
    op,
  };
}
