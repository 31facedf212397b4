// One decoder configuration covers the supported architectures; architecture differences are
// fields, not code. Defaults are Llama's.
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

export type ResolvedConfig = Required<Omit<DecoderConfig, 'ropeScaling' | 'slidingWindow' | 'embeddingScale' | 'attnSoftcap' | 'moe'>> &
  Pick<DecoderConfig, 'ropeScaling' | 'slidingWindow' | 'embeddingScale' | 'attnSoftcap' | 'moe'>;

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
