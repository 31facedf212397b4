// Quantized weights for inference, kept quantized on the device and dequantized inside the matmul
// (kernels/quant.ts, assembly/quant.ts), in llama.cpp's formats: Q8_0 (blocks of 32 int8, 9 bits a
// weight here) and Q4_0 (32 nibbles, 5 bits), which can also be made from float weights at load
// time, and GGUF's k-quants Q4_K (4.75 bits) and Q6_K (6.6 bits), repacked as the file has them.
import { noGrad, record } from '../core/autograd.js';
import { matmul } from '../core/ops/matmul.js';
import { KilnError, fmtShape } from '../core/errors.js';
import { fromValues } from '../core/ops/creation.js';
import { add, cast } from '../core/ops/pointwise.js';
import { contiguous, reshape, transpose } from '../core/ops/shape.js';
import { disposeTemps } from '../core/ops/util.js';
import { Tensor } from '../core/tensor.js';
import { f16BitsToF32 } from '../core/dtype.js';
import type { Backend } from '../backend/backend.js';
import { QMATMUL, qdequantCall, qmatmulCall } from '../kernels/quant.js';

/** The formats kept quantized: the first two can be made at load time, all four read from GGUF. */
export type QuantType = 'q8_0' | 'q4_0' | 'q4_k' | 'q6_k';

export interface QWeight {
  type: QuantType;
  /** (N, words) i32: the blocks' integers, per row (layouts: assembly/quant.ts) */
  qs: Tensor;
  /** (N, scales) f32: per block (Q4_K: d and dmin per super-block) */
  scales: Tensor;
  N: number;
  K: number;
}

/** Quantizes a row-major (N, K) f32 matrix to Q8_0 (scale = max |x| / 127 per block of 32). */
export function quantizeQ8(values: Float32Array, N: number, K: number): { qs: Int32Array; scales: Float32Array } {
  if (K % 32 !== 0) throw new KilnError('shape', 'quantizeQ8', `rows of ${K} are not whole blocks of 32`);
  const nb = K / 32;
  const q = new Int8Array(N * K);
  const scales = new Float32Array(N * nb);
  for (let b = 0; b < N * nb; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(values[b * 32 + j]));
    const d = amax / 127;
    scales[b] = d;
    const inv = d ? 1 / d : 0;
    for (let j = 0; j < 32; j++) q[b * 32 + j] = Math.round(values[b * 32 + j] * inv);
  }
  return { qs: new Int32Array(q.buffer), scales };
}

export function qWeight(p: { qs: Int32Array; scales: Float32Array }, N: number, K: number, backend?: Backend, type: QuantType = 'q8_0'): QWeight {
  const { words, scales } = qRowSizes(type, K);
  return {
    type,
    qs: fromValues(p.qs, [N, words], { backend, dtype: 'i32' }),
    scales: fromValues(p.scales, [N, scales], { backend }),
    N,
    K,
  };
}

/** Quantizes a row-major (N, K) f32 matrix to Q4_0 as llama.cpp's reference does (d = signed max / -8). */
export function quantizeQ4(values: Float32Array, N: number, K: number): { qs: Int32Array; scales: Float32Array } {
  if (K % 32 !== 0) throw new KilnError('shape', 'quantizeQ4', `rows of ${K} are not whole blocks of 32`);
  const nb = (N * K) / 32;
  const bytes = new Uint8Array(nb * 16);
  const scales = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = values[b * 32 + j];
      if (Math.abs(v) > amax) { amax = Math.abs(v); max = v; }
    }
    const d = max / -8;
    const id = d ? 1 / d : 0;
    scales[b] = d;
    for (let j = 0; j < 16; j++) {
      const lo = Math.min(15, Math.floor(values[b * 32 + j] * id + 8.5));
      const hi = Math.min(15, Math.floor(values[b * 32 + j + 16] * id + 8.5));
      bytes[b * 16 + j] = lo | (hi << 4);
    }
  }
  return { qs: new Int32Array(bytes.buffer), scales };
}

/** Words of integers per row of K weights, and f32 scales per row, for each kept format. */
export function qRowSizes(type: QuantType, K: number): { words: number; scales: number } {
  switch (type) {
    case 'q8_0': return { words: K / 4, scales: K / 32 };
    case 'q4_0': return { words: K / 8, scales: K / 32 };
    case 'q4_k': return { words: (K / 256) * 36, scales: (K / 256) * 2 };
    case 'q6_k': return { words: (K / 256) * 52, scales: K / 256 };
  }
}

/** The block size a format's rows must be whole multiples of. */
export const qBlock = (type: QuantType): number => (type === 'q4_k' || type === 'q6_k' ? 256 : 32);

/**
 * GGUF blocks of an (N, K) tensor repacked as the kernels read them, with no second quantization:
 * the f16 scales widened to f32 and moved to their own array, the integers word-aligned, and
 * Q4_K's 6-bit scales and mins unpacked to bytes.
 */
export function fromGGUF(type: QuantType, raw: Uint8Array, N: number, K: number): { qs: Int32Array; scales: Float32Array } {
  const { words, scales: ns } = qRowSizes(type, K);
  const out = new Uint8Array(N * words * 4);
  const scales = new Float32Array(N * ns);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const f16 = (o: number): number => f16BitsToF32(dv.getUint16(o, true));
  if (type === 'q8_0' || type === 'q4_0') {
    const [rawBytes, qBytes] = type === 'q8_0' ? [34, 32] : [18, 16];
    for (let b = 0; b < (N * K) / 32; b++) {
      scales[b] = f16(b * rawBytes);
      out.set(raw.subarray(b * rawBytes + 2, b * rawBytes + 2 + qBytes), b * qBytes);
    }
  } else if (type === 'q4_k') {
    for (let b = 0; b < (N * K) / 256; b++) {
      const o = b * 144;
      scales[2 * b] = f16(o);
      scales[2 * b + 1] = f16(o + 2);
      const sc = raw.subarray(o + 4, o + 16); // 12 bytes: eight 6-bit scales and eight 6-bit mins
      const d = b * 144;
      for (let j = 0; j < 8; j++) {
        out[d + j] = j < 4 ? sc[j] & 63 : (sc[j + 4] & 0xf) | ((sc[j - 4] >> 6) << 4);
        out[d + 8 + j] = j < 4 ? sc[j + 4] & 63 : (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
      }
      out.set(raw.subarray(o + 16, o + 144), d + 16);
    }
  } else {
    for (let b = 0; b < (N * K) / 256; b++) {
      out.set(raw.subarray(b * 210, b * 210 + 208), b * 208); // ql, qh, int8 scales
      scales[b] = f16(b * 210 + 208);
    }
  }
  return { qs: new Int32Array(out.buffer), scales };
}

/**
 * From this many rows on, qlinear dequantizes the weight once and runs the tiled matmul (prefill
 * 1.6x faster on wasm); below, the fused kernels read the blocks as they are.
 */
export const DEQUANT_ROWS = 16;

/** The weight as f32 (N, K) on its device. */
export function dequantize(w: QWeight): Tensor {
  const y = Tensor.empty(w.qs.backend, [w.N, w.K], 'f32');
  if (y.size) w.qs.backend.run(qdequantCall(w.type, w.qs, w.scales, y, w.N, w.K));
  return y;
}

/**
 * x (..., K) @ dequant(W)^T + bias -> (..., N). The weight is frozen; a gradient flows back to x
 * (dx = dy @ dequant(W), the weight dequantized for that step only), so adapters can train on a
 * quantized base model.
 */
export function qlinear(x: Tensor, w: QWeight, bias: Tensor | null = null): Tensor {
  const K = x.shape[x.ndim - 1];
  if (K !== w.K) throw new KilnError('shape', 'qlinear', `input ${fmtShape(x.shape)} does not end in ${w.K}`);
  const be = x.backend;
  const M = x.size / K;
  const xf = cast(x, 'f32');
  const xr = reshape(xf, [M, K]);
  const x2 = contiguous(xr); // (M, K)
  let y: Tensor;
  if (M >= DEQUANT_ROWS) {
    // many rows (prefill): dequantize once into a transient f32 matrix, then the tiled matmul
    const wf = dequantize(w);
    const wt = transpose(wf);
    const y2 = noGrad(() => matmul(x2, wt)); // (M, N)
    y = reshape(y2, [...x.shape.slice(0, -1), w.N]);
    disposeTemps([y], [y2, wt, wf]); // the f32 copy goes back to the pool at once
  } else {
    y = Tensor.empty(be, [...x.shape.slice(0, -1), w.N], 'f32');
    if (y.size) be.run(qmatmulCall(QMATMUL[w.type], x2, w.qs, w.scales, y, M, w.N, K, be.ctx));
  }
  disposeTemps([x], [xf, xr, x2]);
  record(y, 'qlinear', [x], (g) => {
    const wf = dequantize(w);
    const dx = matmul(g, wf); // (..., N) @ (N, K)
    wf.dispose();
    return [dx];
  });
  return bias ? add(y, bias) : y;
}
