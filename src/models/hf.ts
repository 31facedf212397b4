// Hugging Face checkpoints onto the one decoder: config.json (by model_type) to a DecoderConfig,
// and each architecture's weight names (and layouts: GPT-2's Conv1D, Phi-3's fused projections,
// Mixtral's per-expert matrices) to kiln's parameter paths.
import { KilnError, fmtShape } from '../core/errors.js';
import type { RopeScaling } from '../nn/positional.js';
import type { Activation } from '../nn/mlp.js';
import type { ConfigKeys, DecoderConfig } from './config.js';

export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'gemma', 'gpt2', 'phi3', 'mixtral'] as const;
export type ModelType = (typeof SUPPORTED_MODEL_TYPES)[number];

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let file = 'config.json'; // the file configFromHF reads, for messages
const bad = (path: string, msg: string): KilnError => new KilnError('config', 'loadModel', `${file}: ${path}: ${msg}`);

function num(j: Json, key: string, dflt?: number): number {
  const v = j[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(key, `expected a number, got ${JSON.stringify(j[key])}`);
  return v;
}

function activation(name: unknown, path: string): Activation {
  switch (name) {
    case 'silu':
    case 'swish':
      return 'silu';
    case 'gelu':
      return 'gelu';
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast':
      return 'gelu_tanh';
    case 'relu':
      return 'relu';
    default:
      throw bad(path, `unsupported activation ${JSON.stringify(name)} (silu, gelu, gelu_new, gelu_pytorch_tanh, relu)`);
  }
}

function ropeScaling(j: Json): RopeScaling | null {
  const s = j.rope_scaling;
  if (!s) return null;
  const type = s.rope_type ?? s.type;
  const orig = s.original_max_position_embeddings ?? j.original_max_position_embeddings;
  switch (type) {
    case 'default':
      return null;
    case 'linear':
      return { type: 'linear', factor: s.factor };
    case 'dynamic':
      return { type: 'dynamic', factor: s.factor, originalMaxPositionEmbeddings: orig ?? j.max_position_embeddings };
    case 'yarn':
      return { type: 'yarn', factor: s.factor, originalMaxPositionEmbeddings: orig ?? j.max_position_embeddings, betaFast: s.beta_fast, betaSlow: s.beta_slow, mscale: s.mscale, mscaleAllDim: s.mscale_all_dim };
    case 'llama3':
      return { type: 'llama3', factor: s.factor, lowFreqFactor: s.low_freq_factor, highFreqFactor: s.high_freq_factor, originalMaxPositionEmbeddings: orig };
    default:
      throw bad('rope_scaling.rope_type', `unsupported RoPE scaling ${JSON.stringify(type)} (linear, dynamic, yarn, llama3)`);
  }
}

/** The config.json key behind each field, for validateConfig's messages. */
export function hfConfigKeys(type: ModelType): ConfigKeys {
  if (type === 'gpt2') return { vocabSize: 'vocab_size', hiddenSize: 'n_embd', numLayers: 'n_layer', numHeads: 'n_head', intermediateSize: 'n_inner', normEps: 'layer_norm_epsilon', maxPositionEmbeddings: 'n_positions' };
  return {
    vocabSize: 'vocab_size', hiddenSize: 'hidden_size', numLayers: 'num_hidden_layers', numHeads: 'num_attention_heads', numKVHeads: 'num_key_value_heads', headDim: 'head_dim',
    intermediateSize: 'intermediate_size', normEps: 'rms_norm_eps', ropeTheta: 'rope_theta', ropeScaling: 'rope_scaling', maxPositionEmbeddings: 'max_position_embeddings',
    slidingWindow: 'sliding_window', partialRotaryFactor: 'partial_rotary_factor', moe: 'num_local_experts/num_experts_per_tok',
  };
}

/**
 * config.json to the decoder's config; an unknown model_type is an error listing the supported
 * ones. Values are range-checked by validateConfig (config.ts) before a model is built.
 */
export function configFromHF(j: Json, where = 'config.json'): DecoderConfig {
  file = where;
  const type = j?.model_type;
  if (!SUPPORTED_MODEL_TYPES.includes(type)) throw bad('model_type', `unsupported model_type ${JSON.stringify(type)}; supported: ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  if (type === 'gpt2') {
    const hs = num(j, 'n_embd');
    return {
      vocabSize: num(j, 'vocab_size'),
      hiddenSize: hs,
      numLayers: num(j, 'n_layer'),
      numHeads: num(j, 'n_head'),
      intermediateSize: j.n_inner ?? 4 * hs,
      norm: 'layernorm',
      normEps: num(j, 'layer_norm_epsilon', 1e-5),
      positional: 'learned',
      maxPositionEmbeddings: num(j, 'n_positions', 1024),
      mlp: 'plain',
      act: activation(j.activation_function ?? 'gelu_new', 'activation_function'),
      mlpBias: true,
      qkvBias: true,
      oBias: true,
      tieWordEmbeddings: j.tie_word_embeddings ?? true,
    };
  }
  const hs = num(j, 'hidden_size');
  const heads = num(j, 'num_attention_heads');
  const c: DecoderConfig = {
    vocabSize: num(j, 'vocab_size'),
    hiddenSize: hs,
    numLayers: num(j, 'num_hidden_layers'),
    numHeads: heads,
    numKVHeads: j.num_key_value_heads ?? heads,
    headDim: j.head_dim ?? hs / heads,
    intermediateSize: num(j, 'intermediate_size'),
    normEps: num(j, 'rms_norm_eps', 1e-6),
    ropeTheta: j.rope_theta ?? 10000,
    ropeScaling: ropeScaling(j),
    maxPositionEmbeddings: j.max_position_embeddings ?? 2048,
    act: activation(j.hidden_activation ?? j.hidden_act ?? 'silu', j.hidden_activation ? 'hidden_activation' : 'hidden_act'),
    qkvBias: !!j.attention_bias,
    oBias: !!j.attention_bias,
    mlpBias: !!j.mlp_bias,
    tieWordEmbeddings: j.tie_word_embeddings ?? false,
    partialRotaryFactor: j.partial_rotary_factor ?? 1,
  };
  if (type === 'mistral' || type === 'mixtral' || type === 'phi3') {
    if (j.sliding_window) c.slidingWindow = j.sliding_window;
  }
  if (type === 'qwen2') {
    c.qkvBias = true;
    c.oBias = false;
    if (j.use_sliding_window && j.sliding_window) c.slidingWindow = j.sliding_window;
  }
  if (type === 'gemma') {
    c.normOffset = true;
    c.embeddingScale = Math.sqrt(hs);
    c.tieWordEmbeddings = j.tie_word_embeddings ?? true;
    // transformers runs Gemma's MLP with the tanh GELU whatever hidden_act says
    c.act = 'gelu_tanh';
  }
  if (type === 'mixtral') {
    c.moe = { numExperts: num(j, 'num_local_experts'), topK: num(j, 'num_experts_per_tok'), auxLossCoef: j.router_aux_loss_coef ?? 0.01 };
  }
  return c;
}

/** One kiln parameter made from checkpoint tensors. */
export interface WeightRule {
  target: string;
  sources: string[];
  /** The source tensors' values (float32) and shapes -> the parameter's values. */
  make?: (data: Float32Array[], shapes: number[][]) => Float32Array;
}

function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j];
  return out;
}

/** Rows [from, to) of a (rows, cols) matrix, or elements of a vector. */
const rows = (a: Float32Array, cols: number, from: number, to: number): Float32Array => a.slice(from * cols, to * cols);

/**
 * The rules that fill every parameter of `params` (kiln names -> shapes) from the checkpoint's
 * tensor names. Tensors the architecture does not use (rotary caches, GPT-2's causal-mask
 * buffers, a tied lm_head) are ignored; a parameter with no source is an error naming it.
 */
export function weightRules(type: ModelType, c: DecoderConfig, params: Map<string, number[]>, names: Set<string>): WeightRule[] {
  const rules: WeightRule[] = [];
  const H = c.numHeads;
  const Hkv = c.numKVHeads ?? H;
  const D = c.headDim ?? c.hiddenSize / H;
  const hs = c.hiddenSize;
  const I = c.intermediateSize;
  const need = (target: string, sources: string[], make?: WeightRule['make']): void => {
    if (params.has(target)) rules.push({ target, sources, make });
  };
  if (type === 'gpt2') {
    const p = names.has('transformer.wte.weight') ? 'transformer.' : '';
    need('model.embed_tokens.weight', [`${p}wte.weight`]);
    need('model.embed_positions.weight', [`${p}wpe.weight`]);
    need('model.norm.weight', [`${p}ln_f.weight`]);
    need('model.norm.bias', [`${p}ln_f.bias`]);
    need('lm_head.weight', ['lm_head.weight']);
    for (let i = 0; i < c.numLayers; i++) {
      const s = `${p}h.${i}.`;
      const t = `model.layers.${i}.`;
      for (const [a, b] of [['ln_1', 'input_layernorm'], ['ln_2', 'post_attention_layernorm']])
        for (const w of ['weight', 'bias']) need(`${t}${b}.${w}`, [`${s}${a}.${w}`]);
      // Conv1D stores (in, out): q, k, v are column blocks of c_attn
      ['q_proj', 'k_proj', 'v_proj'].forEach((proj, k) => {
        need(`${t}self_attn.${proj}.weight`, [`${s}attn.c_attn.weight`], ([w]) => transpose2d(w, hs, 3 * hs).slice(k * hs * hs, (k + 1) * hs * hs));
        need(`${t}self_attn.${proj}.bias`, [`${s}attn.c_attn.bias`], ([b]) => b.slice(k * hs, (k + 1) * hs));
      });
      need(`${t}self_attn.o_proj.weight`, [`${s}attn.c_proj.weight`], ([w]) => transpose2d(w, hs, hs));
      need(`${t}self_attn.o_proj.bias`, [`${s}attn.c_proj.bias`]);
      need(`${t}mlp.fc1.weight`, [`${s}mlp.c_fc.weight`], ([w]) => transpose2d(w, hs, I));
      need(`${t}mlp.fc1.bias`, [`${s}mlp.c_fc.bias`]);
      need(`${t}mlp.fc2.weight`, [`${s}mlp.c_proj.weight`], ([w]) => transpose2d(w, I, hs));
      need(`${t}mlp.fc2.bias`, [`${s}mlp.c_proj.bias`]);
    }
    return rules;
  }
  for (const name of params.keys()) {
    const m = /^model\.layers\.(\d+)\.(.*)$/.exec(name);
    const rest = m?.[2];
    const L = m ? `model.layers.${m[1]}.` : '';
    if (type === 'phi3' && rest && /^self_attn\.[qkv]_proj\.weight$/.test(rest)) {
      const k = 'qkv'.indexOf(rest[10]);
      const [a, b] = k === 0 ? [0, H * D] : k === 1 ? [H * D, (H + Hkv) * D] : [(H + Hkv) * D, (H + 2 * Hkv) * D];
      need(name, [`${L}self_attn.qkv_proj.weight`], ([w]) => rows(w, hs, a, b));
    } else if (type === 'phi3' && rest && /^mlp\.(gate|up)_proj\.weight$/.test(rest)) {
      const up = rest.startsWith('mlp.up');
      need(name, [`${L}mlp.gate_up_proj.weight`], ([w]) => rows(w, hs, up ? I : 0, up ? 2 * I : I));
    } else if (type === 'mixtral' && rest === 'mlp.gate.weight') {
      need(name, [`${L}block_sparse_moe.gate.weight`]);
    } else if (type === 'mixtral' && rest && /^mlp\.experts\.(gate|up|down)_proj$/.test(rest)) {
      // per-expert w1 (gate), w3 (up), w2 (down) stacked along a new first axis
      const w = rest.includes('gate') ? 'w1' : rest.includes('up') ? 'w3' : 'w2';
      const E = c.moe!.numExperts;
      need(name, Array.from({ length: E }, (_, e) => `${L}block_sparse_moe.experts.${e}.${w}.weight`), (ds) => {
        const out = new Float32Array(ds.reduce((a, d) => a + d.length, 0));
        let o = 0;
        for (const d of ds) {
          out.set(d, o);
          o += d.length;
        }
        return out;
      });
    } else need(name, [name]);
  }
  return rules;
}

/** Checks a rule's sources exist with the shapes the parameter needs (before any data is read). */
export function checkRule(r: WeightRule, shape: number[], sourceShapes: Map<string, number[]>, file: (name: string) => string): void {
  for (const s of r.sources) if (!sourceShapes.has(s)) throw new KilnError('config', 'load', `missing tensor '${s}' (for ${r.target} ${fmtShape(shape)})`);
  const n = shape.reduce((a, b) => a * b, 1);
  const have = r.sources.reduce((a, s) => a + sourceShapes.get(s)!.reduce((x, y) => x * y, 1), 0);
  if (!r.make && (sourceShapes.get(r.sources[0])!.length !== shape.length || sourceShapes.get(r.sources[0])!.some((d, i) => d !== shape[i])))
    throw new KilnError('shape', 'load', `${file(r.sources[0])}: tensor '${r.sources[0]}' is ${fmtShape(sourceShapes.get(r.sources[0])!)} but the config makes ${r.target} ${fmtShape(shape)}`);
  if (r.make && have < n) throw new KilnError('shape', 'load', `${file(r.sources[0])}: tensor '${r.sources[0]}' is ${fmtShape(sourceShapes.get(r.sources[0])!)}, too small for ${r.target} ${fmtShape(shape)} under this config`);
}
