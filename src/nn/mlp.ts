// Feed-forward blocks, parameters named as in the Hugging Face checkpoints.
import { KilnError } from '../core/errors.js';
import { gelu, mul, relu, silu, siluMul } from '../core/ops/pointwise.js';
import type { Tensor } from '../core/tensor.js';
import type { InitOptions } from './init.js';
import { Linear } from './layers.js';
import { Module } from './module.js';

export type Activation = 'silu' | 'gelu' | 'gelu_tanh' | 'relu';

export function activation(name: Activation, x: Tensor): Tensor {
  switch (name) {
    case 'silu': return silu(x);
    case 'gelu': return gelu(x);
    case 'gelu_tanh': return gelu(x, 'tanh');
    case 'relu': return relu(x);
    default: throw new KilnError('argument', 'activation', `unknown activation '${name as string}' (silu, gelu, gelu_tanh, relu)`);
  }
}

const ACTS: readonly Activation[] = ['silu', 'gelu', 'gelu_tanh', 'relu'];
function checkAct(a: Activation): Activation {
  if (!ACTS.includes(a)) throw new KilnError('argument', 'MLP', `unknown activation '${a}' (${ACTS.join(', ')})`);
  return a;
}

export interface MLPConfig extends InitOptions {
  hiddenSize: number;
  intermediateSize: number;
  act?: Activation;
  bias?: boolean;
}

/**
 * Gated MLP: down_proj(act(gate_proj(x)) * up_proj(x)). act silu is SwiGLU (Llama, Mistral,
 * Qwen2), gelu_tanh is GeGLU (Gemma). Shapes: (..., hidden) -> (..., hidden).
 */
export class GatedMLP extends Module<[x: Tensor], Tensor> {
  readonly act: Activation;
  constructor(cfg: MLPConfig) {
    super();
    this.act = checkAct(cfg.act ?? 'silu');
    const lin = (i: number, o: number) => new Linear(i, o, { ...cfg, bias: cfg.bias ?? false });
    this.registerModule('gate_proj', lin(cfg.hiddenSize, cfg.intermediateSize));
    this.registerModule('up_proj', lin(cfg.hiddenSize, cfg.intermediateSize));
    this.registerModule('down_proj', lin(cfg.intermediateSize, cfg.hiddenSize));
  }
  forward(x: Tensor): Tensor {
    const [gate, up, down] = ['gate_proj', 'up_proj', 'down_proj'].map((n) => this.child<Linear>(n));
    const g = gate.call(x);
    const u = up.call(x);
    return down.call(this.act === 'silu' ? siluMul(g, u) : mul(activation(this.act, g), u)); // SwiGLU: one kernel
  }
}

/** Two-layer MLP: fc2(act(fc1(x))) (GELU for GPT-2/BERT-style blocks, ReLU for the original). */
export class MLP extends Module<[x: Tensor], Tensor> {
  readonly act: Activation;
  constructor(cfg: MLPConfig) {
    super();
    this.act = checkAct(cfg.act ?? 'gelu');
    this.registerModule('fc1', new Linear(cfg.hiddenSize, cfg.intermediateSize, { ...cfg, bias: cfg.bias ?? true }));
    this.registerModule('fc2', new Linear(cfg.intermediateSize, cfg.hiddenSize, { ...cfg, bias: cfg.bias ?? true }));
  }
  forward(x: Tensor): Tensor {
    return this.child<Linear>('fc2').call(activation(this.act, this.child<Linear>('fc1').call(x)));
  }
}
