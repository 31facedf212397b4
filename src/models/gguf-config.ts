// GGUF metadata ({arch}.* keys) to the decoder's config, with the key behind each field for
// validateConfig's messages.
import { KilnError } from '../core/errors.js';
import type { ConfigKeys, DecoderConfig } from './config.js';
import type { GGUFValue } from './loaders/gguf.js';

const GGUF_ARCHS = ['llama', 'qwen2', 'gemma', 'phi3'];

/** config from GGUF metadata ({arch}.* keys). */
export function configFromGGUF(m: Map<string, GGUFValue>, where: string): { cfg: DecoderConfig; arch: string; keys: ConfigKeys } {
  const arch = String(m.get('general.architecture'));
  if (!GGUF_ARCHS.includes(arch)) throw new KilnError('config', 'loadGGUF', `${where}: general.architecture '${arch}' is not supported (${GGUF_ARCHS.join(', ')})`);
  const num = (k: string, dflt?: number): number => {
    const v = m.get(`${arch}.${k}`) ?? dflt;
    if (v === undefined) throw new KilnError('config', 'loadGGUF', `${where}: ${arch}.${k}: missing`);
    if (typeof v !== 'number' && typeof v !== 'bigint') throw new KilnError('config', 'loadGGUF', `${where}: ${arch}.${k}: must be a number, got ${JSON.stringify(v)}`);
    return Number(v);
  };
  const tokens = m.get('tokenizer.ggml.tokens');
  const heads = num('attention.head_count');
  const cfg: DecoderConfig = {
    vocabSize: m.has(`${arch}.vocab_size`) ? num('vocab_size') : Array.isArray(tokens) ? tokens.length : num('vocab_size'),
    hiddenSize: num('embedding_length'),
    numLayers: num('block_count'),
    numHeads: heads,
    numKVHeads: num('attention.head_count_kv', heads),
    intermediateSize: num('feed_forward_length'),
    normEps: num('attention.layer_norm_rms_epsilon', 1e-5),
    ropeTheta: num('rope.freq_base', 10000),
    maxPositionEmbeddings: num('context_length', 2048),
    // llama.cpp's converter reorders Llama's Q/K rows for its pairwise RoPE: run RoPE the same way
    ropeLayout: arch === 'llama' ? 'interleaved' : 'half',
    qkvBias: arch === 'qwen2',
  };
  if (m.has(`${arch}.attention.key_length`)) cfg.headDim = num('attention.key_length');
  const headDim = cfg.headDim ?? cfg.hiddenSize / heads;
  if (m.has(`${arch}.rope.dimension_count`)) cfg.partialRotaryFactor = num('rope.dimension_count') / headDim;
  if (arch === 'gemma') {
    // the converter stores Gemma's norms as 1 + w already: plain RMSNorm here
    Object.assign(cfg, { embeddingScale: Math.sqrt(cfg.hiddenSize), act: 'gelu_tanh', tieWordEmbeddings: true });
  }
  if (arch === 'phi3' && m.has('phi3.attention.sliding_window')) cfg.slidingWindow = num('attention.sliding_window');
  const k = (f: string): string => `${arch}.${f}`;
  const keys: ConfigKeys = {
    vocabSize: m.has(k('vocab_size')) ? k('vocab_size') : 'tokenizer.ggml.tokens (its length)', hiddenSize: k('embedding_length'), numLayers: k('block_count'), numHeads: k('attention.head_count'),
    numKVHeads: k('attention.head_count_kv'), headDim: k('attention.key_length'), intermediateSize: k('feed_forward_length'), normEps: k('attention.layer_norm_rms_epsilon'),
    ropeTheta: k('rope.freq_base'), ropeFreqFactors: 'rope_freqs.weight', maxPositionEmbeddings: k('context_length'), partialRotaryFactor: k('rope.dimension_count'), slidingWindow: k('attention.sliding_window'),
  };
  return { cfg, arch, keys };
}
