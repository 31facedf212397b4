// Hugging Face checkpoints onto the one decoder: config.json (by model_type) to a DecoderConfig.
// Each architecture's weight names and layouts are in name-map.ts.
import { KilnError } from '../core/errors.js';
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

const HF_ACT: Record<Activation, string> = { silu: 'silu', gelu: 'gelu', gelu_tanh: 'gelu_pytorch_tanh', relu: 'relu' };

/**
 * The config.json that configFromHF reads back as `c`: what an export in Hugging Face names
 * (export.ts) is saved with. It describes Hugging Face's layout (rotate-half RoPE, Gemma norms as
 * w), which is what the export writes whatever kiln's own layout. Llama 3.1 scaling held only as
 * GGUF's per-frequency factors has no config.json form and is refused.
 */
export function configToHF(c: DecoderConfig, type: ModelType): Json {
  if (!SUPPORTED_MODEL_TYPES.includes(type)) throw new KilnError('config', 'configToHF', `unsupported model_type ${JSON.stringify(type)}; supported: ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  if (c.ropeFreqFactors) throw new KilnError('config', 'configToHF', 'ropeFreqFactors (GGUF rope_freqs) have no config.json form: give ropeScaling { type: "llama3", ... } instead');
  const act = HF_ACT[c.act ?? 'silu'];
  if (type === 'gpt2')
    return { model_type: type, vocab_size: c.vocabSize, n_embd: c.hiddenSize, n_layer: c.numLayers, n_head: c.numHeads, n_inner: c.intermediateSize, layer_norm_epsilon: c.normEps, n_positions: c.maxPositionEmbeddings, activation_function: act === 'gelu_pytorch_tanh' ? 'gelu_new' : act, tie_word_embeddings: c.tieWordEmbeddings ?? true };
  const s = c.ropeScaling;
  const j: Json = {
    model_type: type, vocab_size: c.vocabSize, hidden_size: c.hiddenSize, num_hidden_layers: c.numLayers, num_attention_heads: c.numHeads, num_key_value_heads: c.numKVHeads ?? c.numHeads,
    head_dim: c.headDim ?? c.hiddenSize / c.numHeads, intermediate_size: c.intermediateSize, rms_norm_eps: c.normEps, rope_theta: c.ropeTheta ?? 10000,
    max_position_embeddings: c.maxPositionEmbeddings, hidden_act: act, attention_bias: !!c.qkvBias, mlp_bias: !!c.mlpBias, tie_word_embeddings: !!c.tieWordEmbeddings,
    partial_rotary_factor: c.partialRotaryFactor ?? 1,
    rope_scaling: !s ? null
      : s.type === 'linear' ? { rope_type: 'linear', factor: s.factor }
      : s.type === 'dynamic' ? { rope_type: 'dynamic', factor: s.factor, original_max_position_embeddings: s.originalMaxPositionEmbeddings }
      : s.type === 'yarn' ? { rope_type: 'yarn', factor: s.factor, original_max_position_embeddings: s.originalMaxPositionEmbeddings, beta_fast: s.betaFast, beta_slow: s.betaSlow, mscale: s.mscale, mscale_all_dim: s.mscaleAllDim }
      : { rope_type: 'llama3', factor: s.factor, low_freq_factor: s.lowFreqFactor, high_freq_factor: s.highFreqFactor, original_max_position_embeddings: s.originalMaxPositionEmbeddings },
  };
  if (c.slidingWindow) Object.assign(j, { sliding_window: c.slidingWindow }, type === 'qwen2' ? { use_sliding_window: true } : {});
  if (c.moe) Object.assign(j, { num_local_experts: c.moe.numExperts, num_experts_per_tok: c.moe.topK, router_aux_loss_coef: c.moe.auxLossCoef ?? 0.01 });
  return j;
}
