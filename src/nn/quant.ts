// Quantized weights for inference, kept quantized on the device and dequantized inside the matmul
// (kernels/quant.ts, assembly/quant.ts): Q8_0 (blocks of 32 int8, about 9 bits a weight) and
// Q4_0 (blocks of 32 nibbles, about 5 bits a weight), llama.cpp's layouts with an f32 scale.
import { isGradEnabled } from '../core/autograd.js';
import { KilnError, fmtShape } from '../core/errors.js';
import { fromValues } from '../core/ops/creation.js';
import { add, cast } from '../core/ops/pointwise.js';
import { contiguous, reshape } from '../core/ops/shape.js';
import { Tensor } from '../core/tensor.js';
import { f16BitsToF32 } from '../core/dtype.js';
import type { Backend } from '../backend/backend.js';
import { qmatmul4Call, qmatmul8Call } from '../kernels/quant.js';

export type QuantType = 'q8_0' | 'q4_0';

export interface Q8Weight {
  /** 'q8_0' (default) or 'q4_0' */
  type?: QuantType;
  /** q8_0: (N, K/4) i32, four int8 per word; q4_0: (N, K/8), per block 16 bytes of nibbles */
  qs: Tensor;
  /** (N, K/32) f32 */
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

/** GGUF's Q8_0 blocks (f16 scale, 32 int8) repacked as they are: no second quantization. */
export function q8FromGGUF(raw: Uint8Array, N: number, K: number): { qs: Int32Array; scales: Float32Array } {
  const nb = (N * K) / 32;
  const q = new Int8Array(N * K);
  const scales = new Float32Array(nb);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let b = 0; b < nb; b++) {
    scales[b] = f16BitsToF32(dv.getUint16(b * 34, true));
    q.set(new Int8Array(raw.buffer, raw.byteOffset + b * 34 + 2, 32), b * 32);
  }
  return { qs: new Int32Array(q.buffer), scales };
}

export function q8Weight(p: { qs: Int32Array; scales: Float32Array }, N: number, K: number, backend?: Backend, type: QuantType = 'q8_0'): Q8Weight {
  return {
    type,
    qs: fromValues(p.qs, [N, type === 'q4_0' ? K / 8 : K / 4], { backend, dtype: 'i32' }),
    scales: fromValues(p.scales, [N, K / 32], { backend }),
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

/** GGUF's Q4_0 blocks (f16 scale, 16 bytes of nibbles) repacked as they are. */
export function q4FromGGUF(raw: Uint8Array, N: number, K: number): { qs: Int32Array; scales: Float32Array } {
  const nb = (N * K) / 32;
  const bytes = new Uint8Array(nb * 16);
  const scales = new Float32Array(nb);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let b = 0; b < nb; b++) {
    scales[b] = f16BitsToF32(dv.getUint16(b * 18, true));
    bytes.set(raw.subarray(b * 18 + 2, b * 18 + 18), b * 16);
  }
  return { qs: new Int32Array(bytes.buffer), scales };
}

/** x (..., K) @ dequant(W)^T + bias -> (..., N). Inference only (no gradient flows back). */
export function qlinear(x: Tensor, w: Q8Weight, bias: Tensor | null = null): Tensor {
  const K = x.shape[x.ndim - 1];
  if (K !== w.K) throw new KilnError('shape', 'qlinear', `input ${fmtShape(x.shape)} does not end in ${w.K}`);
  if (isGradEnabled() && x.requiresGrad) throw new KilnError('grad', 'qlinear', 'quantized weights are for inference: no gradient flows through them yet (call under noGrad)');
  const be = x.backend;
  const M = x.size / K;
  const x2 = contiguous(reshape(cast(x, 'f32'), [M, K]));
  const y = Tensor.empty(be, [...x.shape.slice(0, -1), w.N], 'f32');
  if (y.size) be.run((w.type === 'q4_0' ? qmatmul4Call : qmatmul8Call)(x2, w.qs, w.scales, y, M, w.N, K));
  return bias ? add(y, bias) : y;
}
