// Matmul against quantized weights, dequantized on the fly (see assembly/quant.ts, the twin, for
// the four block layouts): one thread per output; each block's integers are unpacked from u32
// words (int8 with sign extension, nibbles, or Q6_K's nibble plus 2-bit pair), dotted with x, and
// scaled once per block or sub-block.
import * as L from '../../assembly/layout.js';
import { grid1d, type Kernel, type KernelCall, type KernelContext, type View } from '../backend/backend.js';
import { GROUP_INDEX, MAIN_ARGS, uniformBlock } from './wgsl.js';

const WG = 64;

/** Byte i of the words starting at w. */
const QBYTE = 'fn qbyte(w: u32, i: u32) -> u32 { return (QS[w + i / 4u] >> ((i % 4u) * 8u)) & 255u; }';

/** Bindings of the matmuls. */
const HEADER = `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> QS: array<u32>;
@group(0) @binding(2) var<storage, read> SC: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
${uniformBlock(4, L.QM_WORDS)}
${QBYTE}`;

/** The frame: thread t computes y[m, n] into acc; `body` loops over row n's nb blocks. */
function kernel(blockK: number, body: string): string {
  return `
${HEADER}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let t = gi * ${WG}u + lid;
  let M = u_(${L.QM_M}u); let N = u_(${L.QM_N}u); let K = u_(${L.QM_K}u);
  if (t >= M * N) { return; }
  let m = t / N; let n = t % N;
  let xb = u_(${L.QM_OFF_X}u) + m * K;
  let nb = K / ${blockK}u;
  var acc = 0.0;
  for (var b = 0u; b < nb; b++) {
    let k = xb + b * ${blockK}u;
    ${body}
  }
  Y[t] = acc;
}`;
}

// Q8_0: 8 words of four int8 per block (sign-extended out of the u32)
const wgsl8 = (): string =>
  kernel(32, `var s = 0.0;
    for (var w = 0u; w < 8u; w++) {
      let qi = bitcast<i32>(QS[(n * nb + b) * 8u + w]); let j = k + w * 4u;
      s += f32(extractBits(qi, 0u, 8u)) * X[j] + f32(extractBits(qi, 8u, 8u)) * X[j + 1u]
         + f32(extractBits(qi, 16u, 8u)) * X[j + 2u] + f32(extractBits(qi, 24u, 8u)) * X[j + 3u];
    }
    acc += s * SC[n * nb + b];`);

// Q4_0 (llama.cpp's layout): 4 words per block, byte j holding elements j and j + 16
const wgsl4 = (): string =>
  kernel(32, `var s = 0.0;
    for (var w = 0u; w < 4u; w++) {
      let q = QS[(n * nb + b) * 4u + w];
      for (var i = 0u; i < 4u; i++) {
        let v = (q >> (i * 8u)) & 255u; let j = w * 4u + i;
        s += (f32(v & 15u) - 8.0) * X[k + j] + (f32(v >> 4u) - 8.0) * X[k + j + 16u];
      }
    }
    acc += s * SC[n * nb + b];`);

// Q4_K: 36 words per super-block (8 scale bytes, 8 min bytes, 128 bytes of nibbles); SC: d, dmin.
// Bytes 32c..32c+31 hold sub-block 2c (low nibbles) and 2c+1 (high): w = d*scale*q - dmin*min.
const wgslQ4K = (): string =>
  kernel(256, `let base = (n * nb + b) * 36u;
    let d = SC[(n * nb + b) * 2u]; let dmin = SC[(n * nb + b) * 2u + 1u];
    for (var c = 0u; c < 4u; c++) {
      var s0 = 0.0; var s1 = 0.0; var x0 = 0.0; var x1 = 0.0;
      for (var w = 0u; w < 8u; w++) {
        let q = QS[base + 4u + c * 8u + w];
        for (var i = 0u; i < 4u; i++) {
          let v = (q >> (i * 8u)) & 255u; let j = k + c * 64u + w * 4u + i;
          let xa = X[j]; let xh = X[j + 32u];
          s0 += f32(v & 15u) * xa; s1 += f32(v >> 4u) * xh; x0 += xa; x1 += xh;
        }
      }
      acc += d * (f32(qbyte(base, 2u * c)) * s0 + f32(qbyte(base, 2u * c + 1u)) * s1)
           - dmin * (f32(qbyte(base + 2u, 2u * c)) * x0 + f32(qbyte(base + 2u, 2u * c + 1u)) * x1);
    }`);

// Q6_K: 52 words per super-block (128 bytes ql, 64 bytes qh, 16 int8 scales); SC: d.
// Sub-block s of each half of 128: nibbles of ql (low for s < 2) plus bits 2s of qh, minus 32;
// one scale per 16 weights.
const wgslQ6K = (): string =>
  kernel(256, `let base = (n * nb + b) * 52u;
    let d = SC[n * nb + b];
    for (var half = 0u; half < 2u; half++) {
      for (var s = 0u; s < 4u; s++) {
        for (var part = 0u; part < 2u; part++) {
          var t = 0.0;
          for (var w = 0u; w < 4u; w++) {
            let l = part * 16u + w * 4u;
            let qlw = QS[base + half * 16u + (s & 1u) * 8u + l / 4u];
            let qhw = QS[base + 32u + half * 8u + l / 4u];
            for (var i = 0u; i < 4u; i++) {
              let lv = (qlw >> (i * 8u)) & 255u;
              let nib = select(lv & 15u, lv >> 4u, s >= 2u);
              let q = i32(nib | (((qhw >> (i * 8u + 2u * s)) & 3u) << 4u)) - 32;
              t += f32(q) * X[k + half * 128u + s * 32u + l + i];
            }
          }
          let si = half * 8u + 2u * s + part;
          acc += d * f32(extractBits(bitcast<i32>(QS[base + 48u + si / 4u]), (si % 4u) * 8u, 8u)) * t;
        }
      }
    }`);

// The GPU schedule: a workgroup per weight row whose threads stride along the row's words
// together (coalesced), each word giving one or two runs of four consecutive weights (g0, g1:
// values and their first column), dotted with up to four rows of x; then summed across the
// workgroup. CPU adapters keep the thread-per-output frame above (no barriers).
const CW = 64; // threads
const CR = 4; // rows of x per workgroup (grid z covers the rest)
const WORD: Record<string, { words: string; body: string; two: boolean }> = {
  q8_0: {
    words: 'K / 4u',
    two: false,
    body: `let q = bitcast<i32>(QS[n * WR + w]); let s = SC[n * (K / 32u) + w / 8u];
      let g0v = s * vec4<f32>(f32(extractBits(q, 0u, 8u)), f32(extractBits(q, 8u, 8u)), f32(extractBits(q, 16u, 8u)), f32(extractBits(q, 24u, 8u)));
      let g0k = w * 4u;`,
  },
  q4_0: {
    words: 'K / 8u',
    two: true,
    body: `let q = QS[n * WR + w]; let s = SC[n * (K / 32u) + w / 4u];
      let g0v = s * (nib(q, 0u) - 8.0); let g1v = s * (nib(q, 4u) - 8.0);
      let g0k = (w / 4u) * 32u + (w % 4u) * 4u; let g1k = g0k + 16u;`,
  },
  q4_k: {
    words: 'K / 8u',
    two: true,
    body: `let sb = w / 32u; let wi = w % 32u; let c = wi / 8u;
      let blk = n * (K / 256u) + sb; let base = blk * 36u;
      let d = SC[2u * blk]; let dmin = SC[2u * blk + 1u];
      let q = QS[base + 4u + wi];
      let g0v = d * f32(qbyte(base, 2u * c)) * nib(q, 0u) - dmin * f32(qbyte(base + 2u, 2u * c));
      let g1v = d * f32(qbyte(base, 2u * c + 1u)) * nib(q, 4u) - dmin * f32(qbyte(base + 2u, 2u * c + 1u));
      let g0k = sb * 256u + c * 64u + (wi % 8u) * 4u; let g1k = g0k + 32u;`,
  },
  q6_k: {
    words: 'K / 8u',
    two: true,
    body: `let sb = w / 32u; let wi = w % 32u; let half = wi / 16u; let wq = wi % 16u; let s1 = wq / 8u; let l0 = (wq % 8u) * 4u;
      let blk = n * (K / 256u) + sb; let base = blk * 52u;
      let d = SC[blk];
      let ql = QS[base + half * 16u + wq]; let qh = QS[base + 32u + half * 8u + wq % 8u];
      let lo = vec4<f32>(q6(ql, qh, 0u, 2u * s1), q6(ql, qh, 1u, 2u * s1), q6(ql, qh, 2u, 2u * s1), q6(ql, qh, 3u, 2u * s1));
      let hi = vec4<f32>(q6(ql >> 4u, qh, 0u, 2u * s1 + 4u), q6(ql >> 4u, qh, 1u, 2u * s1 + 4u), q6(ql >> 4u, qh, 2u, 2u * s1 + 4u), q6(ql >> 4u, qh, 3u, 2u * s1 + 4u));
      let i0 = half * 8u + 2u * s1 + l0 / 16u; let i1 = i0 + 4u;
      let g0v = d * f32(extractBits(bitcast<i32>(QS[base + 48u + i0 / 4u]), (i0 % 4u) * 8u, 8u)) * lo;
      let g1v = d * f32(extractBits(bitcast<i32>(QS[base + 48u + i1 / 4u]), (i1 % 4u) * 8u, 8u)) * hi;
      let g0k = sb * 256u + half * 128u + s1 * 32u + l0; let g1k = g0k + 64u;`,
  },
};

function coopWgsl(type: string): string {
  const t = WORD[type];
  const rows = [...Array(CR).keys()];
  const dot = (g: string, r: number) => `dot(${g}v, vec4<f32>(X[xr${r} + ${g}k], X[xr${r} + ${g}k + 1u], X[xr${r} + ${g}k + 2u], X[xr${r} + ${g}k + 3u]))`;
  return `
${HEADER}
var<workgroup> red: array<f32, ${CW * CR}>;
// the four low (sh 0) or high (sh 4) nibbles of a word
fn nib(q: u32, sh: u32) -> vec4<f32> { return vec4<f32>(f32((q >> sh) & 15u), f32((q >> (sh + 8u)) & 15u), f32((q >> (sh + 16u)) & 15u), f32((q >> (sh + 24u)) & 15u)); }
// Q6_K: byte i's nibble (of ql, pre-shifted) with its two high bits from qh (at bit 8i + hs), minus 32
fn q6(ql: u32, qh: u32, i: u32, hs: u32) -> f32 { return f32(i32(((ql >> (8u * i)) & 15u) | (((qh >> (8u * i + hs)) & 3u) << 4u)) - 32); }
@compute @workgroup_size(${CW})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let M = u_(${L.QM_M}u); let N = u_(${L.QM_N}u); let K = u_(${L.QM_K}u);
  let n = wid.y * nwg.x + wid.x;
  let m0 = wid.z * ${CR}u;
  let live = n < N;
  let nn = min(n, N - 1u); // out-of-range groups read row N - 1 and store nothing
  let WR = ${t.words};
  ${rows.map((r) => `var a${r} = 0.0; let xr${r} = u_(${L.QM_OFF_X}u) + min(m0 + ${r}u, M - 1u) * K;`).join('\n  ')}
  for (var w = lid; w < WR; w += ${CW}u) {
      let n = nn;
      ${t.body}
${rows.map((r) => `      a${r} += ${dot('g0', r)}${t.two ? ` + ${dot('g1', r)}` : ''};`).join('\n')}
  }
  ${rows.map((r) => `red[${r}u * ${CW}u + lid] = a${r};`).join(' ')}
  workgroupBarrier();
  for (var s = ${CW / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { for (var r = 0u; r < ${CR}u; r++) { red[r * ${CW}u + lid] += red[r * ${CW}u + lid + s]; } }
    workgroupBarrier();
  }
  if (live && lid < ${CR}u && m0 + lid < M) { Y[(m0 + lid) * N + n] = red[lid * ${CW}u]; }
}`;
}

const pick = (frame: () => string, type: string) => (variant: string): string => (variant === 'coop' ? coopWgsl(type) : frame());
export const qmatmul8Kernel: Kernel = { name: 'qmatmul8', wgsl: pick(wgsl8, 'q8_0'), wasm: 'qmatmul8' };
export const qmatmul4Kernel: Kernel = { name: 'qmatmul4', wgsl: pick(wgsl4, 'q4_0'), wasm: 'qmatmul4' };
export const qmatmulQ4KKernel: Kernel = { name: 'qmatmulQ4K', wgsl: pick(wgslQ4K, 'q4_k'), wasm: 'qmatmulQ4K' };
export const qmatmulQ6KKernel: Kernel = { name: 'qmatmulQ6K', wgsl: pick(wgslQ6K, 'q6_k'), wasm: 'qmatmulQ6K' };

/** The WGSL expression for weight (n, k) of format `type`, as assembly/quant.ts's element(). */
const ELEMENT: Record<string, string> = {
  q8_0: `let b = n * (K / 32u) + k / 32u;
    return SC[b] * f32(extractBits(bitcast<i32>(QS[b * 8u + (k % 32u) / 4u]), (k % 4u) * 8u, 8u));`,
  q4_0: `let b = n * (K / 32u) + k / 32u; let j = k % 32u;
    let v = qbyte(b * 4u, j % 16u);
    return SC[b] * (f32(select(v >> 4u, v & 15u, j < 16u)) - 8.0);`,
  q4_k: `let b = n * (K / 256u) + k / 256u; let e = k % 256u;
    let c = e / 64u; let h = (e / 32u) % 2u; let sub = 2u * c + h;
    let v = qbyte(b * 36u + 4u, c * 32u + e % 32u);
    return SC[2u * b] * f32(qbyte(b * 36u, sub)) * f32(select(v & 15u, v >> 4u, h == 1u)) - SC[2u * b + 1u] * f32(qbyte(b * 36u + 2u, sub));`,
  q6_k: `let b = n * (K / 256u) + k / 256u; let e = k % 256u;
    let half = e / 128u; let s = (e / 32u) % 4u; let l = e % 32u;
    let lv = qbyte(b * 52u, half * 64u + (s % 2u) * 32u + l);
    let q = i32(select(lv & 15u, lv >> 4u, s >= 2u) | (((qbyte(b * 52u + 32u, half * 32u + l) >> (2u * s)) & 3u) << 4u)) - 32;
    let si = half * 8u + 2u * s + l / 16u;
    return SC[b] * f32(extractBits(bitcast<i32>(QS[b * 52u + 48u + si / 4u]), (si % 4u) * 8u, 8u)) * f32(q);`,
};

const dequantWgsl = (type: string): string => `
@group(0) @binding(0) var<storage, read> QS: array<u32>;
@group(0) @binding(1) var<storage, read> SC: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${uniformBlock(3, L.QM_WORDS)}
${QBYTE}
fn element(n: u32, k: u32, K: u32) -> f32 {
  ${ELEMENT[type]}
}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let t = gi * ${WG}u + lid;
  let N = u_(${L.QM_N}u); let K = u_(${L.QM_K}u);
  if (t >= N * K) { return; }
  Y[t] = element(t / K, t % K, K);
}`;

export const qdequantKernel: Kernel = { name: 'qdequant', wgsl: dequantWgsl, wasm: 'qdequant' };

/** y (N, K) f32 = dequant(W); `type` one of QMATMUL's keys. */
export function qdequantCall(type: keyof typeof QMATMUL, qs: View, scales: View, y: View, N: number, K: number): KernelCall {
  const u = new Uint32Array(L.QM_WORDS);
  u[L.QM_N] = N; u[L.QM_K] = K; u[L.QM_TYPE] = Object.keys(QMATMUL).indexOf(type);
  return { kernel: qdequantKernel, variant: type, inputs: [qs, scales], outputs: [y], uniforms: u, grid: grid1d(Math.ceil((N * K) / WG)), op: 'dequantize' };
}

/** The kernel for each kept format. */
export const QMATMUL = { q8_0: qmatmul8Kernel, q4_0: qmatmul4Kernel, q4_k: qmatmulQ4KKernel, q6_k: qmatmulQ6KKernel } as const;

/**
 * y (M, N) = x (M, K) @ dequant(W (N, K))^T; x contiguous rows (any offset), qs and scales
 * contiguous. GPUs get the cooperative schedule, CPUs (and CPU adapters) a thread per output.
 */
export function qmatmulCall(kernel: Kernel, x: View, qs: View, scales: View, y: View, M: number, N: number, K: number, ctx: KernelContext): KernelCall {
  const u = new Uint32Array(L.QM_WORDS);
  u[L.QM_M] = M; u[L.QM_N] = N; u[L.QM_K] = K; u[L.QM_OFF_X] = x.offset;
  if (!ctx.cpu) {
    const [gx, gy] = grid1d(N);
    return { kernel, variant: 'coop', inputs: [x, qs, scales], outputs: [y], uniforms: u, grid: [gx, gy, Math.ceil(M / CR)], op: 'qlinear' };
  }
  return { kernel, variant: '', inputs: [x, qs, scales], outputs: [y], uniforms: u, grid: grid1d(Math.ceil((M * N) / WG)), op: 'qlinear' };
}
