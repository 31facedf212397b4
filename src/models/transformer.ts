// The one config-driven decoder. Module paths follow the Llama checkpoint layout
// (model.embed_tokens, model.layers.N.{input_layernorm, self_attn, post_attention_layernorm,
// mlp}, model.norm, lm_head); other architectures map their names onto it when loaded.
import { KilnError, fmtShape } from '../core/errors.js';
import { arange, zeros } from '../core/ops/creation.js';
import { add, mul } from '../core/ops/pointwise.js';
import { linear } from '../core/ops/matmul.js';
import { slice } from '../core/ops/shape.js';
import type { Tensor } from '../core/tensor.js';
import type { Backend } from '../backend/backend.js';
import { Attention, type KVCache } from '../nn/attention.js';
import { normal, scaledNormal, zerosInit, type InitOptions } from '../nn/init.js';
import { Embedding, Linear } from '../nn/layers.js';
import { GatedMLP, MLP } from '../nn/mlp.js';
import { MixtureOfExperts } from '../nn/moe.js';
import { Module, ModuleList } from '../nn/module.js';
import { LayerNorm, RMSNorm } from '../nn/norm.js';
import { LearnedPositionalEmbedding, RotaryEmbedding, alibiBias } from '../nn/positional.js';
import { resolveConfig, type DecoderConfig, type ResolvedConfig } from './config.js';

/** A module with no computation of its own, only named children (the `model` prefix). */
class Container extends Module<[], never> {
  forward(): never {
    throw new KilnError('argument', 'Container', 'has no forward');
  }
}

type Norm = LayerNorm | RMSNorm;

function makeNorm(c: ResolvedConfig, o: InitOptions): Norm {
  return c.norm === 'layernorm' ? new LayerNorm(c.hiddenSize, { eps: c.normEps, ...o }) : new RMSNorm(c.hiddenSize, { eps: c.normEps, offset: c.normOffset, ...o });
}

export interface LayerInputs {
  positionIds: Tensor;
  rope: RotaryEmbedding | null;
  keyPadding: Tensor | null;
  docIds: Tensor | null;
  mask: Tensor | null;
  bias: Tensor | null;
  past: KVCache | null;
}

/** What a decoder layer produces (transformers' layer outputs: hidden states, present key/values, router losses). */
export interface DecoderLayerOutput {
  /** (B, T, hidden) */
  hiddenStates: Tensor;
  /** this layer's keys and values, to pass back as `past` */
  cache: KVCache;
  /** the layer's weighted router losses (0-d), or null without MoE */
  auxLoss: Tensor | null;
}

/** One block: attention then MLP, each wrapped in the configured norm placement with a residual. */
export class DecoderLayer extends Module<[x: Tensor, inp: LayerInputs], DecoderLayerOutput> {
  constructor(readonly c: ResolvedConfig, o: InitOptions) {
    super();
    this.registerModule('input_layernorm', makeNorm(c, o));
    this.registerModule('self_attn', new Attention({
      hiddenSize: c.hiddenSize, numHeads: c.numHeads, numKVHeads: c.numKVHeads, headDim: c.headDim,
      qkvBias: c.qkvBias, oBias: c.oBias, slidingWindow: c.slidingWindow, attentionDropout: c.attentionDropout,
      softcap: c.attnSoftcap, fused: c.fusedAttention, ...o,
    }));
    this.registerModule('post_attention_layernorm', makeNorm(c, o));
    if (c.normPlacement === 'sandwich') {
      this.registerModule('pre_feedforward_layernorm', makeNorm(c, o));
      this.registerModule('post_feedforward_layernorm', makeNorm(c, o));
    }
    const m = { hiddenSize: c.hiddenSize, intermediateSize: c.intermediateSize, act: c.act, bias: c.mlpBias, ...o };
    this.registerModule('mlp', c.moe ? new MixtureOfExperts({ ...m, ...c.moe }) : c.mlp === 'gated' ? new GatedMLP(m) : new MLP(m));
  }

  forward(x: Tensor, inp: LayerInputs): DecoderLayerOutput {
    const n = (name: string, t: Tensor) => this.child<Norm>(name).call(t);
    let cache: KVCache | null = null;
    let auxLoss: Tensor | null = null;
    const attn = (t: Tensor) => {
      const r = this.child<Attention>('self_attn').call(t, { ...inp, causal: true });
      cache = r.cache;
      return r.output;
    };
    const mlp = (t: Tensor) => {
      const moe = this.c.moe;
      if (!moe) return this.child<GatedMLP | MLP>('mlp').call(t);
      const o = this.child<MixtureOfExperts>('mlp').call(t);
      auxLoss = add(mul(o.auxLoss, moe.auxLossCoef ?? 0.01), mul(o.zLoss, moe.zLossCoef ?? 0));
      return o.output;
    };
    let h: Tensor;
    switch (this.c.normPlacement) {
      case 'pre':
        h = add(x, attn(n('input_layernorm', x)));
        h = add(h, mlp(n('post_attention_layernorm', h)));
        break;
      case 'post':
        h = n('input_layernorm', add(x, attn(x)));
        h = n('post_attention_layernorm', add(h, mlp(h)));
        break;
      case 'sandwich':
        h = add(x, n('post_attention_layernorm', attn(n('input_layernorm', x))));
        h = add(h, n('post_feedforward_layernorm', mlp(n('pre_feedforward_layernorm', h))));
        break;
    }
    return { hiddenStates: h, cache: cache!, auxLoss };
  }
}

export interface DecoderInputs {
  /** (B, T) i32 token ids */
  inputIds: Tensor;
  /** (B, T) or (T) i32; default 0..T-1 after any cached tokens */
  positionIds?: Tensor;
  /** (B, Tpast + T) attention_mask: 1 for tokens, 0 for padding */
  attentionMask?: Tensor | null;
  /** (B, T) document ids of packed sequences */
  docIds?: Tensor | null;
  /** any other keep-mask broadcastable to (B, H, T, Tk) (uses the composed attention) */
  mask?: Tensor | null;
  /** the caches returned by the previous call, for incremental decoding */
  past?: KVCache[] | null;
  /** only the last N positions' logits (generation needs 1): skips the output projection elsewhere */
  logitsToKeep?: number;
}

/** What the language model produces. */
export interface CausalLMOutput {
  /** (B, T, vocab), or (B, logitsToKeep, vocab) */
  logits: Tensor;
  /** the per-layer caches, to pass as `past` */
  cache: KVCache[];
  /** the summed weighted router losses of MoE layers (null without MoE); add it to the training loss */
  auxLoss: Tensor | null;
}

/** Decoder-only language model. Shapes: input ids (B, T) -> logits (B, T, vocab). */
export class DecoderLM extends Module<[inp: DecoderInputs], CausalLMOutput> {
  readonly config: ResolvedConfig;
  readonly rope: RotaryEmbedding | null;
  readonly layers: ModuleList<DecoderLayer>;
  constructor(cfg: DecoderConfig, o: InitOptions = {}) {
    super();
    const c = (this.config = resolveConfig(cfg));
    if (!Number.isInteger(c.headDim)) throw new KilnError('argument', 'DecoderLM', `hidden size ${c.hiddenSize} does not split into ${c.numHeads} heads; set headDim`);
    const model = this.registerModule('model', new Container());
    const std = c.initializerRange;
    const emb = model.registerModule('embed_tokens', new Embedding(c.vocabSize, c.hiddenSize, o));
    emb.setParameter('weight', normal([c.vocabSize, c.hiddenSize], 0, std, o));
    if (c.positional === 'learned') model.registerModule('embed_positions', new LearnedPositionalEmbedding(c.maxPositionEmbeddings, c.hiddenSize, { ...o, std }));
    this.layers = model.registerModule('layers', new ModuleList(Array.from({ length: c.numLayers }, () => new DecoderLayer(c, o))));
    model.registerModule('norm', makeNorm(c, o));
    if (!c.tieWordEmbeddings) this.registerModule('lm_head', new Linear(c.hiddenSize, c.vocabSize, { ...o, bias: false }));
    // init as transformers: N(0, std) matrices, zero biases; residual output projections are
    // scaled by depth (GPT-2's c_proj rule), so the residual stream's variance stays level
    for (const [name, mod] of this.namedModules()) {
      if (!(mod instanceof Linear)) continue;
      const residual = /(o_proj|down_proj|fc2)$/.test(name);
      mod.setParameter('weight', residual ? scaledNormal(mod.weight.shape, std, c.numLayers, o) : normal(mod.weight.shape, 0, std, o));
      if (mod.bias) mod.setParameter('bias', zerosInit(mod.bias.shape, o));
    }
    const rotaryDim = Math.round(c.headDim * c.partialRotaryFactor);
    this.rope = c.positional === 'rope' ? new RotaryEmbedding({
      headDim: c.headDim, rotaryDim, theta: c.ropeTheta, scaling: c.ropeScaling ?? null, layout: c.ropeLayout, maxPositionEmbeddings: c.maxPositionEmbeddings,
      freqFactors: c.ropeFreqFactors,
    }) : null;
  }

  /**
   * A KV cache allocated once for `capacity` positions (generation): each forward given it as
   * `past` writes its keys and values in place, so decoding allocates no cache per token.
   */
  allocateCache(batch: number, capacity: number): KVCache[] {
    const c = this.config;
    const backend = this.backend;
    if (!(Number.isInteger(capacity) && capacity > 0)) throw new KilnError('argument', 'allocateCache', `capacity must be a positive integer, got ${capacity}`);
    return this.layers.items.map(() => ({
      key: zeros([batch, c.numKVHeads, capacity, c.headDim], { backend }),
      value: zeros([batch, c.numKVHeads, capacity, c.headDim], { backend }),
      length: 0,
    }));
  }

  /** The backend the weights live on. */
  get backend(): Backend {
    return this.child('model').child('embed_tokens').getParameter('weight')!.backend;
  }

  /**
   * logits (B, T, vocab), the per-layer caches, and auxLoss: the summed weighted router losses of
   * MoE layers (0 without MoE); add it to the training loss.
   */
  forward(inp: DecoderInputs): CausalLMOutput {
    const c = this.config;
    const ids = inp.inputIds;
    if (ids.ndim !== 2 || ids.dtype !== 'i32') throw new KilnError('shape', 'DecoderLM', `inputIds must be (B, T) i32, got ${ids.dtype}${fmtShape(ids.shape)}`);
    const [, T] = ids.shape;
    const pastLen = inp.past?.[0] ? inp.past[0].length ?? inp.past[0].key.shape[2] : 0;
    // positions come from tables of maxPositionEmbeddings rows (RoPE, learned): say so here, not
    // as an index error from deep inside the positional kernel
    if (!inp.positionIds && (c.positional === 'rope' || c.positional === 'learned') && pastLen + T > c.maxPositionEmbeddings) {
      throw new KilnError('argument', 'DecoderLM', `the sequence has ${pastLen + T} tokens (${pastLen ? `${pastLen} cached + ${T} new` : 'inputIds'}); the context window (max_position_embeddings) holds ${c.maxPositionEmbeddings}`);
    }
    const positionIds = inp.positionIds ?? arange(pastLen, pastLen + T, 1, { dtype: 'i32', backend: ids.backend });
    const model = this.child('model');
    let h = model.child<Embedding>('embed_tokens').call(ids);
    if (c.embeddingScale) h = mul(h, c.embeddingScale);
    if (c.positional === 'learned') h = add(h, model.child<LearnedPositionalEmbedding>('embed_positions').call(positionIds));
    this.rope?.reserve(pastLen + T); // the RoPE tables grow to the positions used, not maxPositionEmbeddings
    const bias = c.positional === 'alibi' ? alibiBias(c.numHeads, T, pastLen + T, { backend: ids.backend }) : null;
    const cache: KVCache[] = [];
    let auxLoss: Tensor | null = null;
    this.layers.items.forEach((layer, i) => {
      const r = layer.call(h, { positionIds, rope: this.rope, keyPadding: inp.attentionMask ?? null, docIds: inp.docIds ?? null, mask: inp.mask ?? null, bias, past: inp.past?.[i] ?? null });
      h = r.hiddenStates;
      cache.push(r.cache);
      if (r.auxLoss) auxLoss = auxLoss ? add(auxLoss, r.auxLoss) : r.auxLoss;
    });
    if (inp.logitsToKeep !== undefined && inp.logitsToKeep < T) h = slice(h, 1, T - inp.logitsToKeep, T); // (B, keep, hidden)
    h = model.child<Norm>('norm').call(h);
    const logits = c.tieWordEmbeddings ? linear(h, model.child('embed_tokens').getParameter('weight')!) : this.child<Linear>('lm_head').call(h);
    return { logits, cache, auxLoss };
  }
}
