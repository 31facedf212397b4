// Transformer parts against PyTorch references written from the Hugging Face modeling code
// (tests/golden/generate.py -> nn.json): RoPE variants, attention (MHA/GQA/MQA, masks, ALiBi),
// an attention layer with RoPE and qkv bias, SwiGLU/GeGLU and plain MLPs.
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { goldenSuite, type Op } from '../helpers/golden.js';

const { nn } = k;

const OPS: Record<string, Op> = {
  rope: (a, x, pos) => new nn.RotaryEmbedding({ headDim: a.headDim, rotaryDim: a.rotaryDim, theta: a.theta, layout: a.layout, scaling: a.scaling }).apply(x, pos, a.maxPosition),
  sdpa: (a, q, kk, v, extra) => {
    let mask: Tensor | null = null;
    if (a.padding) mask = nn.paddingMask(extra);
    if (a.doc) mask = nn.documentMask(extra);
    const bias = a.alibi ? nn.alibiBias(q.shape[1], q.shape[2], kk.shape[2]) : null;
    return nn.scaledDotProductAttention(q, kk, v, { isCausal: a.causal, slidingWindow: a.window, scale: a.scale, mask, bias });
  },
  alibiSlopes: (a) => k.tensor(nn.alibiSlopes(a.heads)),
  attention: (a, x, wq, bq, wk, bk, wv, bv, wo, pos) => {
    const att = new nn.Attention({ hiddenSize: a.hiddenSize, numHeads: a.numHeads, numKVHeads: a.numKVHeads, headDim: a.headDim, qkvBias: true });
    const set = (name: string, w: Tensor, b?: Tensor) => {
      att.child(name).setParameter('weight', w);
      if (b) att.child(name).setParameter('bias', b);
    };
    set('q_proj', wq, bq); set('k_proj', wk, bk); set('v_proj', wv, bv); set('o_proj', wo);
    const rope = new nn.RotaryEmbedding({ headDim: a.headDim });
    return att.call(x, { positionIds: pos, rope }).output;
  },
  gatedMLP: (a, x, g, u, d) => {
    const m = new nn.GatedMLP({ hiddenSize: x.shape[2], intermediateSize: g.shape[0], act: a.act });
    m.child('gate_proj').setParameter('weight', g); m.child('up_proj').setParameter('weight', u); m.child('down_proj').setParameter('weight', d);
    return m.call(x);
  },
  mlp: (a, x, w1, b1, w2, b2) => {
    const m = new nn.MLP({ hiddenSize: x.shape[2], intermediateSize: w1.shape[0], act: a.act });
    m.child('fc1').setParameter('weight', w1); m.child('fc1').setParameter('bias', b1);
    m.child('fc2').setParameter('weight', w2); m.child('fc2').setParameter('bias', b2);
    return m.call(x);
  },
  moe: (a, x, wr, wg, wu, wd) => {
    const m = new nn.MixtureOfExperts({ hiddenSize: x.shape[1], intermediateSize: wg.shape[1], numExperts: a.experts, topK: a.topK, capacityFactor: a.capacityFactor });
    m.child('gate').setParameter('weight', wr);
    const ex = m.child('experts');
    ex.setParameter('gate_proj', wg); ex.setParameter('up_proj', wu); ex.setParameter('down_proj', wd);
    const r = m.call(x);
    return k.concat([k.reshape(r.output, [-1]), k.reshape(r.auxLoss, [1]), k.reshape(r.zLoss, [1]), k.reshape(r.droppedTokens, [1])], 0);
  },
  cumsum: (a, x) => k.cumsum(x, a.axis, { reverse: a.reverse, exclusive: a.exclusive }),
  topk: (a, x) => k.topk(x, a.k).values,
};

goldenSuite('nn golden vs PyTorch', 'nn.json', OPS);
