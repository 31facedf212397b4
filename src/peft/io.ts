// Adapters in Hugging Face PEFT's files (peft/utils/save_and_load.py, peft_model.py):
// adapter_config.json (every LoraConfig field, keys sorted, inference_mode true) and
// adapter_model.safetensors (metadata {"format": "pt"}) whose keys drop the adapter name:
// base_model.model.<path>.lora_A.weight (r, in), .lora_B.weight (out, r), .lora_magnitude_vector
// (out,) for DoRA; an adapter not named "default" goes in a subfolder of that name. Files are
// opened through models/sources.ts, the one place that opens files.
import { KilnError, fmtShape } from '../core/errors.js';
import { noGrad } from '../core/autograd.js';
import { nodeModule } from '../core/env.js';
import { fromValues } from '../core/ops/creation.js';
import { cast } from '../core/ops/pointwise.js';
import type { Tensor } from '../core/tensor.js';
import { Module } from '../nn/module.js';
import { SafetensorsFile, writeSafetensors, type SafetensorsEntry } from '../models/loaders/safetensors.js';
import { filesFolder, hubFolder, isRepoId, pathFolder, pathKind, urlFolder, type Folder, type ModelFiles, type SourceOptions } from '../models/sources.js';
import { configJson, loraConfig, type LoraConfig } from './config.js';
import { findModulesToSave, findTargets, getPeftModel, PeftModel } from './model.js';
import { adapterMap, checkMappable, exportMapped, importMapped, mappedTargets, type KilnAdapterLora } from './mapped.js';

export const CONFIG_NAME = 'adapter_config.json';
export const WEIGHTS_NAME = 'adapter_model.safetensors';
const PREFIX = 'base_model.model.';

/** transformers' class for each model_type whose names kiln exports (PEFT's auto_mapping when task_type is null). */
const HF_CLASS: Record<string, [string, string]> = {
  llama: ['LlamaForCausalLM', 'llama'], mistral: ['MistralForCausalLM', 'mistral'], qwen2: ['Qwen2ForCausalLM', 'qwen2'], gemma: ['GemmaForCausalLM', 'gemma'],
  gpt2: ['GPT2LMHeadModel', 'gpt2'], phi3: ['Phi3ForCausalLM', 'phi3'], mixtral: ['MixtralForCausalLM', 'mixtral'],
};

/** The tensors of one adapter under PEFT's file keys, as live parameters. */
export function adapterTensors(peft: PeftModel, name: string): Map<string, Tensor> {
  const c = peft.peftConfig.get(name)!;
  const out = new Map<string, Tensor>();
  for (const [path, l] of peft.loraLayers()) {
    if (!l.adapters.has(name)) continue;
    out.set(`${PREFIX}${path}.lora_A.weight`, l.A(name).weight);
    out.set(`${PREFIX}${path}.lora_B.weight`, l.B(name).weight);
    const m = l.magnitude(name);
    if (m) out.set(`${PREFIX}${path}.lora_magnitude_vector`, m.weight);
    if (c.bias === 'lora_only' && l.base.bias) out.set(`${PREFIX}${path}.base_layer.bias`, l.base.bias);
  }
  if (c.bias === 'all') for (const [n, p] of peft.model.namedParameters()) if (n.endsWith('.bias') && !/\.lora_[AB]\./.test(n)) out.set(PREFIX + n, p);
  for (const path of findModulesToSave(peft.model, c)) {
    for (const [n, p] of peft.model.getSubmodule(path).namedParameters()) out.set(`${PREFIX}${path}.${n}`, p);
  }
  return out;
}

/** One adapter's LoRA factors per kiln module, as values. */
async function kilnLoras(peft: PeftModel, name: string): Promise<KilnAdapterLora[]> {
  const out: KilnAdapterLora[] = [];
  for (const [path, l] of peft.loraLayers()) {
    const s = l.adapters.get(name);
    if (!s) continue;
    const f32 = async (t: Tensor) => Float32Array.from((await noGrad(() => cast(t, 'f32')).toArray()) as Float32Array);
    const m = l.magnitude(name);
    out.push({ path, A: await f32(l.A(name).weight), B: await f32(l.B(name).weight), r: s.r, inFeatures: l.base.inFeatures, outFeatures: l.base.outFeatures, scaling: s.scaling, ...(m ? { m: await f32(m.weight) } : {}) });
  }
  return out;
}

export interface SaveOptions {
  /** the adapters to save (default: all); "default" at the top, others in a subfolder of their name */
  selectedAdapters?: string[];
  /** written as base_model_name_or_path when the config has none */
  baseModelNameOrPath?: string;
}

/**
 * Saves adapters as PEFT's save_pretrained does: to a folder (Node, Deno), or, with 'files', as
 * bytes by file name ({'adapter_config.json', 'adapter_model.safetensors', 'other/...'}). Returns the files.
 */
export async function savePretrained(peft: PeftModel, dir: string, opts: SaveOptions = {}): Promise<Record<string, Uint8Array>> {
  if (!(peft instanceof PeftModel)) throw new KilnError('argument', 'savePretrained', 'expects the PeftModel getPeftModel or loadAdapter returned');
  const map = adapterMap(peft.modelType, 'savePretrained', peft.model);
  const names = opts.selectedAdapters ?? [...peft.peftConfig.keys()];
  for (const n of names) if (!peft.peftConfig.has(n)) throw new KilnError('argument', 'savePretrained', `no adapter named '${n}' (adapters: ${[...peft.peftConfig.keys()].join(', ')})`);
  const files: Record<string, Uint8Array> = {};
  for (const name of names) {
    const c = peft.peftConfig.get(name)!;
    const entries: Record<string, SafetensorsEntry> = {};
    let mapped: Partial<LoraConfig> = {};
    if (map) {
      checkMappable(c, map.arch, 'savePretrained', `adapter '${name}'`);
      const out = exportMapped(map, c, await kilnLoras(peft, name));
      for (const [key, t] of out.tensors) entries[key] = { dtype: 'F32', shape: t.shape, data: t.data };
      mapped = out.config;
    }
    for (const [key, t] of map ? [] : adapterTensors(peft, name)) {
      const f32 = noGrad(() => cast(t, 'f32'));
      entries[key] = { dtype: 'F32', shape: [...t.shape], data: (await f32.toArray()) as Float32Array };
      if (f32 !== t) f32.dispose();
    }
    const sub = name === 'default' ? '' : `${name}/`;
    const cls = peft.modelType ? HF_CLASS[peft.modelType] : undefined;
    const auto = c.task_type === null && cls ? { base_model_class: cls[0], parent_library: `transformers.models.${cls[1]}.modeling_${cls[1]}` } : null;
    files[`${sub}${CONFIG_NAME}`] = new TextEncoder().encode(configJson({ ...c, ...mapped }, {
      inference_mode: true, base_model_name_or_path: c.base_model_name_or_path ?? opts.baseModelNameOrPath ?? null, auto_mapping: auto,
    }));
    files[`${sub}${WEIGHTS_NAME}`] = writeSafetensors(entries, { format: 'pt' });
  }
  if (dir !== 'files') {
    const fs = await nodeModule<typeof import('node:fs/promises')>('node:fs/promises');
    for (const [f, bytes] of Object.entries(files)) {
      const path = `${dir.replace(/\/+$/, '')}/${f}`;
      await fs.mkdir(path.slice(0, path.lastIndexOf('/')), { recursive: true });
      await fs.writeFile(path, bytes);
    }
  }
  return files;
}

export interface LoadAdapterOptions extends SourceOptions {
  /** train the loaded adapter (PEFT's is_trainable); default false: loaded for inference, frozen */
  isTrainable?: boolean;
  /** with a lone adapter_model.safetensors (bytes, Blob, File): its adapter_config.json's content */
  config?: Record<string, unknown>;
  /** the model's model_type when `model` is a bare Module (loadModel's result carries it) */
  modelType?: string;
}

/** A folder of adapter files, whatever holds them (reusing the model loader's sources). */
async function adapterFolder(source: string | ModelFiles, opts: LoadAdapterOptions): Promise<Folder> {
  if (typeof source !== 'string') return filesFolder(source, opts);
  if (/^https?:\/\//i.test(source)) return urlFolder(source, { ...opts, files: opts.files ?? [CONFIG_NAME, WEIGHTS_NAME] });
  const kind = await pathKind(source);
  if (kind === 'dir') return pathFolder(source, opts);
  if (kind === null && isRepoId(source)) return hubFolder(source, opts);
  throw new KilnError('argument', 'loadAdapter', `${source}: not an adapter folder (${kind === 'file' ? 'a file: pass its folder' : 'no such path'})`);
}

async function readConfig(folder: Folder, opts: LoadAdapterOptions): Promise<{ json: Record<string, unknown>; where: string }> {
  const where = `${folder.name}/${CONFIG_NAME}`;
  if (opts.config) return { json: opts.config, where: 'options.config' };
  if (!(await folder.has(CONFIG_NAME))) throw new KilnError('config', 'loadAdapter', `${folder.name} has no ${CONFIG_NAME}`);
  const src = await folder.source(CONFIG_NAME);
  try {
    const json = JSON.parse(new TextDecoder().decode(await src.read(0, src.size)));
    if (!json || typeof json !== 'object' || Array.isArray(json)) throw new Error('not a JSON object');
    return { json, where };
  } catch (e) {
    throw new KilnError('config', 'loadAdapter', `${where}: not valid JSON (${(e as Error).message})`);
  } finally {
    await src.close?.();
  }
}

/**
 * Loads a PEFT LoRA/DoRA adapter onto a model (PEFT's PeftModel.from_pretrained / load_adapter):
 * from a folder path, a URL folder, a hub repo id, a folder's files by name, or the safetensors
 * file alone (bytes, Blob, File) with opts.config. `model` is a PeftModel (another adapter beside
 * the ones there), a Module, or loadModel's result. Everything is checked (peft_type, config
 * fields, every key present, none extra, every shape) before the model is touched.
 */
export async function loadAdapter(
  model: PeftModel | Module | { model: Module; modelType?: string },
  source: string | ModelFiles | Blob | ArrayBuffer | Uint8Array,
  adapterName = 'default',
  opts: LoadAdapterOptions = {},
): Promise<PeftModel> {
  const isBlob = typeof Blob !== 'undefined' && source instanceof Blob;
  if (isBlob || source instanceof ArrayBuffer || source instanceof Uint8Array) {
    if (!opts.config) throw new KilnError('argument', 'loadAdapter', `a lone ${WEIGHTS_NAME} needs its ${CONFIG_NAME} as opts.config`);
    source = { [WEIGHTS_NAME]: source as Blob };
  }
  const folder = await adapterFolder(source as string | ModelFiles, opts);
  const { json, where } = await readConfig(folder, opts);
  if (json.peft_type !== 'LORA') throw new KilnError('config', 'loadAdapter', `${where}: peft_type: ${JSON.stringify(json.peft_type)} is not supported (kiln loads "LORA" adapters)`);
  const c: LoraConfig = loraConfig(json as Partial<LoraConfig>, where, 'config');
  c.inference_mode = !opts.isTrainable;

  const base = model instanceof PeftModel ? model.model : model instanceof Module ? model : model.model;
  const modelType = model instanceof PeftModel ? model.modelType : opts.modelType ?? (model instanceof Module ? null : model.modelType ?? null);
  // an adapter that names the class it was trained on (PEFT's auto_mapping) must be for this architecture
  const trainedOn = (json.auto_mapping as { base_model_class?: unknown } | null | undefined)?.base_model_class;
  const cls = modelType ? HF_CLASS[modelType]?.[0] : undefined;
  if (typeof trainedOn === 'string' && cls && trainedOn !== cls)
    throw new KilnError('config', 'loadAdapter', `${where}: auto_mapping.base_model_class: the adapter was trained on ${trainedOn}, but the model is ${cls} (model_type '${modelType}')`);
  const map = adapterMap(modelType, 'loadAdapter', base);
  if (map) checkMappable(c, map.arch, 'loadAdapter', where);
  if (model instanceof PeftModel && model.peftConfig.has(adapterName)) throw new KilnError('argument', 'loadAdapter', `an adapter named '${adapterName}' exists already`);

  if (!(await folder.has(WEIGHTS_NAME))) {
    const bin = await folder.has('adapter_model.bin').catch(() => false);
    throw new KilnError('config', 'loadAdapter', `${folder.name} has no ${WEIGHTS_NAME}${bin ? ' (adapter_model.bin is a pickle: kiln reads safetensors only)' : ''}`);
  }
  const src = await folder.source(WEIGHTS_NAME);
  const file = `${folder.name}/${WEIGHTS_NAME}`;
  try {
    const st = await SafetensorsFile.open(src);
    // the keys and shapes this config makes on this model (in the checkpoint's modules when mapped)
    const want = new Map<string, number[]>();
    const hfTargets = map ? mappedTargets(map, c) : [];
    for (const t of hfTargets) {
      want.set(`${PREFIX}${t.name}.lora_A.weight`, [t.r, t.in]);
      want.set(`${PREFIX}${t.name}.lora_B.weight`, [t.out, t.r]);
      if (c.use_dora) want.set(`${PREFIX}${t.name}.lora_magnitude_vector`, [t.out]);
    }
    const baseKey = (n: string): string => n.replace(/\.base_layer\./, '.'); // a wrapped layer's own parameter
    const params = new Map([...base.namedParameters()].map(([n, p]) => [n, p] as const));
    const bareParams = new Map([...params].map(([n, p]) => [baseKey(n), p] as const));
    let targets: [string, number, number][] = [];
    if (!map) {
      try {
        targets = findTargets(base, c);
      } catch (e) {
        throw new KilnError('config', 'loadAdapter', `${where}: ${(e as Error).message.replace(/^getPeftModel: /, '')}`);
      }
      for (const [path, r] of targets) {
        const l = base.getSubmodule(path) as unknown as { inFeatures: number; outFeatures: number };
        want.set(`${PREFIX}${path}.lora_A.weight`, [r, l.inFeatures]);
        want.set(`${PREFIX}${path}.lora_B.weight`, [l.outFeatures, r]);
        if (c.use_dora) want.set(`${PREFIX}${path}.lora_magnitude_vector`, [l.outFeatures]);
      }
      const targetSet = new Set(targets.map((t) => t[0]));
      if (c.bias === 'all') for (const [n, p] of bareParams) if (n.endsWith('.bias') && !/\.lora_/.test(n)) want.set(PREFIX + (targetSet.has(n.slice(0, -5)) ? `${n.slice(0, -5)}.base_layer.bias` : n), [...p.shape]);
      if (c.bias === 'lora_only') for (const t of targets) { const b = bareParams.get(`${t[0]}.bias`); if (b) want.set(`${PREFIX}${t[0]}.base_layer.bias`, [...b.shape]); }
      let saved: string[];
      try {
        saved = findModulesToSave(base, c);
      } catch (e) {
        throw new KilnError('config', 'loadAdapter', `${where}: ${(e as Error).message.replace(/^getPeftModel: /, '')}`);
      }
      for (const path of saved) for (const [n, p] of base.getSubmodule(path).namedParameters()) want.set(`${PREFIX}${path}.${n}`, [...p.shape]);
    }
    const have = st.tensors;
    const missing = [...want.keys()].filter((k) => !have.has(k));
    const extra = [...have.keys()].filter((k) => !want.has(k));
    if (missing.length) throw new KilnError('config', 'loadAdapter', `${file}: missing key ${missing[0]}${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''}, which ${where} (target_modules ${JSON.stringify(c.target_modules)}) makes on this model`);
    if (extra.length) throw new KilnError('config', 'loadAdapter', `${file}: unexpected key ${extra[0]}${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''}: no such module or adapter tensor in this model with ${where} (an adapter for another model or architecture?)`);
    for (const [k, shape] of want) {
      const t = have.get(k)!;
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new KilnError('shape', 'loadAdapter', `${file}: ${k} is ${fmtShape(t.shape)}, the model and ${where} (r, target shapes) need ${fmtShape(shape)}`);
      }
      if (!['F32', 'F16', 'BF16'].includes(t.dtype)) throw new KilnError('dtype', 'loadAdapter', `${file}: ${k} is ${t.dtype}; adapter tensors are F32, F16 or BF16`);
    }
    let values = new Map<string, Float32Array>();
    for (const k of want.keys()) values.set(k, await st.float32(k));
    // mapped: the checkpoint modules' LoRAs become kiln's, each kiln module named with its own r and alpha
    let kc = c;
    if (map) {
      const kv = new Map<string, Float32Array>();
      const rank: Record<string, number> = {};
      const alpha: Record<string, number> = {};
      for (const t of hfTargets) {
        const [a, b] = [values.get(`${PREFIX}${t.name}.lora_A.weight`)!, values.get(`${PREFIX}${t.name}.lora_B.weight`)!];
        for (const l of importMapped(map, t, a, b, c.use_rslora, values.get(`${PREFIX}${t.name}.lora_magnitude_vector`))) {
          kv.set(`${PREFIX}${l.path}.lora_A.weight`, l.A.data);
          kv.set(`${PREFIX}${l.path}.lora_B.weight`, l.B.data);
          if (l.m) kv.set(`${PREFIX}${l.path}.lora_magnitude_vector`, l.m);
          [rank[l.path], alpha[l.path]] = [l.r, l.alpha];
        }
      }
      values = kv;
      kc = { ...c, target_modules: Object.keys(rank), rank_pattern: rank, alpha_pattern: alpha, layers_to_transform: null, layers_pattern: null, exclude_modules: null };
    }

    // all checked: wrap and fill
    const peft = model instanceof PeftModel ? model : getPeftModel(base, { ...kc, init_lora_weights: false }, adapterName, { modelType });
    if (model instanceof PeftModel) peft.addAdapter(adapterName, { ...kc, init_lora_weights: false }, { init: false });
    const conf = peft.peftConfig.get(adapterName)!;
    conf.init_lora_weights = c.init_lora_weights;
    conf.target_modules = kc.target_modules;
    const live = adapterTensors(peft, adapterName);
    noGrad(() => {
      for (const [k, v] of values) {
        const p = live.get(k) ?? params.get(k.slice(PREFIX.length)) ?? bareParams.get(baseKey(k.slice(PREFIX.length)));
        if (!p) throw new KilnError('config', 'loadAdapter', `${file}: ${k}: no parameter to load it into`); // unreachable: every key was matched above
        p.assign(cast(fromValues(v, p.shape, { backend: p.backend }), p.dtype));
      }
    });
    if (!(model instanceof PeftModel) || peft.activeAdapter === null) peft.setAdapter(adapterName);
    else peft.setAdapter(peft.activeAdapter);
    return peft;
  } finally {
    await src.close?.();
  }
}

