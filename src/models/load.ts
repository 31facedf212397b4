// Loads a Hugging Face model folder: config.json, model.safetensors or its shards (through
// model.safetensors.index.json), tokenizer.json / tokenizer_config.json, generation_config.json.
// Every header, name and shape is checked before any weight is read, so a bad checkpoint never
// leaves a half-loaded model; then tensors are read and copied to the device one at a time.
import { KilnError } from '../core/errors.js';
import { fromValues } from '../core/ops/creation.js';
import { noGrad } from '../core/autograd.js';
import type { Backend } from '../backend/backend.js';
import { Tokenizer } from '../tokenizers/tokenizer.js';
import { checkRule, configFromHF, weightRules, type ModelType } from './hf.js';
import { blobSource, bytesSource, fileSource, SafetensorsFile, type ByteSource, type TensorInfo } from './loaders/safetensors.js';
import { DecoderLM } from './transformer.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A model folder's files by name: from a folder picker (File), fetched bytes, or ByteSources. */
export type ModelFiles = Record<string, ByteSource | Blob | ArrayBuffer | Uint8Array>;

export interface LoadedModel {
  model: DecoderLM;
  modelType: ModelType;
  /** config.json as written */
  hfConfig: Json;
  tokenizer: Tokenizer | null;
  generationConfig: Json | null;
}

export interface LoadOptions {
  backend?: Backend;
}

interface Folder {
  name: string;
  has(file: string): Promise<boolean>;
  source(file: string): Promise<ByteSource>;
}

async function pathFolder(dir: string): Promise<Folder> {
  const fs = await import('node:fs/promises');
  const join = (f: string): string => `${dir.replace(/\/+$/, '')}/${f}`;
  try {
    if (!(await fs.stat(dir)).isDirectory()) throw new Error('not a folder');
  } catch (e) {
    throw new KilnError('argument', 'loadModel', `${dir}: ${(e as Error).message}`);
  }
  return {
    name: dir,
    has: async (f) => fs.stat(join(f)).then(() => true, () => false),
    source: (f) => fileSource(join(f)),
  };
}

function filesFolder(files: ModelFiles): Folder {
  return {
    name: 'files',
    has: async (f) => f in files,
    source: async (f) => {
      const v = files[f];
      if (v === undefined) throw new KilnError('config', 'loadModel', `missing file ${f}`);
      if (typeof Blob !== 'undefined' && v instanceof Blob) return blobSource(v, f);
      if (v instanceof ArrayBuffer || v instanceof Uint8Array) return bytesSource(f, v);
      return v as ByteSource;
    },
  };
}

async function readJson(folder: Folder, file: string): Promise<Json> {
  const src = await folder.source(file);
  const text = new TextDecoder().decode(await src.read(0, src.size));
  await src.close?.();
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new KilnError('config', 'loadModel', `${folder.name}/${file}: not valid JSON (${(e as Error).message})`);
  }
}

async function readText(folder: Folder, file: string): Promise<string | null> {
  if (!(await folder.has(file))) return null;
  const src = await folder.source(file);
  const text = new TextDecoder().decode(await src.read(0, src.size));
  await src.close?.();
  return text;
}

/** Loads a model folder (a path in Node/Deno, or its files by name anywhere). */
export async function loadModel(from: string | ModelFiles, opts: LoadOptions = {}): Promise<LoadedModel> {
  const folder = typeof from === 'string' ? await pathFolder(from) : filesFolder(from);
  if (!(await folder.has('config.json'))) throw new KilnError('config', 'loadModel', `${folder.name} has no config.json`);
  const hfConfig = await readJson(folder, 'config.json');
  const cfg = configFromHF(hfConfig);
  const modelType = hfConfig.model_type as ModelType;

  // the weight files: one, or the shards the index names
  let shardNames: string[];
  if (await folder.has('model.safetensors.index.json')) {
    const index = await readJson(folder, 'model.safetensors.index.json');
    if (!index.weight_map || typeof index.weight_map !== 'object') throw new KilnError('config', 'loadModel', `${folder.name}/model.safetensors.index.json: no weight_map`);
    shardNames = [...new Set(Object.values(index.weight_map as Record<string, string>))].sort();
  } else if (await folder.has('model.safetensors')) shardNames = ['model.safetensors'];
  else throw new KilnError('config', 'loadModel', `${folder.name} has neither model.safetensors nor model.safetensors.index.json`);
  const shards: SafetensorsFile[] = [];
  const where = new Map<string, { file: SafetensorsFile; info: TensorInfo }>();
  try {
    for (const s of shardNames) {
      const f = await SafetensorsFile.open(await folder.source(s));
      shards.push(f);
      for (const [name, info] of f.tensors) where.set(name, { file: f, info });
    }

    const model = new DecoderLM(cfg, { backend: opts.backend });
    const params = new Map<string, number[]>();
    const tensors = new Map(model.namedParameters());
    for (const [n, t] of tensors) params.set(n, [...t.shape]);
    const rules = weightRules(modelType, cfg, params, new Set(where.keys()));
    const covered = new Set(rules.map((r) => r.target));
    const missing = [...params.keys()].filter((p) => !covered.has(p));
    if (missing.length) throw new KilnError('config', 'loadModel', `${folder.name}: no weights for ${missing.join(', ')}`);
    const shapes = new Map([...where].map(([n, w]) => [n, w.info.shape]));
    const fileOf = (n: string): string => where.get(n)?.file.source.name ?? folder.name;
    for (const r of rules) checkRule(r, params.get(r.target)!, shapes, fileOf);
    for (const r of rules)
      for (const s of r.sources) {
        const dt = where.get(s)!.info.dtype;
        if (dt !== 'F32' && dt !== 'F16' && dt !== 'BF16') throw new KilnError('dtype', 'loadModel', `${fileOf(s)}: tensor '${s}' is ${dt}; kiln loads F32, F16 and BF16 weights`);
      }

    // everything checked: now read and place one parameter at a time
    for (const r of rules) {
      const shape = params.get(r.target)!;
      const data = await Promise.all(r.sources.map((s) => where.get(s)!.file.float32(s)));
      const values = r.make ? r.make(data, r.sources.map((s) => shapes.get(s)!)) : data[0];
      const n = shape.reduce((a, b) => a * b, 1);
      if (values.length !== n) throw new KilnError('shape', 'loadModel', `${fileOf(r.sources[0])}: '${r.sources.join("', '")}' make ${values.length} values, ${r.target} needs ${n}`);
      const t = fromValues(values, shape, { backend: opts.backend });
      noGrad(() => tensors.get(r.target)!.assign(t));
      t.dispose();
    }

    const tokJson = await readText(folder, 'tokenizer.json');
    const tokenizer = tokJson ? Tokenizer.fromString(tokJson, await readText(folder, 'tokenizer_config.json')) : null;
    const gen = await readText(folder, 'generation_config.json');
    return { model: model.eval(), modelType, hfConfig, tokenizer, generationConfig: gen ? JSON.parse(gen) : null };
  } finally {
    for (const s of shards) await s.source.close?.();
  }
}
