// LoraLinear: a Linear with named low-rank adapters beside it, as PEFT's lora.Linear
// (peft/tuners/lora/layer.py) with its DoRA variant (dora.py). Parameter names follow PEFT's
// state dict: base_layer.weight, lora_A.<adapter>.weight (r, in), lora_B.<adapter>.weight
// (out, r), lora_magnitude_vector.<adapter>.weight (out,).
import { KilnError } from '../core/errors.js';
import { noGrad } from '../core/autograd.js';
import { matmul, linear } from '../core/ops/matmul.js';
import { add, cast, div, mul, sqrt, square, sub } from '../core/ops/pointwise.js';
import { sum } from '../core/ops/reduce.js';
import { reshape } from '../core/ops/shape.js';
import type { Generator } from '../core/ops/creation.js';
import { keep, type Tensor } from '../core/tensor.js';
import { encode, itemSize } from '../core/dtype.js';
import { dropout } from '../nn/attention.js';
import { kaimingUniform, normal, zerosInit } from '../nn/init.js';
import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { dequantize } from '../nn/quant.js';
import type { InitLoraWeights } from './config.js';

/** Named children (torch.nn.ModuleDict): an adapter's module under its name. */
export class AdapterDict<M extends Module = Module> extends Module {
  get(name: string): M | undefined {
    return [...this.children()].find(([n]) => n === name)?.[1] as M | undefined;
  }
  names(): string[] {
    return [...this.children()].map(([n]) => n);
  }
  forward(): never {
    throw new KilnError('argument', 'AdapterDict', 'has no forward');
  }
}

/** DoRA's magnitude: one learned length per output row (PEFT's DoraLinearLayer.weight). */
export class DoraMagnitude extends Module {
  constructor(m: Tensor) {
    super();
    this.registerParameter('weight', m);
  }
  get weight(): Tensor {
    return this.getParameter('weight')!;
  }
  forward(): never {
    throw new KilnError('argument', 'DoraMagnitude', 'has no forward');
  }
}

export interface AdapterSettings {
  r: number;
  alpha: number;
  /** alpha / r, or alpha / sqrt(r) with rsLoRA */
  scaling: number;
  dropout: number;
  useDora: boolean;
}

/**
 * y = base(x) + s · (dropout(x) · Aᵀ) · Bᵀ for each active adapter, never forming B·A in the
 * forward. DoRA: y = base(x) + (m / ‖W + s·B·A‖ − 1) · (x·Wᵀ) + (m / ‖W + s·B·A‖) · s · (x·Aᵀ)·Bᵀ,
 * the row norm detached (DoRA §4.3, as PEFT). A quantized base runs its quantized matmul; the
 * gradient reaches A, B (and m) through it (QLoRA).
 * Shapes: x (..., in) -> (..., out).
 */
export class LoraLinear extends Module {
  readonly adapters = new Map<string, AdapterSettings>();
  /** the adapters the forward applies, in order */
  active: string[] = [];
  /** set by disableAdapter(): the base layer alone */
  disabled = false;
  /** adapters whose update is in the base weight now (merge), in merge order */
  readonly merged: string[] = [];
  /** DoRA: the row norm each merged adapter used, to unmerge exactly (PEFT caches it too) */
  private readonly mergeNorms = new Map<string, Tensor>();

  constructor(base: Linear) {
    super();
    this.registerModule('base_layer', base);
    this.registerModule('lora_A', new AdapterDict<Linear>());
    this.registerModule('lora_B', new AdapterDict<Linear>());
    this.registerModule('lora_magnitude_vector', new AdapterDict<DoraMagnitude>());
  }

  get base(): Linear {
    return this.child<Linear>('base_layer');
  }
  get inFeatures(): number {
    return this.base.inFeatures;
  }
  get outFeatures(): number {
    return this.base.outFeatures;
  }
  A(name: string): Linear {
    return this.child<AdapterDict<Linear>>('lora_A').get(name)!;
  }
  B(name: string): Linear {
    return this.child<AdapterDict<Linear>>('lora_B').get(name)!;
  }
  magnitude(name: string): DoraMagnitude | undefined {
    return this.child<AdapterDict<DoraMagnitude>>('lora_magnitude_vector').get(name);
  }

  /** The base weight as f32 (out, in): dequantized when the base is quantized. A new tensor or the weight itself. */
  baseWeight(): Tensor {
    const b = this.base;
    return b.quantized ? dequantize(b.quantized) : cast(b.weight, 'f32');
  }

  /** Adds an adapter initialised as PEFT does (init true: A kaiming-uniform a=√5, B zeros; 'gaussian': A ~ N(0, 1/r)). */
  addAdapter(name: string, s: AdapterSettings, init: InitLoraWeights, generator?: Generator): void {
    if (this.adapters.has(name)) throw new KilnError('argument', 'LoraLinear', `adapter '${name}' already exists`);
    const backend = (this.base.quantized?.qs ?? this.base.weight).backend;
    const o = { backend, generator };
    const a = new Linear(this.inFeatures, s.r, { ...o, bias: false });
    const b = new Linear(s.r, this.outFeatures, { ...o, bias: false });
    if (init === 'gaussian') a.setParameter('weight', normal([s.r, this.inFeatures], 0, 1 / s.r, o));
    if (init !== false) b.setParameter('weight', zerosInit([this.outFeatures, s.r], o));
    this.child<AdapterDict>('lora_A').registerModule(name, a);
    this.child<AdapterDict>('lora_B').registerModule(name, b);
    this.adapters.set(name, s);
    if (s.useDora) this.child<AdapterDict>('lora_magnitude_vector').registerModule(name, new DoraMagnitude(noGrad(() => this.rowNorm(name))));
    if (!this.active.length) this.active = [name];
  }

  /** Removes an adapter and frees its tensors. */
  deleteAdapter(name: string): void {
    if (this.merged.includes(name)) throw new KilnError('argument', 'LoraLinear', `adapter '${name}' is merged: unmerge first`);
    for (const d of ['lora_A', 'lora_B', 'lora_magnitude_vector']) {
      const dict = this.child<AdapterDict>(d);
      const m = dict.get(name);
      if (!m) continue;
      m.dispose();
      (dict as unknown as { _modules: Map<string, Module> })._modules.delete(name); // Module has no removal yet
    }
    this.adapters.delete(name);
    this.active = this.active.filter((n) => n !== name);
  }

  /**
   * Overwrites an adapter's A (r, in) and B (out, r) in their own storages (hot-swap, combined
   * adapters): the same Tensor objects and buffers, so nothing built on them is rebuilt.
   */
  writeAdapter(name: string, a: ArrayLike<number>, b: ArrayLike<number>): void {
    if (!this.adapters.has(name)) throw new KilnError('argument', 'LoraLinear', `no adapter named '${name}'`);
    writeInPlace(this.A(name).weight, a, `lora_A.${name}`);
    writeInPlace(this.B(name).weight, b, `lora_B.${name}`);
  }

  /** s · B·A (out, in), f32. Materialised only for merging and DoRA's norm. */
  deltaWeight(name: string): Tensor {
    const s = this.adapters.get(name)!;
    return mul(matmul(this.B(name).weight, this.A(name).weight), s.scaling);
  }

  /** ‖W + s·B·A‖ per output row (out,), from the given f32 base weight (default: the current one). */
  private rowNorm(name: string, w = this.baseWeight()): Tensor {
    return sqrt(sum(square(add(w, this.deltaWeight(name))), 1));
  }

  forward(x: Tensor): Tensor {
    if (this.disabled && this.merged.length) this.unmerge(); // as PEFT: a disabled adapter is never in the weight
    let y = this.base.call(x) as Tensor;
    if (this.disabled || this.merged.length) return y;
    for (const name of this.active) {
      const s = this.adapters.get(name);
      if (!s) continue;
      const xd = dropout(x, s.dropout, { training: this.training });
      const lora = linear(linear(xd, this.A(name).weight), this.B(name).weight); // (..., out): never B·A
      const m = this.magnitude(name);
      if (!m) {
        y = add(y, mul(lora, s.scaling));
        continue;
      }
      const w = this.baseWeight();
      const norm = noGrad(() => this.rowNorm(name, w)); // detached, as PEFT
      const scale = div(m.weight, norm); // (out,)
      const bias = this.base.bias;
      // PEFT: without active dropout the base output (less its bias) is reused; with it, recomputed on dropout(x)
      const baseOut = xd === x ? (bias ? sub(y, bias) : y) : linear(xd, w);
      y = add(y, add(mul(sub(scale, 1), baseOut), mul(mul(lora, s.scaling), scale)));
    }
    return y;
  }

  /** Writes the given adapters' updates into the base weight (DoRA: m / ‖W + ΔW‖ · (W + ΔW)). safeMerge: checks finiteness first. */
  async merge(names: string[] = this.active, safeMerge = false): Promise<void> {
    const b = this.base;
    for (const name of names) {
      if (this.merged.includes(name) || !this.adapters.has(name)) continue;
      if (b.quantized) throw new KilnError('argument', 'merge', `adapter '${name}': the base weight is quantized (${b.quantized.type}); merging needs a float base (load with quantize: 'none')`);
      const w = b.weight;
      const [next, norm] = noGrad(() => {
        const wf = cast(w, 'f32');
        const delta = this.deltaWeight(name);
        const m = this.magnitude(name);
        if (!m) return [add(wf, delta), null];
        const n = sqrt(sum(square(add(wf, delta)), 1));
        return [mul(reshape(div(m.weight, n), [-1, 1]), add(wf, delta)), n];
      });
      if (safeMerge) {
        const vals = await next.toArray();
        if (!vals.every(Number.isFinite)) {
          next.dispose();
          norm?.dispose();
          throw new KilnError('argument', 'merge', `NaNs or infinities in the merged weight: adapter '${name}' seems to be broken; nothing was merged into this layer`);
        }
      }
      noGrad(() => w.assign(cast(next, w.dtype)));
      if (norm) this.mergeNorms.set(name, keep(norm));
      this.merged.push(name);
    }
  }

  /** Takes every merged update back out of the base weight, last merged first. */
  unmerge(): void {
    const w = this.base.weight;
    while (this.merged.length) {
      const name = this.merged.pop()!;
      noGrad(() => {
        const wf = cast(w, 'f32');
        const delta = this.deltaWeight(name);
        const m = this.magnitude(name);
        const norm = this.mergeNorms.get(name);
        const orig = m && norm ? sub(div(wf, reshape(div(m.weight, norm), [-1, 1])), delta) : sub(wf, delta);
        w.assign(cast(orig, w.dtype));
      });
      this.mergeNorms.get(name)?.dispose();
      this.mergeNorms.delete(name);
    }
  }
}

/** Writes host values into a tensor's own storage (encoder-ordered on WebGPU: work recorded before sees the old values). */
export function writeInPlace(t: Tensor, values: ArrayLike<number>, what: string): void {
  if (values.length !== t.size) throw new KilnError('shape', 'writeInPlace', `${what}: ${values.length} values for a tensor of ${t.size}`);
  if (!t.isContiguous()) throw new KilnError('argument', 'writeInPlace', `${what}: not contiguous`);
  t.backend.write(t.storage, new Uint8Array(encode(t.dtype, values)), t.offset * itemSize(t.dtype));
}
