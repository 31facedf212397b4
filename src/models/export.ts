// A kiln model's parameters back in a checkpoint's names and layouts, through the same name map
// the loaders read with: loading the result gives the same parameters.
import { KilnError } from '../core/errors.js';
import { Linear } from '../nn/layers.js';
import type { SafetensorsEntry } from './loaders/safetensors.js';
import { buildNameMap, fromKiln, type NameFormat, type NameMap } from './name-map.js';
import type { DecoderLM } from './transformer.js';
import { parameterShapes } from './weights.js';

export interface ExportOptions {
  /** the checkpoint's architecture: a Hugging Face model_type, or a GGUF general.architecture */
  arch: string;
  /** 'hf': Hugging Face names and layouts (the default); 'gguf': llama.cpp's names and layouts */
  format?: NameFormat;
}

/**
 * The name map of a loaded model, from its config rather than its live parameters, so weights kept
 * quantized (a QLoRA base) still have their place: what adapter export (lora-map.ts) needs.
 */
export const nameMapOf = (model: DecoderLM, arch: string, format: NameFormat = 'hf'): NameMap => buildNameMap(arch, format, model.config, parameterShapes(model.config));

export type StateDict = Record<string, SafetensorsEntry & { dtype: 'F32'; data: Float32Array }>;

/**
 * The checkpoint's tensors (name -> F32 values and shape) holding `model`'s parameters, ready for
 * writeSafetensors. Conv1D weights come out transposed, fused tensors (c_attn, qkv_proj,
 * gate_up_proj) assembled, stacked experts split per expert, and q/k rows permuted (or un-permuted)
 * when the model's RoPE layout differs from the format's (a GGUF Llama exported to HF names gets
 * Hugging Face's rows; run it with ropeLayout 'half' then). Weights kept quantized are refused.
 */
export async function exportStateDict(model: DecoderLM, opts: ExportOptions): Promise<StateDict> {
  for (const [path, m] of model.namedModules())
    if (m instanceof Linear && m.quantized) throw new KilnError('argument', 'exportStateDict', `${path}.weight is kept quantized; load with quantize: 'none' to export it`);
  const params = new Map(model.namedParameters());
  const map = buildNameMap(opts.arch, opts.format ?? 'hf', model.config, new Map([...params].map(([n, t]) => [n, [...t.shape]])));
  const values = new Map<string, Float32Array>();
  const valuesOf = async (p: string): Promise<Float32Array> => {
    let v = values.get(p);
    if (!v) values.set(p, (v = Float32Array.from(await params.get(p)!.toArray())));
    return v;
  };
  const out: StateDict = {};
  for (const [name, t] of map.tensors) {
    const data = new Float32Array(t.shape.reduce((a, b) => a * b, 1));
    for (const { param, placement } of t.parts) {
      let v = await valuesOf(param);
      if (placement.expert !== undefined) v = v.subarray(placement.expert * data.length, (placement.expert + 1) * data.length);
      fromKiln(v, t.shape, placement, data);
    }
    out[name] = { dtype: 'F32', shape: t.shape, data };
  }
  return out;
}
