// Putting checkpoint weights on the device, shared by the Hugging Face and GGUF loaders: which
// weights stay quantized, raw float bytes written straight into parameters a chunk at a time,
// and a shape-only model whose parameter shapes are checked against a file before any allocation.
import { KilnError } from '../core/errors.js';
import { encode, isFloat, itemSize } from '../core/dtype.js';
import { fromValues } from '../core/ops/creation.js';
import type { Tensor } from '../core/tensor.js';
import { noGrad } from '../core/autograd.js';
import type { Backend } from '../backend/backend.js';
import { toFloat32 } from './loaders/safetensors.js';
import { DecoderLM } from './transformer.js';
import type { DecoderConfig } from './config.js';
import { Linear } from '../nn/layers.js';
import { qBlock, qWeight, quantizeQ4, quantizeQ8, type QuantType } from '../nn/quant.js';
import type { LoadOptions } from './load.js';

/** The projections of the decoder layers: the weights `quantize` keeps quantized. */
const QUANTIZABLE = /^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj|mlp\.fc[12])\.weight$/;

/** The format a weight stays in on the device (null: floats); `stored`: its GGUF type, if any. */
export function keptAs(name: string, shape: readonly number[], opts: LoadOptions, stored?: string): QuantType | null {
  const q = opts.quantize;
  if (q === 'q8_0' || q === 'q4_0') return QUANTIZABLE.test(name) && shape[1] % 32 === 0 ? q : null;
  if (q === 'none' || !stored) return null;
  const type = ({ Q8_0: 'q8_0', Q4_0: 'q4_0', Q4_K: 'q4_k', Q6_K: 'q6_k' } as const)[stored as 'Q8_0'];
  return type && (QUANTIZABLE.test(name) || name === 'lm_head.weight') && shape.length === 2 && shape[1] % qBlock(type) === 0 ? type : null;
}

/**
 * Puts one weight on the device: kept quantized as `type` (the blocks `q` as a file holds them,
 * else quantized from `values`), or as floats assigned into the parameter.
 */
export function place(model: DecoderLM, param: Tensor, name: string, shape: number[], values: Float32Array | null, opts: LoadOptions, type: QuantType | null, q?: { qs: Int32Array; scales: Float32Array }): void {
  if (type) {
    const [N, K] = shape;
    const blocks = q ?? (type === 'q4_0' ? quantizeQ4(values!, N, K) : quantizeQ8(values!, N, K));
    linearAt(model, name).setQuantized(qWeight(blocks, N, K, opts.backend, type));
    return;
  }
  const t = fromValues(values!, shape, { backend: opts.backend, dtype: opts.dtype });
  noGrad(() => param.assign(t));
  t.dispose();
}

const CHUNK = 1 << 18; // elements converted and uploaded at a time

/**
 * Writes a float tensor's file bytes (F32, F16 or BF16, little-endian) straight into a fresh
 * parameter: as they are when the dtypes agree, else converted a chunk at a time, so the host
 * never holds a converted copy of the whole tensor next to its bytes.
 */
export function writeRaw(param: Tensor, bytes: Uint8Array, fileDtype: string, where: string): void {
  const be = param.backend;
  const n = param.size;
  const width = fileDtype === 'F32' ? 4 : 2;
  if (fileDtype.toLowerCase() === param.dtype) return be.write(param.storage, bytes, 0);
  // one chunk's buffers, reused: no garbage the size of the tensor waits for the collector
  const vals = new Float32Array(Math.min(CHUNK, n));
  const packed = param.dtype === 'f32' ? null : new ArrayBuffer(vals.length * 4);
  for (let i = 0; i < n; i += CHUNK) {
    const m = Math.min(CHUNK, n - i);
    const v = toFloat32(bytes.subarray(i * width, (i + m) * width), fileDtype, where, vals);
    const data = packed ? new Uint8Array(encode(param.dtype, v, packed), 0, m * itemSize(param.dtype)) : v;
    be.write(param.storage, data, i * itemSize(param.dtype));
  }
}

/** Whether writeRaw can fill this parameter: its own storage from element 0, a float file dtype. */
export const rawWritable = (param: Tensor, fileDtype: string): boolean => param.offset === 0 && param.isContiguous() && isFloat(param.dtype) && ['F32', 'F16', 'BF16'].includes(fileDtype);

function linearAt(model: DecoderLM, name: string): Linear {
  const m = new Map(model.namedModules()).get(name.replace(/\.weight$/, ''));
  if (!(m instanceof Linear)) throw new KilnError('argument', 'loadModel', `${name} is not a Linear layer's weight`);
  return m;
}

/**
 * The parameter shapes a config makes, from a model built on a backend that allocates nothing,
 * so a config is checked against a file's tensors before any memory is taken. The config must be
 * validated (and its layer count checked against the file) first: building is linear in layers.
 */
export function parameterShapes(cfg: DecoderConfig): Map<string, number[]> {
  const meta = new Proxy({ name: 'meta' } as unknown as Backend, {
    get: (t, k) => (k in t ? (t as unknown as Record<string | symbol, unknown>)[k] : k === 'alloc' ? () => ({}) : () => undefined),
  });
  const m = new DecoderLM(cfg, { backend: meta, skipInit: true });
  return new Map([...m.namedParameters()].map(([n, t]) => [n, [...t.shape]]));
}
