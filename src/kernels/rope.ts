// Rotary position embedding, fused: one thread per output element reads its dim and its pair's,
// and the cos / sin rows of its position id (the algorithm: assembly/rope.ts, the twin). A
// position id outside the tables writes zeros and raises the status word.
import * as L from '../../assembly/layout.js';
import { grid1d, type Kernel, type KernelCall, type View } from '../backend/backend.js';
import { GROUP_INDEX, MAIN_ARGS, uniformBlock } from './wgsl.js';

const WG = 256;

const wgsl = (): string => `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> CS: array<f32>;
@group(0) @binding(2) var<storage, read> SN: array<f32>;
@group(0) @binding(3) var<storage, read> P: array<i32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
${uniformBlock(5, L.RP_WORDS)}
@group(0) @binding(6) var<storage, read_write> status: array<atomic<u32>, 4>;
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let t = gi * ${WG}u + lid;
  let B = u_(${L.RP_B}u); let H = u_(${L.RP_H}u); let T = u_(${L.RP_T}u); let D = u_(${L.RP_D}u); let rd = u_(${L.RP_RD}u);
  if (t >= B * H * T * D) { return; }
  let d = t % D; let ti = (t / D) % T; let h = (t / (D * T)) % H; let b = t / (D * T * H);
  let row = u_(${L.RP_OFF_X}u) + b * u_(${L.RP_SX}u) + h * u_(${L.RP_SX + 1}u) + ti * u_(${L.RP_SX + 2}u);
  let s3 = u_(${L.RP_SX + 3}u);
  let v = X[row + d * s3];
  if (d >= rd) { Y[t] = v; return; }
  let pi = P[u_(${L.RP_OFF_P}u) + b * u_(${L.RP_SPB}u) + ti];
  if (pi < 0 || u32(pi) >= u_(${L.RP_NPOS}u)) { atomicMax(&status[0], ${L.ERR_INDEX}u); Y[t] = 0.0; return; }
  let p = u32(pi);
  let half = rd / 2u;
  let inter = u_(${L.RP_INTERLEAVED}u) != 0u;
  let partner = select(select(d - half, d + half, d < half), d ^ 1u, inter);
  let first = select(d < half, (d & 1u) == 0u, inter);
  let w = X[row + partner * s3];
  let r = select(w, -w, first);
  Y[t] = v * CS[p * rd + d] + uf_(${L.RP_SIGN}u) * r * SN[p * rd + d];
}`;

export const ropeKernel: Kernel = { name: 'rope', wgsl, wasm: 'rope', status: true };

/** y (B, H, T, D) contiguous = rope(x), x any (B, H, T, D) view; pos (B, T) or (T) i32 contiguous. */
export function ropeCall(x: View, cos: View, sin: View, pos: View, y: View, rd: number, interleaved: boolean, inverse: boolean): KernelCall {
  const [B, H, T, D] = x.shape;
  const u = new Uint32Array(L.RP_WORDS);
  const f = new Float32Array(u.buffer);
  u[L.RP_B] = B; u[L.RP_H] = H; u[L.RP_T] = T; u[L.RP_D] = D; u[L.RP_RD] = rd;
  u[L.RP_OFF_X] = x.offset; u.set(x.strides, L.RP_SX);
  u[L.RP_OFF_P] = pos.offset; u[L.RP_SPB] = pos.shape.length === 2 ? pos.strides[0] : 0;
  u[L.RP_INTERLEAVED] = interleaved ? 1 : 0; u[L.RP_NPOS] = cos.shape[0];
  f[L.RP_SIGN] = inverse ? -1 : 1;
  return { kernel: ropeKernel, variant: '', inputs: [x, cos, sin, pos], outputs: [y], uniforms: u, grid: grid1d(Math.ceil((B * H * T * D) / WG)), op: 'rope' };
}
