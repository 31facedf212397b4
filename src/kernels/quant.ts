// Matmul against Q8_0 / Q4_0 weights, dequantized on the fly (see assembly/quant.ts, the twin):
// one thread per output; each 32-element block's integers are unpacked (int8 with sign
// extension, or nibbles minus 8), dotted with x, and scaled once per block.
import * as L from '../../assembly/layout.js';
import { grid1d, type Kernel, type KernelCall, type View } from '../backend/backend.js';
import { GROUP_INDEX, MAIN_ARGS, uniformBlock } from './wgsl.js';

const WG = 64;

/**
 * One thread per output: y[m, n] = sum over blocks of scale * (x[m, block] . the block's integers).
 * `words`: u32 words of integers per block; `body`: WGSL adding one word's products to s.
 */
function kernel(words: number, body: string): string {
  return `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> QS: array<u32>;
@group(0) @binding(2) var<storage, read> SC: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
${uniformBlock(4, L.QM_WORDS)}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let t = gi * ${WG}u + lid;
  let M = u_(${L.QM_M}u); let N = u_(${L.QM_N}u); let K = u_(${L.QM_K}u);
  if (t >= M * N) { return; }
  let m = t / N; let n = t % N;
  let xb = u_(${L.QM_OFF_X}u) + m * K;
  let nb = K / 32u;
  let qb = n * nb * ${words}u;
  var acc = 0.0;
  for (var b = 0u; b < nb; b++) {
    var s = 0.0;
    let k = xb + b * 32u;
    for (var w = 0u; w < ${words}u; w++) {
      let q = QS[qb + b * ${words}u + w];
      ${body}
    }
    acc += s * SC[n * nb + b];
  }
  Y[t] = acc;
}`;
}

// Q8_0: 8 words of four int8 per block (sign-extended out of the u32)
const wgsl8 = (): string =>
  kernel(8, `let qi = bitcast<i32>(q); let j = k + w * 4u;
      s += f32(extractBits(qi, 0u, 8u)) * X[j] + f32(extractBits(qi, 8u, 8u)) * X[j + 1u]
         + f32(extractBits(qi, 16u, 8u)) * X[j + 2u] + f32(extractBits(qi, 24u, 8u)) * X[j + 3u];`);

// Q4_0 (llama.cpp's layout): 4 words per block, byte j holding elements j and j + 16
const wgsl4 = (): string =>
  kernel(4, `for (var i = 0u; i < 4u; i++) {
        let v = (q >> (i * 8u)) & 255u; let j = w * 4u + i;
        s += (f32(v & 15u) - 8.0) * X[k + j] + (f32(v >> 4u) - 8.0) * X[k + j + 16u];
      }`);

export const qmatmul8Kernel: Kernel = { name: 'qmatmul8', wgsl: wgsl8, wasm: 'qmatmul8' };
export const qmatmul4Kernel: Kernel = { name: 'qmatmul4', wgsl: wgsl4, wasm: 'qmatmul4' };

function call(kernel: Kernel, x: View, qs: View, scales: View, y: View, M: number, N: number, K: number): KernelCall {
  const u = new Uint32Array(L.QM_WORDS);
  u[L.QM_M] = M; u[L.QM_N] = N; u[L.QM_K] = K; u[L.QM_OFF_X] = x.offset;
  return { kernel, variant: '', inputs: [x, qs, scales], outputs: [y], uniforms: u, grid: grid1d(Math.ceil((M * N) / WG)), op: 'qlinear' };
}

/** y (M, N) = x (M, K) @ dequant(W (N, K))^T; x contiguous rows (any offset), qs and scales contiguous. */
export const qmatmul8Call = (x: View, qs: View, scales: View, y: View, M: number, N: number, K: number): KernelCall => call(qmatmul8Kernel, x, qs, scales, y, M, N, K);
export const qmatmul4Call = (x: View, qs: View, scales: View, y: View, M: number, N: number, K: number): KernelCall => call(qmatmul4Kernel, x, qs, scales, y, M, N, K);
