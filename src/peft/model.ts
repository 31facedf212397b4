// getPeftModel: freezes a model, wraps its target Linears in LoraLinear, and returns a PeftModel
// whose parameter names are PEFT's (base_model.model.<path>...), as peft.get_peft_model does.
// Target matching follows PEFT's check_target_module_exists (tuners_utils.py).
import { KilnError } from '../core/errors.js';
import type { Generator } from '../core/ops/creation.js';
import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { checkInit, loraConfig, loraScaling, patternKey, type LoraConfig } from './config.js';
import { LoraLinear } from './lora.js';

/** The architectures whose kiln parameter names are their Hugging Face names (adapters export as they are). */
export const SAME_NAMES = ['llama', 'mistral', 'qwen2', 'gemma'];

/** A plain container (PEFT's LoraModel): its child 'model' is the wrapped model. */
class Holder extends Module {
  forward(): never {
    throw new KilnError('argument', 'PeftModel', 'call the PeftModel itself');
  }
}

export interface PeftModelOptions {
  /** the model's Hugging Face model_type (loadModel's modelType): decides whether adapters can be exported under PEFT's names */
  modelType?: string | null;
  /** draws the new adapters' initial weights (default: the default generator) */
  generator?: Generator;
}

/** A loaded model as loadModel returns it. */
interface Loaded {
  model: Module;
  modelType?: string;
}

/**
 * A model with LoRA adapters. Calling it calls the model. Parameters are named as in PEFT's
 * state dict (base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight).
 */
export class PeftModel extends Module {
  readonly peftConfig = new Map<string, LoraConfig>();
  readonly modelType: string | null;
  private activeName: string | null;

  constructor(model: Module, modelType: string | null) {
    super();
    this.registerModule('base_model', new Holder()).registerModule('model', model);
    this.modelType = modelType;
    this.activeName = null;
  }

  /** The wrapped model. */
  get model(): Module {
    return this.child('base_model').child('model');
  }

  forward(...args: unknown[]): unknown {
    return this.model.call(...args);
  }

  /** The active adapter's name (null while adapters are disabled by setAdapter(null)). */
  get activeAdapter(): string | null {
    return this.activeName;
  }

  /** Every LoraLinear by its path in the model. */
  loraLayers(): [string, LoraLinear][] {
    return [...this.model.namedModules()].filter((e): e is [string, LoraLinear] => e[1] instanceof LoraLinear);
  }

  /**
   * Adds an adapter by config (PEFT's add_adapter): its targets are wrapped (or gain another
   * adapter beside the existing ones). Everything is checked before anything is changed.
   */
  addAdapter(name: string, config: Partial<LoraConfig> | LoraConfig, opts: { generator?: Generator; init?: boolean } = {}): void {
    if (!/^[^.\s]+$/.test(name)) throw new KilnError('argument', 'getPeftModel', `adapter name ${JSON.stringify(name)} must be non-empty with no dots or spaces`);
    if (this.peftConfig.has(name)) throw new KilnError('argument', 'getPeftModel', `an adapter named '${name}' exists already`);
    const c = loraConfig(config);
    if (opts.init !== false) checkInit(c);
    const targets = findTargets(this.model, c);
    findModulesToSave(this.model, c);
    // all checked: now change the model
    this.model.freeze();
    for (const [path, r, alpha] of targets) {
      let layer = this.model.getSubmodule(path);
      if (!(layer instanceof LoraLinear)) {
        const wrapped = new LoraLinear(layer as Linear);
        wrapped.training = layer.training;
        this.model.setSubmodule(path, wrapped);
        layer = wrapped;
      }
      (layer as LoraLinear).addAdapter(name, { r, alpha, scaling: loraScaling(alpha, r, c.use_rslora), dropout: c.lora_dropout, useDora: c.use_dora }, c.init_lora_weights as never, opts.generator);
    }
    if (c.target_modules === null || (typeof c.target_modules === 'string' && c.target_modules.toLowerCase() === 'all-linear')) c.target_modules = minimalTargets(this.model, targets.map((t) => t[0]));
    this.peftConfig.set(name, c);
    if (this.activeName === null && this.peftConfig.size === 1) this.activeName = name;
    this.setAdapter(this.activeName);
  }

  /**
   * Makes one adapter the active (and, unless inference_mode, trainable) one; null disables every
   * adapter (the base model alone). Biases and modules_to_save follow the active config.
   */
  setAdapter(name: string | null): void {
    if (name !== null && !this.peftConfig.has(name)) throw new KilnError('argument', 'setAdapter', `no adapter named '${name}' (adapters: ${[...this.peftConfig.keys()].join(', ') || 'none'})`);
    this.activeName = name;
    this.model.freeze();
    for (const [, l] of this.loraLayers()) {
      l.active = name !== null && l.adapters.has(name) ? [name] : [];
      l.disabled = name === null;
    }
    if (name === null) return;
    const c = this.peftConfig.get(name)!;
    if (c.inference_mode) return;
    for (const [, l] of this.loraLayers()) {
      if (!l.adapters.has(name)) continue;
      for (const d of ['lora_A', 'lora_B', 'lora_magnitude_vector']) l.child(d).unfreeze(`${name}.**`);
    }
    if (c.bias === 'all') this.model.unfreeze('**.bias');
    if (c.bias === 'lora_only') for (const [, l] of this.loraLayers()) if (l.adapters.has(name)) l.base.unfreeze('bias');
    for (const path of findModulesToSave(this.model, c)) this.model.getSubmodule(path).unfreeze();
  }

  /**
   * Runs fn with every adapter off (the base model alone) and restores the previous state after,
   * also when fn throws or its promise rejects (PEFT's `with model.disable_adapter():`). As PEFT,
   * merged adapters are unmerged first and stay unmerged.
   */
  disableAdapter<T>(fn: () => T): T {
    return this.scoped((l) => {
      l.disabled = true;
    }, fn);
  }

  /**
   * Per-call adapter choice: runs fn with only `name` applied (null: none) and restores the
   * previous adapters after, also on throw or rejection. Trainability is left as setAdapter made
   * it. Refused while adapters are merged (as PEFT refuses adapter_names then). A promise-returning
   * fn keeps the choice until it settles: calls interleaved meanwhile see it too.
   */
  withAdapter<T>(name: string | null, fn: () => T): T {
    if (name !== null && !this.peftConfig.has(name)) throw new KilnError('argument', 'withAdapter', `no adapter named '${name}' (adapters: ${[...this.peftConfig.keys()].join(', ') || 'none'})`);
    const merged = this.loraLayers().find(([, l]) => l.merged.length);
    if (merged) throw new KilnError('argument', 'withAdapter', `${merged[0]} has adapter '${merged[1].merged[0]}' merged into its weight: unmerge() first`);
    return this.scoped((l) => {
      l.active = name !== null && l.adapters.has(name) ? [name] : [];
      l.disabled = name === null;
    }, fn);
  }

  /** Applies `set` to every LoraLinear for the duration of fn (sync, or until its promise settles). */
  private scoped<T>(set: (l: LoraLinear) => void, fn: () => T): T {
    const saved = this.loraLayers().map(([, l]) => [l, l.active, l.disabled] as const);
    const restore = () => {
      for (const [l, active, disabled] of saved) {
        l.active = active;
        l.disabled = disabled;
      }
    };
    let out: T;
    try {
      for (const [l] of saved) set(l);
      out = fn();
    } catch (e) {
      restore();
      throw e;
    }
    if (out instanceof Promise) return out.finally(restore) as T;
    restore();
    return out;
  }

  /**
   * Removes an adapter and frees its tensors (PEFT's delete_adapter). If it was the active one,
   * the first remaining adapter becomes active (null when none is left). A layer left with no
   * adapter gets its base layer back in its place. A merged adapter is refused: unmerge first.
   */
  deleteAdapter(name: string): void {
    if (!this.peftConfig.has(name)) throw new KilnError('argument', 'deleteAdapter', `no adapter named '${name}' (adapters: ${[...this.peftConfig.keys()].join(', ') || 'none'})`);
    const layers = this.loraLayers();
    const merged = layers.find(([, l]) => l.merged.includes(name));
    if (merged) throw new KilnError('argument', 'deleteAdapter', `adapter '${name}' is merged into ${merged[0]}: unmerge() first`);
    for (const [path, l] of layers) {
      if (!l.adapters.has(name)) continue;
      l.deleteAdapter(name);
      if (!l.adapters.size) this.model.setSubmodule(path, l.base);
    }
    this.peftConfig.delete(name);
    if (this.activeName === name) this.activeName = this.peftConfig.keys().next().value ?? null;
    this.setAdapter(this.activeName);
  }

  /** [trainable, all] parameter counts, as PEFT's get_nb_trainable_parameters (a quantized weight counts its N·K values). */
  nbTrainableParameters(): [number, number] {
    let trainable = 0;
    let all = 0;
    for (const [, p] of this.namedParameters()) {
      all += p.size;
      if (p.requiresGrad) trainable += p.size;
    }
    for (const [, m] of this.namedModules()) if (m instanceof Linear && m.quantized) all += m.quantized.N * m.quantized.K;
    return [trainable, all];
  }

  /** PEFT's print_trainable_parameters line: "trainable params: N || all params: M || trainable%: P". */
  trainableParametersLine(): string {
    const [t, a] = this.nbTrainableParameters();
    const f = (n: number) => n.toLocaleString('en-US');
    return `trainable params: ${f(t)} || all params: ${f(a)} || trainable%: ${((100 * t) / a).toFixed(4)}`;
  }

  printTrainableParameters(): void {
    console.log(this.trainableParametersLine()); // eslint-disable-line no-console
  }

  /** Merges the active adapter into the base weights (safeMerge: checks finiteness first, per layer). */
  async merge(opts: { safeMerge?: boolean; adapterNames?: string[] } = {}): Promise<void> {
    const names = opts.adapterNames ?? (this.activeName ? [this.activeName] : []);
    for (const n of names) if (!this.peftConfig.has(n)) throw new KilnError('argument', 'merge', `no adapter named '${n}'`);
    const layers = this.loraLayers();
    for (const [, l] of layers) if (l.base.quantized) throw new KilnError('argument', 'merge', `the base weights are quantized (${l.base.quantized.type}); merging needs float weights (load with quantize: 'none')`);
    for (const [path, l] of layers) {
      try {
        await l.merge(names.filter((n) => l.adapters.has(n)), opts.safeMerge ?? false);
      } catch (e) {
        for (const [, done] of layers) done.unmerge(); // nothing half-merged
        throw new KilnError((e as KilnError).code ?? 'argument', 'merge', `${path}: ${(e as Error).message.replace(/^merge: /, '')}`);
      }
    }
  }

  unmerge(): void {
    for (const [, l] of this.loraLayers()) l.unmerge();
  }

  /**
   * Merges the active adapter (or none with merge: false) and returns the model with its LoraLinears
   * replaced by their base layers again (PEFT's merge_and_unload / unload). The PeftModel is spent.
   */
  async mergeAndUnload(opts: { safeMerge?: boolean; adapterNames?: string[]; merge?: boolean } = {}): Promise<Module> {
    if (opts.merge !== false) await this.merge(opts);
    for (const [path, l] of this.loraLayers()) {
      const base = l.base;
      for (const n of [...l.adapters.keys()]) {
        if (l.merged.includes(n)) l.merged.splice(l.merged.indexOf(n), 1);
        l.deleteAdapter(n);
      }
      this.model.setSubmodule(path, base);
    }
    this.peftConfig.clear();
    this.activeName = null;
    return this.model;
  }
}

/**
 * Wraps the model's target Linears with a LoRA adapter (PEFT's get_peft_model): the base is frozen,
 * the adapter trainable. `model` may be loadModel's result (its modelType then decides whether
 * the adapter can be saved in PEFT's format).
 */
export function getPeftModel(model: Module | Loaded, config: Partial<LoraConfig> | LoraConfig, adapterName = 'default', opts: PeftModelOptions = {}): PeftModel {
  const m = model instanceof Module ? model : model.model;
  const type = opts.modelType ?? (model instanceof Module ? null : model.modelType ?? null);
  if (!(m instanceof Module)) throw new KilnError('argument', 'getPeftModel', 'model must be a Module or loadModel\'s result');
  if (m instanceof PeftModel) throw new KilnError('argument', 'getPeftModel', 'the model is a PeftModel already: use addAdapter');
  if ([...m.namedModules()].some(([, x]) => x instanceof LoraLinear)) throw new KilnError('argument', 'getPeftModel', 'the model has LoRA layers already');
  const peft = new PeftModel(m, type);
  peft.addAdapter(adapterName, config, { generator: opts.generator }); // checks everything before it changes the model
  return peft;
}

/** PEFT's check_target_module_exists for one module name. */
export function isTarget(c: LoraConfig, key: string): boolean {
  const ex = c.exclude_modules;
  if (ex && (typeof ex === 'string' ? new RegExp(`^(?:${ex})$`).test(key) : ex.includes(key) || ex.some((e) => key.endsWith(`.${e}`)))) return false;
  if (c.modules_to_save?.some((m) => new RegExp(`(^|.*\\.)${m}($|\\..*)`).test(key))) return false;
  const t = c.target_modules;
  if (typeof t === 'string') return new RegExp(`^(?:${t})$`).test(key);
  if (!t) return false;
  if (t.includes(key)) return true;
  if (!t.some((s) => key.endsWith(`.${s}`))) return false;
  const lt = c.layers_to_transform;
  if (lt === null || (Array.isArray(lt) && !lt.length)) return true;
  const pats = c.layers_pattern === null || !c.layers_pattern.length ? null : typeof c.layers_pattern === 'string' ? [c.layers_pattern] : c.layers_pattern;
  // lazy: the first numbered segment is the layer index (not an expert's index further in)
  const m = pats ? pats.map((p) => new RegExp(`^.*?\\.${p}\\.(\\d+)\\.`).exec(key)).find((x) => x) : /^.*?\.[^.]*\.(\d+)\./.exec(key);
  if (!m) return false;
  const i = Number(m[1]);
  return typeof lt === 'number' ? i === lt : lt.includes(i);
}

/** [path, r, alpha] of every module to wrap; a target that is no Linear, or none at all, is an error. */
export function findTargets(model: Module, c: LoraConfig): [string, number, number][] {
  const mods = [...model.namedModules()];
  const linear = (x: Module): boolean => x instanceof Linear || x instanceof LoraLinear;
  let conf = c;
  if (c.target_modules === null) conf = { ...c, target_modules: ['q_proj', 'v_proj'] }; // PEFT's default for llama-style models
  if (typeof c.target_modules === 'string' && c.target_modules.toLowerCase() === 'all-linear') {
    // every Linear but the output layer (lm_head) and the adapters' own
    const names = mods.filter(([n, x]) => n && linear(x) && n !== 'lm_head' && !/\.(lora_A|lora_B|base_layer)(\.|$)/.test(n)).map(([n]) => n);
    conf = { ...c, target_modules: names };
  }
  const out: [string, number, number][] = [];
  for (const [name, m] of mods) {
    if (!name || /\.(lora_A|lora_B|lora_magnitude_vector|base_layer)(\.|$)/.test(name) || !isTarget(conf, name)) continue;
    if (!linear(m)) throw new KilnError('argument', 'getPeftModel', `target_modules matches '${name}', a ${m.constructor.name}; LoRA targets must be Linear layers`);
    const rk = patternKey(c.rank_pattern, name);
    const ak = patternKey(c.alpha_pattern, name);
    out.push([name, rk ? c.rank_pattern[rk] : c.r, ak ? c.alpha_pattern[ak] : c.lora_alpha]);
  }
  if (!out.length) {
    const some = mods.filter(([n, x]) => n && x instanceof Linear).slice(0, 6).map(([n]) => n);
    throw new KilnError('argument', 'getPeftModel', `target_modules ${JSON.stringify(c.target_modules ?? ['q_proj', 'v_proj'])} matches no Linear in the model (e.g. ${some.join(', ')})`);
  }
  return out;
}

/** Paths of the modules named by modules_to_save (PEFT: a module whose name ends in one). */
export function findModulesToSave(model: Module, c: LoraConfig): string[] {
  if (!c.modules_to_save?.length) return [];
  const found: string[] = [];
  for (const want of c.modules_to_save) {
    const hits = [...model.namedModules()].filter(([n]) => n === want || n.endsWith(`.${want}`)).map(([n]) => n);
    if (!hits.length) throw new KilnError('argument', 'getPeftModel', `modules_to_save: no module named '${want}' in the model`);
    found.push(...hits);
  }
  return found;
}

/**
 * The shortest dotted suffixes that name exactly these modules (PEFT's _find_minimal_target_modules,
 * what it saves for 'all-linear'): ['q_proj', 'v_proj'] rather than every full path.
 */
function minimalTargets(model: Module, targets: string[]): string[] {
  const set = new Set(targets);
  const others = [...model.namedModules()].map(([n]) => n).filter((n) => n && !set.has(n));
  const suffixes = (s: string) => s.split('.').map((_, i, p) => p.slice(i).join('.')).reverse();
  const otherSuffixes = new Set(others.flatMap(suffixes));
  const out = new Set<string>();
  for (const t of targets) out.add(suffixes(t).find((s) => !otherSuffixes.has(s)) ?? t);
  return [...out].sort();
}
