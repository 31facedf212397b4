// A Hugging Face model folder: config.json, model.safetensors or its shards (through
// model.safetensors.index.json), tokenizer.json / tokenizer_config.json, generation_config.json.
// The config is validated, then checked against every header, name and shape (on a model that
// allocates nothing) before any weight is read, so a bad checkpoint never leaves a half-loaded
// model; then tensors are read and copied to the device one at a time.
import { KilnError } from '../core/errors.js';
import { Tokenizer } from '../tokenizers/tokenizer.js';
import { checkConfigTensors, validateConfig } from './config.js';
import { configFromHF, hfConfigKeys, type ModelType } from './hf.js';
import { buildNameMap, checkShapes, isPlain, kilnValues } from './name-map.js';
import { SafetensorsFile, type TensorInfo } from './loaders/safetensors.js';
import type { Folder, Progress } from './sources.js';
import { DecoderLM } from './transformer.js';
import { keptAs, parameterShapes, place, rawWritable, writeRaw } from './weights.js';
import type { LoadedModel, LoadOptions } from './load.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const OPTIONAL = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'];

async function readText(folder: Folder, file: string, progress: Progress): Promise<string> {
  const src = await folder.source(file, progress);
  try {
    return new TextDecoder().decode(await src.read(0, src.size));
  } finally {
    await src.close?.();
  }
}

async function readJson(folder: Folder, file: string, progress: Progress): Promise<Json> {
  const text = await readText(folder, file, progress);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new KilnError('config', 'loadModel', `${folder.name}/${file}: not valid JSON (${(e as Error).message})`);
  }
}

/** The shard names an index maps weights to (each checked to stay inside the folder when opened). */
function shardsOf(index: Json, where: string): string[] {
  const map = index?.weight_map;
  if (!map || typeof map !== 'object' || Array.isArray(map)) throw new KilnError('config', 'loadModel', `${where}: weight_map: missing or not an object`);
  const names = [...new Set(Object.values(map as Record<string, unknown>))];
  const bad = names.find((n) => typeof n !== 'string');
  if (bad !== undefined) throw new KilnError('config', 'loadModel', `${where}: weight_map: shard names must be strings, got ${JSON.stringify(bad)}`);
  return (names as string[]).sort();
}

/** HF layer tensors: model.layers.N.*, transformer.h.N.* / h.N.* (GPT-2). */
const hfLayer = (n: string): [number, string] | null => {
  const m = /^(?:.*\.)?(?:layers|h)\.(\d+)\.(.+)$/.exec(n);
  return m ? [Number(m[1]), m[2]] : null;
};

export async function loadFolder(folder: Folder, opts: LoadOptions, progress: Progress): Promise<LoadedModel> {
  const listed = await folder.list();
  const has = async (f: string): Promise<boolean> => (listed ? listed.includes(f) : folder.has(f, progress));
  if (!(await has('config.json'))) throw new KilnError('config', 'loadModel', `${folder.name} has no config.json`);
  // every file this load reads, announced with its size first, so the overall fraction covers them all
  const indexed = await has('model.safetensors.index.json');
  if (!indexed && !(await has('model.safetensors'))) throw new KilnError('config', 'loadModel', `${folder.name} has neither model.safetensors nor model.safetensors.index.json`);
  const optional = listed ? OPTIONAL.filter((f) => listed.includes(f)) : null;
  for (const f of ['config.json', indexed ? 'model.safetensors.index.json' : 'model.safetensors', ...(optional ?? [])]) progress.expect(f, await folder.size(f));
  progress.hold(); // until the index has named the shards
  const hfConfig = await readJson(folder, 'config.json', progress);
  const where = `${folder.name}/config.json`;
  const cfg = configFromHF(hfConfig, where);
  const modelType = hfConfig.model_type as ModelType;
  const keys = hfConfigKeys(modelType);
  validateConfig(cfg, where, keys);

  const shardNames = indexed ? shardsOf(await readJson(folder, 'model.safetensors.index.json', progress), `${folder.name}/model.safetensors.index.json`) : ['model.safetensors'];
  for (const s of shardNames) progress.expect(s, await folder.size(s));
  progress.release();
  const shards: SafetensorsFile[] = [];
  const where2 = new Map<string, { file: SafetensorsFile; info: TensorInfo }>();
  let model: DecoderLM | null = null;
  try {
    for (const s of shardNames) {
      const src = await folder.source(s, progress);
      const f = await SafetensorsFile.open(src).catch(async (e) => {
        await src.close?.();
        throw e;
      });
      shards.push(f);
      for (const [name, info] of f.tensors) where2.set(name, { file: f, info });
    }
    const shapes = new Map([...where2].map(([n, w]) => [n, w.info.shape]));
    const embedding = modelType === 'gpt2' ? (shapes.has('transformer.wte.weight') ? 'transformer.wte.weight' : 'wte.weight') : 'model.embed_tokens.weight';
    checkConfigTensors(cfg, where, keys, shapes, hfLayer, embedding);

    // every parameter's source, shape and dtype, checked on a model that allocates nothing
    const params = parameterShapes(cfg);
    const map = buildNameMap(modelType, 'hf', cfg, params, { names: new Set(where2.keys()) });
    const fileOf = (n: string): string => where2.get(n)?.file.source.name ?? folder.name;
    checkShapes(map, (n) => shapes.get(n), fileOf);
    for (const s of map.tensors.keys()) {
      const dt = where2.get(s)!.info.dtype;
      if (dt !== 'F32' && dt !== 'F16' && dt !== 'BF16') throw new KilnError('dtype', 'loadModel', `${fileOf(s)}: tensor '${s}' is ${dt}; kiln loads F32, F16 and BF16 weights`);
    }

    // everything checked: now allocate, read and place one parameter at a time
    model = new DecoderLM(cfg, { backend: opts.backend, skipInit: true, dtype: opts.dtype });
    let last: [string, Float32Array] | null = null; // a fused tensor is read once for its parts
    const read = async (n: string): Promise<Float32Array> => (last?.[0] === n ? last[1] : (last = [n, await where2.get(n)!.file.float32(n)])[1]);
    for (const [name, param] of model.namedParameters()) {
      const shape = params.get(name)!;
      const placements = map.params.get(name)!;
      const src = where2.get(placements[0].name)!;
      if (isPlain(placements) && !keptAs(name, shape, opts) && rawWritable(param, src.info.dtype)) {
        writeRaw(param, await src.file.bytes(src.info.name), src.info.dtype, `${fileOf(src.info.name)}: tensor '${src.info.name}'`);
        continue;
      }
      place(model, param, name, shape, await kilnValues(map, name, read), opts, keptAs(name, shape, opts));
    }

    const text = async (f: string): Promise<string | null> => ((optional ? optional.includes(f) : await folder.has(f, progress)) ? readText(folder, f, progress) : null);
    const tokJson = await text('tokenizer.json');
    const tokenizer = tokJson ? Tokenizer.fromString(tokJson, await text('tokenizer_config.json')) : null;
    const gen = await text('generation_config.json');
    let generationConfig: Json | null = null;
    try {
      generationConfig = gen ? JSON.parse(gen) : null;
    } catch (e) {
      throw new KilnError('config', 'loadModel', `${folder.name}/generation_config.json: not valid JSON (${(e as Error).message})`);
    }
    const loaded = { model: model.eval(), modelType, hfConfig, tokenizer, generationConfig };
    model = null;
    return loaded;
  } finally {
    model?.dispose(); // a load that failed after allocating gives its memory back
    for (const s of shards) await s.source.close?.();
  }
}
