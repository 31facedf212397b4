// One decoder configuration covers the supported architectures; architecture differences are
// fields, not code. Defaults are Llama's.
import { KilnError } from '../core/errors.js';
import type { RopeScaling } from '../nn/positional.js';
import type { Activation } from '../nn/mlp.js';

export interface DecoderConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  /** default numHeads (MHA); fewer: GQA; 1: MQA */
  numKVHeads?: number;
  /** default hiddenSize / numHeads */
  headDim?: number;
  intermediateSize: number;
  /** 'rmsnorm' (Llama) or 'layernorm' (GPT-2) */
  norm?: 'rmsnorm' | 'layernorm';
  normEps?: number;
  /** Gemma's (1 + w) RMSNorm */
  normOffset?: boolean;
  /** 'pre' (default), 'post' (original transformer), 'sandwich' (norms before and after each sublayer, Gemma 2) */
  normPlacement?: 'pre' | 'post' | 'sandwich';
  /** 'rope' (default), 'alibi', 'learned' (GPT-2), 'none' */
  positional?: 'rope' | 'alibi' | 'learned' | 'none';
  ropeTheta?: number;
  ropeScaling?: RopeScaling | null;
  /** divisors of RoPE's inverse frequencies (rotary dim / 2 of them): GGUF's rope_freqs tensor (Llama 3.1's scaling) */
  ropeFreqFactors?: number[] | null;
  /** fraction of headDim that rotates (Phi, NeoX) */
  partialRotaryFactor?: number;
  ropeLayout?: 'half' | 'interleaved';
  maxPositionEmbeddings?: number;
  /** 'gated' (SwiGLU / GeGLU) or 'plain' (fc1, act, fc2) */
  mlp?: 'gated' | 'plain';
  act?: Activation;
  mlpBias?: boolean;
  qkvBias?: boolean;
  oBias?: boolean;
  tieWordEmbeddings?: boolean;
  /** multiply embeddings by this (Gemma: sqrt(hiddenSize)) */
  embeddingScale?: number;
  slidingWindow?: number;
  attentionDropout?: number;
  /** tanh soft-capping of attention scores (Gemma 2) */
  attnSoftcap?: number;
  /** fused attention kernels where the inputs allow (default true) */
  fusedAttention?: boolean;
  /** std of the normal init (HF initializer_range) */
  initializerRange?: number;
  /** a Mixture-of-Experts MLP in every layer (Mixtral, Qwen2-MoE) instead of the dense one */
  moe?: {
    numExperts: number;
    topK: number;
    capacityFactor?: number;
    routerNoise?: number;
    sharedExpertIntermediateSize?: number;
    /** weight of the load-balancing loss in auxLoss (transformers' router_aux_loss_coef, default 0.01) */
    auxLossCoef?: number;
    /** weight of the router z-loss in auxLoss (default 0) */
    zLossCoef?: number;
  } | null;
}

export type ResolvedConfig = Required<Omit<DecoderConfig, 'ropeScaling' | 'ropeFreqFactors' | 'slidingWindow' | 'embeddingScale' | 'attnSoftcap' | 'moe'>> &
  Pick<DecoderConfig, 'ropeScaling' | 'ropeFreqFactors' | 'slidingWindow' | 'embeddingScale' | 'attnSoftcap' | 'moe'>;

export function resolveConfig(c: DecoderConfig): ResolvedConfig {
  return {
    numKVHeads: c.numHeads,
    headDim: c.hiddenSize / c.numHeads,
    norm: 'rmsnorm',
    normEps: c.norm === 'layernorm' ? 1e-5 : 1e-6,
    normOffset: false,
    normPlacement: 'pre',
    positional: 'rope',
    ropeTheta: 10000,
    partialRotaryFactor: 1,
    ropeLayout: 'half',
    maxPositionEmbeddings: 2048,
    mlp: 'gated',
    act: c.mlp === 'plain' ? 'gelu' : 'silu',
    mlpBias: false,
    qkvBias: false,
    oBias: false,
    tieWordEmbeddings: false,
    attentionDropout: 0,
    fusedAttention: true,
    initializerRange: 0.02,
    ...c,
  };
}

/** Presets: architecture shapes over the one decoder (sizes from the caller). */
export const ARCHITECTURES = {
  llama: {},
  mistral: { slidingWindow: 4096 },
  qwen2: { qkvBias: true, tieWordEmbeddings: true, ropeTheta: 1e6 },
  gpt2: { norm: 'layernorm', positional: 'learned', mlp: 'plain', act: 'gelu_tanh', mlpBias: true, qkvBias: true, oBias: true, tieWordEmbeddings: true },
  gemma: { normOffset: true, act: 'gelu_tanh', tieWordEmbeddings: true },
  mixtral: { moe: { numExperts: 8, topK: 2 } },
} as const satisfies Record<string, Partial<DecoderConfig>>;

// ---------------------------------------------------------------- validation

/** Where each field came from (a JSON path or a GGUF key), for messages; fields not named print as themselves. */
export type ConfigKeys = Partial<Record<keyof DecoderConfig, string>>;

/** 128M positions: 13x the longest released context (10M); past it a typo, and 2^31 overflows i32 position ids. */
export const MAX_POSITIONS = 2 ** 27;
const MAX_SIZE = 2 ** 31 - 1;
/** 64x the largest head dim released (256, 512 for MLA): past it a typo. */
const MAX_HEAD_DIM = 2 ** 15;

const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * Checks every field a file can set before anything is allocated: sizes are positive integers
 * in range, and no value can only produce NaN or zeros (theta <= 0, eps < 0 or huge, a scaling
 * without its factor). Throws KilnError('config', 'loadModel', "<file>: <key>: <what>, got <value>").
 */
export function validateConfig(c: DecoderConfig, file: string, keys: ConfigKeys = {}): void {
  const fail = (field: string, what: string, v: unknown): never => {
    throw new KilnError('config', 'loadModel', `${file}: ${field}: ${what}, got ${typeof v === 'number' ? v : JSON.stringify(v)}`);
  };
  const key = (f: keyof DecoderConfig): string => keys[f] ?? f;
  const int = (f: keyof DecoderConfig, max = MAX_SIZE, min = 1): void => {
    const v = c[f];
    if (!(typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max)) fail(key(f), `must be an integer in ${min}..${max}`, v);
  };
  const real = (field: string, v: unknown, ok: (x: number) => boolean, what: string): void => {
    if (!(typeof v === 'number' && Number.isFinite(v) && ok(v))) fail(field, what, v);
  };
  for (const f of ['vocabSize', 'hiddenSize', 'numLayers', 'numHeads', 'intermediateSize'] as const) int(f);
  if (c.numKVHeads !== undefined) int('numKVHeads', c.numHeads);
  if (c.numHeads % (c.numKVHeads ?? c.numHeads)) fail(key('numKVHeads'), `must divide the ${c.numHeads} attention heads`, c.numKVHeads);
  if (c.headDim !== undefined) int('headDim', MAX_HEAD_DIM); // a head dim of 10^9 passed and hung building the rotary frequencies
  else if (!Number.isInteger(c.hiddenSize / c.numHeads)) fail(key('numHeads'), `must divide the hidden size ${c.hiddenSize} (or the config must give the head dim)`, c.numHeads);
  if (c.maxPositionEmbeddings !== undefined) int('maxPositionEmbeddings', MAX_POSITIONS);
  if (c.slidingWindow !== undefined && c.slidingWindow !== null) int('slidingWindow', MAX_SIZE);
  if (c.normEps !== undefined) real(key('normEps'), c.normEps, (x) => x >= 0 && x <= 1, 'must be in 0..1 (a negative eps makes NaN, a huge one zeros)');
  if (c.initializerRange !== undefined) real(key('initializerRange'), c.initializerRange, (x) => x >= 0, 'must be >= 0');
  if (c.embeddingScale !== undefined) real(key('embeddingScale'), c.embeddingScale, (x) => x > 0, 'must be > 0');
  if (c.attnSoftcap !== undefined && c.attnSoftcap !== null) real(key('attnSoftcap'), c.attnSoftcap, (x) => x > 0, 'must be > 0');
  if (c.moe) {
    const m = c.moe;
    const [ek, tk] = keys.moe?.split('/') ?? ['moe.numExperts', 'moe.topK'];
    if (!(Number.isInteger(m.numExperts) && m.numExperts >= 1 && m.numExperts <= 4096)) fail(ek, 'must be an integer in 1..4096', m.numExperts);
    if (!(Number.isInteger(m.topK) && m.topK >= 1 && m.topK <= m.numExperts)) fail(tk, `must be an integer in 1..${m.numExperts}`, m.topK);
    // the router's weights and noise, under transformers' names (a string "1" reached the forward)
    const router = { auxLossCoef: 'router_aux_loss_coef', zLossCoef: 'router_z_loss_coef', routerNoise: 'router_jitter_noise' } as const;
    for (const [f, name] of Object.entries(router) as [keyof typeof router, string][]) if (m[f] !== undefined) real(name, m[f], (x) => x >= 0, 'must be a finite number >= 0');
  }
  if ((c.positional ?? 'rope') !== 'rope') return;
  if (c.ropeTheta !== undefined) real(key('ropeTheta'), c.ropeTheta, (x) => x > 0, 'must be > 0 (RoPE frequencies are theta^(-2i/d))');
  const prf = c.partialRotaryFactor ?? 1;
  real(key('partialRotaryFactor'), prf, (x) => x > 0 && x <= 1, 'must be in (0, 1]');
  const rd = Math.round((c.headDim ?? c.hiddenSize / c.numHeads) * prf);
  if (rd % 2) fail(key('partialRotaryFactor'), `makes an odd rotary dimension ${rd}`, prf);
  const ff = c.ropeFreqFactors;
  if (ff && (ff.length !== rd / 2 || !ff.every((f) => f > 0 && Number.isFinite(f)))) fail(key('ropeFreqFactors'), `must be ${rd / 2} finite factors > 0 (one per rotary frequency)`, ff.length === rd / 2 ? ff.find((f) => !(f > 0 && Number.isFinite(f))) : `${ff.length} factors`);
  const s = c.ropeScaling;
  if (!s) return;
  const sk = key('ropeScaling');
  const at = (f: string): string => `${sk}.${snake(f)}`;
  const v = s as unknown as Record<string, unknown>;
  real(at('factor'), v.factor, (x) => x > 0, `a ${s.type} scaling needs a factor > 0`);
  if (s.type === 'llama3') {
    real(at('lowFreqFactor'), s.lowFreqFactor, (x) => x > 0, 'llama3 scaling needs low_freq_factor > 0');
    real(at('highFreqFactor'), s.highFreqFactor, (x) => x > s.lowFreqFactor, `llama3 scaling needs high_freq_factor > low_freq_factor (${s.lowFreqFactor})`);
  }
  if (s.type === 'llama3' || s.type === 'yarn' || (s.type === 'dynamic' && s.originalMaxPositionEmbeddings !== undefined)) {
    real(at('originalMaxPositionEmbeddings'), v.originalMaxPositionEmbeddings, (x) => Number.isInteger(x) && x >= 1 && x <= MAX_POSITIONS, `${s.type} scaling needs original_max_position_embeddings, an integer in 1..${MAX_POSITIONS}`);
  }
  if (s.type === 'yarn') {
    for (const f of ['betaFast', 'betaSlow', 'mscale', 'mscaleAllDim'] as const) if (s[f] !== undefined && s[f] !== null) real(at(f), s[f], (x) => x >= 0, 'must be >= 0');
  }
}

/**
 * Cross-checks a config against the tensors a file holds, before the model is built: the layer
 * count is the highest layer index + 1 and every layer has the tensors layer 0 has (a config
 * with fewer layers would silently run a shallower model); the vocab is the embedding's rows.
 * `layerOf` gives a tensor name's layer index and the rest of its name, or null.
 */
export function checkConfigTensors(c: DecoderConfig, file: string, keys: ConfigKeys, shapes: Map<string, readonly number[]>, layerOf: (name: string) => [number, string] | null, embedding: string): void {
  const fail = (field: string, what: string): never => {
    throw new KilnError('config', 'loadModel', `${file}: ${field}: ${what}`);
  };
  const layers = new Map<number, Set<string>>();
  for (const n of shapes.keys()) {
    const l = layerOf(n);
    if (!l) continue;
    if (!layers.has(l[0])) layers.set(l[0], new Set());
    layers.get(l[0])!.add(l[1]);
  }
  const count = layers.size ? Math.max(...layers.keys()) + 1 : 0;
  if (c.numLayers !== count) fail(keys.numLayers ?? 'numLayers', `the config says ${c.numLayers} layers but the weights hold ${count ? `layers 0..${count - 1}` : 'none'}`);
  const first = layers.get(0) ?? new Set<string>();
  for (let i = 0; i < count; i++) {
    const has = layers.get(i) ?? new Set<string>();
    const missing = [...first].filter((t) => !has.has(t));
    const extra = [...has].filter((t) => !first.has(t));
    if (missing.length || extra.length) fail(`layer ${i}`, `incomplete: ${missing.length ? `missing ${missing.join(', ')}` : `has ${extra.join(', ')} that layer 0 lacks`}`);
  }
  const emb = shapes.get(embedding);
  if (emb && emb.length === 2 && emb[0] !== c.vocabSize) fail(keys.vocabSize ?? 'vocabSize', `${c.vocabSize}, but '${embedding}' has ${emb[0]} rows`);
  if (emb && emb.length === 2 && emb[1] !== c.hiddenSize) fail(keys.hiddenSize ?? 'hiddenSize', `${c.hiddenSize}, but '${embedding}' has ${emb[1]} columns`);
}
