// Adapters from the shell: --adapter on the model commands (one or several PEFT folders, optionally
// weighted), `kiln merge` (a Hugging Face folder with the adapters merged in) and `kiln adapter info`.
import { copyFileSync, existsSync, mkdirSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KilnError } from '../core/errors.js';
import { noGrad } from '../core/autograd.js';
import { mul } from '../core/ops/pointwise.js';
import { init } from '../core/runtime.js';
import type { BackendName } from '../backend/backend.js';
import { exportStateDict } from '../models/export.js';
import { configToHF } from '../models/hf.js';
import { loadModel, type LoadedModel, type LoadOptions } from '../models/load.js';
import { SafetensorsFile, writeSafetensors } from '../models/loaders/safetensors.js';
import { pathFolder, pathKind, type Folder } from '../models/sources.js';
import { CONFIG_NAME, WEIGHTS_NAME, loadAdapter, loraConfig, loraScaling, PeftModel } from '../peft/index.js';
import { userMaxFileBytes } from './files.js';

/** --adapter DIR[,DIR...] and --adapter-weights w1,w2 as the commands receive them. */
export interface AdapterFlags {
  adapter?: string;
  adapterWeights?: number[];
}

/** The folders of --adapter (comma-separated), checked against --adapter-weights. */
export function adapterDirs(o: AdapterFlags, op: string): string[] {
  if (o.adapter === undefined) {
    if (o.adapterWeights) throw new KilnError('argument', op, '--adapter-weights needs --adapter');
    return [];
  }
  const dirs = o.adapter.split(',').map((d) => d.trim());
  if (dirs.some((d) => !d)) throw new KilnError('argument', op, `--adapter: an empty folder name in ${JSON.stringify(o.adapter)}`);
  if (o.adapterWeights && o.adapterWeights.length !== dirs.length) throw new KilnError('argument', op, `--adapter-weights has ${o.adapterWeights.length} weights for ${dirs.length} adapters (one per --adapter folder)`);
  return dirs;
}

/**
 * Loads each --adapter folder onto the model by name (adapter_0, adapter_1, ...) and makes them all
 * active together: the model's output is base + Σ s_i·B_i·A_i. A weight w_i multiplies adapter i's
 * lora_B (scaling is linear in B, so this is PEFT's linear combination, combination_type "linear"
 * without the new adapter); DoRA's update is not linear in B, so weights are refused there.
 * The model changes in place (its Linears become LoraLinears); returns the PeftModel and the names.
 */
export async function applyAdapters(loaded: LoadedModel, o: AdapterFlags, op: string): Promise<{ peft: PeftModel; names: string[] } | null> {
  const dirs = adapterDirs(o, op);
  if (!dirs.length) return null;
  let peft: PeftModel | LoadedModel = loaded;
  const names = dirs.map((_, i) => `adapter_${i}`);
  for (const [i, dir] of dirs.entries()) {
    if ((await pathKind(dir)) !== 'dir') throw new KilnError('argument', op, `--adapter ${dir}: ${(await pathKind(dir)) === 'file' ? 'a file, not an adapter folder (pass the folder holding adapter_config.json)' : 'no such folder'}`);
    peft = await loadAdapter(peft, dir, names[i]);
  }
  const p = peft as PeftModel;
  const w = o.adapterWeights;
  if (w) {
    for (const [i, n] of names.entries()) if (p.peftConfig.get(n)!.use_dora && w[i] !== 1) throw new KilnError('argument', op, `--adapter-weights: ${dirs[i]} is a DoRA adapter, whose update is not linear in its weights; kiln weighs LoRA adapters only`);
    noGrad(() => {
      for (const [, l] of p.loraLayers())
        for (const [i, n] of names.entries()) if (l.adapters.has(n) && w[i] !== 1) l.B(n).weight.assign(mul(l.B(n).weight, w[i]));
    });
  }
  for (const [, l] of p.loraLayers()) l.active = names.filter((n) => l.adapters.has(n));
  return { peft: p, names };
}

/** The files besides the weights that make a merged folder a model folder, copied when the base has them. */
const COPIED = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'tokenizer.model', 'vocab.json', 'merges.txt'];
/** config.json keys kept from the base's own config (configToHF writes the architecture's fields). */
const KEPT_KEYS = ['architectures', 'bos_token_id', 'eos_token_id', 'pad_token_id'];

/** `kiln merge`: the base with the adapters merged in, as a Hugging Face folder (config.json, model.safetensors, tokenizer files). */
export async function mergeCmd(o: { model: string; out: string; force: boolean; backend?: string } & AdapterFlags, op = 'kiln merge'): Promise<number> {
  adapterDirs(o, op);
  const out = o.out.replace(/\/+$/, '') || '/';
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new KilnError('argument', op, `--out ${out}: a file, not a folder`);
    if (realpathSync(out) === (existsSync(o.model) ? realpathSync(o.model) : null)) throw new KilnError('argument', op, `--out ${out} is the --model folder: write the merged model elsewhere`);
    if (readdirSync(out).length && !o.force) throw new KilnError('argument', op, `--out ${out}: already exists and is not empty (EEXIST); --force writes over it`);
  }
  const { backend } = await init((o.backend ?? 'auto') as BackendName | 'auto');
  const opts: LoadOptions = { backend, quantize: 'none' };
  if (userMaxFileBytes() !== undefined) Object.assign(opts, { maxFileBytes: userMaxFileBytes() });
  const loaded = await loadModel(o.model, opts);
  const applied = await applyAdapters(loaded, o, op);
  if (!applied) throw new KilnError('argument', op, '--adapter is required');
  await applied.peft.mergeAndUnload({ safeMerge: true, adapterNames: applied.names });

  const tensors = await exportStateDict(loaded.model, { arch: loaded.modelType });
  const config = configToHF(loaded.model.config, loaded.modelType);
  for (const k of KEPT_KEYS) if (loaded.hfConfig?.[k] !== undefined) config[k] = loaded.hfConfig[k];
  config.torch_dtype = 'float32';
  mkdirSync(out, { recursive: true });
  if (o.force) for (const f of readdirSync(out)) if (/^model.*\.safetensors(\.index\.json)?$/.test(f)) rmSync(join(out, f)); // no stale shard beside the new file
  writeFileSync(join(out, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  writeFileSync(join(out, 'model.safetensors'), writeSafetensors(tensors, { format: 'pt' }));
  const copied = existsSync(o.model) && statSync(o.model).isDirectory() ? COPIED.filter((f) => existsSync(join(o.model, f))) : [];
  for (const f of copied) copyFileSync(join(o.model, f), join(out, f));
  const n = Object.values(tensors).reduce((a, t) => a + t.data.length, 0);
  console.log(`merged ${applied.names.length} adapter${applied.names.length > 1 ? 's' : ''} into ${Object.keys(tensors).length} tensors (${n.toLocaleString('en-US')} parameters); wrote ${out}/config.json, model.safetensors${copied.length ? `, ${copied.join(', ')}` : ''}`);
  if (!copied.includes('tokenizer.json')) console.error(`[no tokenizer.json copied: ${o.model} is not a folder holding one]`);
  return 0;
}

interface AdapterInfo {
  name: string;
  dir: string;
  peft_type: unknown;
  method: string;
  use_dora: boolean;
  use_rslora: boolean;
  r: number;
  rank_pattern: Record<string, number>;
  lora_alpha: number;
  alpha_pattern: Record<string, number>;
  scaling: number;
  target_modules: unknown;
  modules_to_save: string[] | null;
  bias: string;
  trainable_parameters: number;
  tensors: number;
  base_model_name_or_path: unknown;
}

/** One adapter's config and weights, as read (and checked) from its folder. */
async function readAdapter(folder: Folder, name: string): Promise<AdapterInfo> {
  const op = 'kiln adapter info';
  const where = `${folder.name}/${CONFIG_NAME}`;
  const src = await folder.source(CONFIG_NAME);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(new TextDecoder().decode(await src.read(0, src.size)));
    if (!json || typeof json !== 'object' || Array.isArray(json)) throw new Error('not a JSON object');
  } catch (e) {
    throw new KilnError('config', op, `${where}: not valid JSON (${(e as Error).message})`);
  } finally {
    await src.close?.();
  }
  if (json.peft_type !== 'LORA') throw new KilnError('config', op, `${where}: peft_type: ${JSON.stringify(json.peft_type)} is not supported (kiln reads "LORA" adapters)`);
  const c = loraConfig(json, where, 'config');
  if (!(await folder.has(WEIGHTS_NAME))) throw new KilnError('config', op, `${folder.name} has no ${WEIGHTS_NAME}`);
  const ws = await folder.source(WEIGHTS_NAME);
  let count = 0;
  let tensors = 0;
  try {
    for (const t of (await SafetensorsFile.open(ws)).tensors.values()) {
      count += t.shape.reduce((a, b) => a * b, 1);
      tensors++;
    }
  } finally {
    await ws.close?.();
  }
  return {
    name, dir: folder.name, peft_type: json.peft_type, method: c.use_dora ? 'DoRA' : c.use_rslora ? 'rsLoRA' : 'LoRA', use_dora: c.use_dora, use_rslora: c.use_rslora,
    r: c.r, rank_pattern: c.rank_pattern, lora_alpha: c.lora_alpha, alpha_pattern: c.alpha_pattern, scaling: loraScaling(c.lora_alpha, c.r, c.use_rslora),
    target_modules: c.target_modules, modules_to_save: c.modules_to_save, bias: c.bias, trainable_parameters: count, tensors, base_model_name_or_path: json.base_model_name_or_path ?? null,
  };
}

/**
 * `kiln adapter info DIR`: each adapter in a PEFT folder (save_pretrained writes "default" at the
 * top and any other adapter in a subfolder of its name): method, rank, alpha, targets, and the
 * trainable parameters counted from the safetensors shapes.
 */
export async function adapterInfoCmd(o: { dir: string; json: boolean }): Promise<number> {
  const op = 'kiln adapter info';
  const kind = await pathKind(o.dir);
  if (kind !== 'dir') throw new KilnError('argument', op, `${o.dir}: ${kind === 'file' ? 'a file, not an adapter folder (pass the folder holding adapter_config.json)' : 'no such folder'}`);
  const top = await pathFolder(o.dir);
  const found: [Folder, string][] = [];
  if (await top.has(CONFIG_NAME)) found.push([top, 'default']);
  for (const sub of ((await top.list()) ?? []).sort()) {
    const path = join(top.name, sub);
    if (statSync(path).isDirectory() && existsSync(join(path, CONFIG_NAME))) found.push([await pathFolder(path), sub]);
  }
  if (!found.length) throw new KilnError('config', op, `${top.name} has no ${CONFIG_NAME} (nor a subfolder holding one): not a PEFT adapter folder`);
  const infos: AdapterInfo[] = [];
  for (const [f, name] of found) infos.push(await readAdapter(f, name));
  if (o.json) {
    console.log(JSON.stringify({ adapters: infos }, null, 2));
    return 0;
  }
  const fmt = (n: number) => n.toLocaleString('en-US');
  const pattern = (p: Record<string, number>) => (Object.keys(p).length ? ` (pattern ${JSON.stringify(p)})` : '');
  const lines: string[] = [];
  for (const a of infos) {
    lines.push(`adapter '${a.name}' (${a.dir})`);
    lines.push(`  method: ${a.method} (peft_type ${a.peft_type}, use_dora ${a.use_dora}, use_rslora ${a.use_rslora})`);
    lines.push(`  rank: ${a.r}${pattern(a.rank_pattern)}`);
    lines.push(`  alpha: ${a.lora_alpha}${pattern(a.alpha_pattern)}; scaling ${+a.scaling.toPrecision(6)}`);
    lines.push(`  targets: ${Array.isArray(a.target_modules) ? a.target_modules.join(', ') : String(a.target_modules)}${a.modules_to_save?.length ? `; modules_to_save: ${a.modules_to_save.join(', ')}` : ''}; bias: ${a.bias}`);
    lines.push(`  trainable parameters: ${fmt(a.trainable_parameters)} (${a.tensors} tensors)`);
    lines.push(`  base model: ${a.base_model_name_or_path ?? '(not recorded)'}`);
  }
  lines.push(`adapters: ${infos.map((a) => a.name).join(', ')}`);
  console.log(lines.join('\n'));
  return 0;
}
