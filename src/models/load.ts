// Loads a Hugging Face model folder: config.json, model.safetensors or its shards (through
// model.safetensors.index.json), tokenizer.json / tokenizer_config.json, generation_config.json.
// Every header, name and shape is checked before any weight is read, so a bad checkpoint never
// leaves a half-loaded model; then tensors are read and copied to the device one at a time.
import { KilnError } from '../core/errors.js';
import { nodeModule } from '../core/env.js';
import { encode, isFloat, itemSize } from '../core/dtype.js';
import { fromValues } from '../core/ops/creation.js';
import type { Tensor } from '../core/tensor.js';
import { noGrad } from '../core/autograd.js';
import type { Backend } from '../backend/backend.js';
import { Tokenizer } from '../tokenizers/tokenizer.js';
import { checkRule, configFromHF, weightRules, type ModelType } from './hf.js';
import type { DecoderConfig } from './config.js';
import { GGUFFile, type GGUFValue } from './loaders/gguf.js';
import { LLAMA3_SPLIT } from '../tokenizers/components.js';
import { blobSource, bytesSource, fileSource, SafetensorsFile, toFloat32, urlSource, type ByteSource, type DownloadOptions, type TensorInfo } from './loaders/safetensors.js';
import { DecoderLM } from './transformer.js';
import { Linear } from '../nn/layers.js';
import { fromGGUF, qBlock, qWeight, quantizeQ4, quantizeQ8, type QuantType } from '../nn/quant.js';

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

export interface LoadOptions extends DownloadOptions {
  backend?: Backend;
  /** the weights' storage on the device: f32 (default), or f16/bf16 to halve memory (compute stays f32) */
  dtype?: 'f32' | 'f16' | 'bf16';
  /**
   * Which weights stay quantized on the device, dequantized inside the matmul (inference only):
   * - 'q8_0' / 'q4_0': the decoder layers' projections, about 9 / 5 bits a weight; GGUF tensors
   *   already in that type are taken as they are, other weights are quantized from their values.
   * - unset: none for a Hugging Face folder; for GGUF, every linear weight (the projections and an
   *   untied lm_head) the file stores as Q8_0, Q4_0, Q4_K or Q6_K keeps its own format.
   * - 'none': everything dequantized to `dtype`.
   */
  quantize?: 'q8_0' | 'q4_0' | 'none';
}

/** The projections of the decoder layers: the weights `quantize` keeps quantized. */
const QUANTIZABLE = /^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj|mlp\.fc[12])\.weight$/;

/** The format a weight stays in on the device (null: floats); `stored`: its GGUF type, if any. */
function keptAs(name: string, shape: readonly number[], opts: LoadOptions, stored?: string): QuantType | null {
  const q = opts.quantize;
  if (q === 'q8_0' || q === 'q4_0') return QUANTIZABLE.test(name) && shape[1] % 32 === 0 ? q : null;
  if (q === 'none' || !stored) return null;
  const type = ({ Q8_0: 'q8_0', Q4_0: 'q4_0', Q4_K: 'q4_k', Q6_K: 'q6_k' } as const)[stored as 'Q8_0'];
  return type && (QUANTIZABLE.test(name) || name === 'lm_head.weight') && shape.length === 2 && shape[1] % qBlock(type) === 0 ? type : null;
}

/**
 * Puts one weight on the device: kept quantized as `type` (the blocks `q` as a file holds them,
 * else quantized from `values`), or as floats assigned into the parameter.
 */
function place(model: DecoderLM, param: Tensor, name: string, shape: number[], values: Float32Array | null, opts: LoadOptions, type: QuantType | null, q?: { qs: Int32Array; scales: Float32Array }): void {
  if (type) {
    const [N, K] = shape;
    const blocks = q ?? (type === 'q4_0' ? quantizeQ4(values!, N, K) : quantizeQ8(values!, N, K));
    linearAt(model, name).setQuantized(qWeight(blocks, N, K, opts.backend, type));
    return;
  }
  const t = fromValues(values!, shape, { backend: opts.backend, dtype: opts.dtype });
  noGrad(() => param.assign(t));
  t.dispose();
}

const CHUNK = 1 << 18; // elements converted and uploaded at a time

/**
 * Writes a float tensor's file bytes (F32, F16 or BF16, little-endian) straight into a fresh
 * parameter: as they are when the dtypes agree, else converted a chunk at a time, so the host
 * never holds a converted copy of the whole tensor next to its bytes.
 */
function writeRaw(param: Tensor, bytes: Uint8Array, fileDtype: string, where: string): void {
  const be = param.backend;
  const n = param.size;
  const width = fileDtype === 'F32' ? 4 : 2;
  if (fileDtype.toLowerCase() === param.dtype) return be.write(param.storage, bytes, 0);
  // one chunk's buffers, reused: no garbage the size of the tensor waits for the collector
  const vals = new Float32Array(Math.min(CHUNK, n));
  const packed = param.dtype === 'f32' ? null : new ArrayBuffer(vals.length * 4);
  for (let i = 0; i < n; i += CHUNK) {
    const m = Math.min(CHUNK, n - i);
    const v = toFloat32(bytes.subarray(i * width, (i + m) * width), fileDtype, where, vals);
    const data = packed ? new Uint8Array(encode(param.dtype, v, packed), 0, m * itemSize(param.dtype)) : v;
    be.write(param.storage, data, i * itemSize(param.dtype));
  }
}

/** Whether writeRaw can fill this parameter: its own storage from element 0, a float file dtype. */
const rawWritable = (param: Tensor, fileDtype: string): boolean => param.offset === 0 && param.isContiguous() && isFloat(param.dtype) && ['F32', 'F16', 'BF16'].includes(fileDtype);

function linearAt(model: DecoderLM, name: string): Linear {
  const m = new Map(model.namedModules()).get(name.replace(/\.weight$/, ''));
  if (!(m instanceof Linear)) throw new KilnError('argument', 'loadModel', `${name} is not a Linear layer's weight`);
  return m;
}

interface Folder {
  name: string;
  has(file: string): Promise<boolean>;
  source(file: string): Promise<ByteSource>;
}

async function pathFolder(dir: string): Promise<Folder> {
  const fs = await nodeModule<typeof import('node:fs/promises')>('node:fs/promises');
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

/** A model folder at a URL (e.g. https://huggingface.co/ORG/NAME/resolve/main). */
function urlFolder(base: string, opts: DownloadOptions): Folder {
  const url = (f: string): string => `${base.replace(/\/+$/, '')}/${f}`;
  const seen = new Map<string, Promise<ByteSource | null>>();
  const get = (f: string): Promise<ByteSource | null> => {
    if (!seen.has(f)) seen.set(f, urlSource(url(f), opts).catch((e) => (/HTTP 404/.test((e as Error).message) ? null : Promise.reject(e))));
    return seen.get(f)!;
  };
  return {
    name: base,
    has: async (f) => (await get(f)) !== null,
    source: async (f) => {
      const s = await get(f);
      if (!s) throw new KilnError('config', 'loadModel', `${url(f)}: not found`);
      return s;
    },
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
  if (typeof from === 'string' && /\.gguf$/i.test(from)) return loadGGUF(/^https?:\/\//.test(from) ? await urlSource(from, opts) : from, opts);
  if (typeof from !== 'string') {
    const gguf = Object.keys(from).filter((f) => /\.gguf$/i.test(f));
    if (gguf.length === 1 && !('config.json' in from)) return loadGGUF(await filesFolder(from).source(gguf[0]), opts);
  }
  const folder = typeof from !== 'string' ? filesFolder(from) : /^https?:\/\//.test(from) ? urlFolder(from, opts) : await pathFolder(from);
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

    const model = new DecoderLM(cfg, { backend: opts.backend, skipInit: true, dtype: opts.dtype }); // every weight comes from the checkpoint
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
      const param = tensors.get(r.target)!;
      const src = where.get(r.sources[0])!;
      if (!r.make && !keptAs(r.target, shape, opts) && rawWritable(param, src.info.dtype)) {
        writeRaw(param, await src.file.bytes(r.sources[0]), src.info.dtype, `${fileOf(r.sources[0])}: tensor '${r.sources[0]}'`);
        continue;
      }
      const data = await Promise.all(r.sources.map((s) => where.get(s)!.file.float32(s)));
      const values = r.make ? r.make(data, r.sources.map((s) => shapes.get(s)!)) : data[0];
      const n = shape.reduce((a, b) => a * b, 1);
      if (values.length !== n) throw new KilnError('shape', 'loadModel', `${fileOf(r.sources[0])}: '${r.sources.join("', '")}' make ${values.length} values, ${r.target} needs ${n}`);
      place(model, tensors.get(r.target)!, r.target, shape, values, opts, keptAs(r.target, shape, opts));
    }

    const tokJson = await readText(folder, 'tokenizer.json');
    const tokenizer = tokJson ? Tokenizer.fromString(tokJson, await readText(folder, 'tokenizer_config.json')) : null;
    const gen = await readText(folder, 'generation_config.json');
    return { model: model.eval(), modelType, hfConfig, tokenizer, generationConfig: gen ? JSON.parse(gen) : null };
  } finally {
    for (const s of shards) await s.source.close?.();
  }
}

// ---------------------------------------------------------------- GGUF

const GGUF_ARCHS = ['llama', 'qwen2', 'gemma', 'phi3'];

/** config from GGUF metadata ({arch}.* keys). */
function configFromGGUF(m: Map<string, GGUFValue>, where: string): { cfg: DecoderConfig; arch: string } {
  const arch = String(m.get('general.architecture'));
  if (!GGUF_ARCHS.includes(arch)) throw new KilnError('config', 'loadGGUF', `${where}: general.architecture '${arch}' is not supported (${GGUF_ARCHS.join(', ')})`);
  const num = (k: string, dflt?: number): number => {
    const v = m.get(`${arch}.${k}`) ?? dflt;
    if (typeof v !== 'number' && typeof v !== 'bigint') throw new KilnError('config', 'loadGGUF', `${where}: metadata ${arch}.${k} is missing`);
    return Number(v);
  };
  const tokens = m.get('tokenizer.ggml.tokens');
  const heads = num('attention.head_count');
  const cfg: DecoderConfig = {
    vocabSize: m.has(`${arch}.vocab_size`) ? num('vocab_size') : Array.isArray(tokens) ? tokens.length : num('vocab_size'),
    hiddenSize: num('embedding_length'),
    numLayers: num('block_count'),
    numHeads: heads,
    numKVHeads: num('attention.head_count_kv', heads),
    intermediateSize: num('feed_forward_length'),
    normEps: num('attention.layer_norm_rms_epsilon', 1e-5),
    ropeTheta: num('rope.freq_base', 10000),
    maxPositionEmbeddings: num('context_length', 2048),
    // llama.cpp's converter reorders Llama's Q/K rows for its pairwise RoPE: run RoPE the same way
    ropeLayout: arch === 'llama' ? 'interleaved' : 'half',
    qkvBias: arch === 'qwen2',
  };
  if (m.has(`${arch}.attention.key_length`)) cfg.headDim = num('attention.key_length');
  const headDim = cfg.headDim ?? cfg.hiddenSize / heads;
  if (m.has(`${arch}.rope.dimension_count`)) cfg.partialRotaryFactor = num('rope.dimension_count') / headDim;
  if (arch === 'gemma') {
    // the converter stores Gemma's norms as 1 + w already: plain RMSNorm here
    Object.assign(cfg, { embeddingScale: Math.sqrt(cfg.hiddenSize), act: 'gelu_tanh', tieWordEmbeddings: true });
  }
  if (arch === 'phi3' && m.has('phi3.attention.sliding_window')) cfg.slidingWindow = num('attention.sliding_window');
  return { cfg, arch };
}

/** A tokenizer.json built from GGUF's tokenizer.ggml.* metadata (byte-level BPE: model "gpt2"). */
export function tokenizerFromGGUF(m: Map<string, GGUFValue>, where: string): Tokenizer | null {
  const model = m.get('tokenizer.ggml.model');
  if (model === undefined) return null;
  if (model === 'llama') return tokenizerFromSpm(m);
  if (model !== 'gpt2') throw new KilnError('config', 'loadGGUF', `${where}: tokenizer.ggml.model '${String(model)}' is not supported (gpt2: byte-level BPE; llama: SentencePiece BPE)`);
  const tokens = m.get('tokenizer.ggml.tokens') as string[];
  const merges = (m.get('tokenizer.ggml.merges') ?? []) as string[];
  const types = (m.get('tokenizer.ggml.token_type') ?? []) as number[];
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => (vocab[t] = i));
  const pre = String(m.get('tokenizer.ggml.pre') ?? 'default');
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const split = (regex: string) => ({ type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false }, { ...byteLevel, use_regex: false }] });
  const preTokenizer = pre === 'llama-bpe' || pre === 'llama3' ? split(LLAMA3_SPLIT) : pre === 'qwen2' ? split(LLAMA3_SPLIT.replace('\\p{N}{1,3}', '\\p{N}')) : byteLevel;
  const added = tokens.map((content, id) => ({ id, content, type: types[id] })).filter((t) => t.type === 3 || t.type === 4)
    .map((t) => ({ id: t.id, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: t.type === 3 }));
  const bos = m.get('tokenizer.ggml.bos_token_id');
  const eos = m.get('tokenizer.ggml.eos_token_id');
  const addBos = m.get('tokenizer.ggml.add_bos_token') === true && bos !== undefined;
  const json = {
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: preTokenizer,
    post_processor: addBos
      ? { type: 'TemplateProcessing', single: [{ SpecialToken: { id: tokens[Number(bos)], type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: null, special_tokens: { [tokens[Number(bos)]]: { id: tokens[Number(bos)], ids: [Number(bos)], tokens: [tokens[Number(bos)]] } } }
      : null,
    decoder: byteLevel,
    model: { type: 'BPE', vocab, merges, ignore_merges: pre === 'llama-bpe' || pre === 'llama3' },
  };
  const config = {
    chat_template: m.get('tokenizer.chat_template') ?? undefined,
    bos_token: bos !== undefined ? tokens[Number(bos)] : undefined,
    eos_token: eos !== undefined ? tokens[Number(eos)] : undefined,
  };
  return new Tokenizer(json, config);
}

/**
 * A SentencePiece BPE vocabulary (tokenizer.ggml.model "llama": tokens, scores, token types) as
 * the tokenizer.json transformers' converter makes of it: merges are every split of a piece into
 * two pieces, the higher-scored merged piece first; byte fallback to <0xXX>; "▁" for spaces.
 */
function tokenizerFromSpm(m: Map<string, GGUFValue>): Tokenizer {
  const tokens = m.get('tokenizer.ggml.tokens') as string[];
  const scores = (m.get('tokenizer.ggml.scores') ?? tokens.map((_, i) => -i)) as number[];
  const types = (m.get('tokenizer.ggml.token_type') ?? []) as number[];
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => (vocab[t] = i));
  const merges: [string, string, number, number, number][] = [];
  tokens.forEach((piece, id) => {
    if ((types[id] ?? 1) !== 1) return; // normal pieces only (not control, unknown or byte)
    const chars = Array.from(piece);
    const local: [string, string, number, number, number][] = [];
    for (let i = 1; i < chars.length; i++) {
      const l = chars.slice(0, i).join('');
      const r = chars.slice(i).join('');
      if (l in vocab && r in vocab) local.push([l, r, scores[id], vocab[l], vocab[r]]);
    }
    local.sort((a, b) => a[3] - b[3] || a[4] - b[4]);
    merges.push(...local);
  });
  merges.sort((a, b) => b[2] - a[2]); // stable: ties keep the order above
  const unkId = tokens.findIndex((_, i) => types[i] === 2);
  const bos = m.get('tokenizer.ggml.bos_token_id');
  const eos = m.get('tokenizer.ggml.eos_token_id');
  const addBos = (m.get('tokenizer.ggml.add_bos_token') ?? true) === true && bos !== undefined;
  const added = tokens.map((content, id) => ({ id, content, type: types[id] })).filter((t) => t.type === 2 || t.type === 3 || t.type === 4)
    .map((t) => ({ id: t.id, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: t.type !== 4 }));
  const bosTok = bos !== undefined ? tokens[Number(bos)] : undefined;
  const json = {
    added_tokens: added,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: addBos ? { type: 'TemplateProcessing', single: [{ SpecialToken: { id: bosTok, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: null, special_tokens: { [bosTok!]: { id: bosTok, ids: [Number(bos)], tokens: [bosTok] } } } : null,
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', vocab, merges: merges.map(([l, r]) => [l, r]), unk_token: unkId >= 0 ? tokens[unkId] : null, fuse_unk: true, byte_fallback: true },
  };
  return new Tokenizer(json, {
    chat_template: m.get('tokenizer.chat_template') ?? undefined,
    bos_token: bosTok,
    eos_token: eos !== undefined ? tokens[Number(eos)] : undefined,
  });
}

/** GGUF tensor names (llama.cpp) -> kiln's. */
/** Where a kiln parameter comes from in a GGUF file: a tensor, or a band of a fused tensor's rows. */
interface GGUFSource {
  tensor: string;
  rows?: [number, number];
}

/** The GGUF tensor (and rows) behind each kiln parameter. Phi-3 files fuse q/k/v and gate/up. */
function ggufSources(names: Iterable<string>, cfg: DecoderConfig): Map<string, GGUFSource> {
  const fixed: Record<string, string> = { 'token_embd.weight': 'model.embed_tokens.weight', 'output_norm.weight': 'model.norm.weight', 'output.weight': 'lm_head.weight' };
  const part: Record<string, string> = {
    attn_norm: 'input_layernorm', ffn_norm: 'post_attention_layernorm', attn_q: 'self_attn.q_proj', attn_k: 'self_attn.k_proj', attn_v: 'self_attn.v_proj',
    attn_output: 'self_attn.o_proj', ffn_gate: 'mlp.gate_proj', ffn_up: 'mlp.up_proj', ffn_down: 'mlp.down_proj',
  };
  const D = cfg.headDim ?? cfg.hiddenSize / cfg.numHeads;
  const [q, kv, I] = [cfg.numHeads * D, (cfg.numKVHeads ?? cfg.numHeads) * D, cfg.intermediateSize];
  const out = new Map<string, GGUFSource>();
  const all = new Set(names);
  for (const n of all) {
    if (fixed[n]) { out.set(fixed[n], { tensor: n }); continue; }
    const m = /^blk\.(\d+)\.(\w+)\.(weight|bias)$/.exec(n);
    if (!m) continue;
    const at = (p: string) => `model.layers.${m[1]}.${p}.${m[3]}`;
    if (m[2] === 'attn_qkv') {
      out.set(at('self_attn.q_proj'), { tensor: n, rows: [0, q] });
      out.set(at('self_attn.k_proj'), { tensor: n, rows: [q, q + kv] });
      out.set(at('self_attn.v_proj'), { tensor: n, rows: [q + kv, q + 2 * kv] });
    } else if (m[2] === 'ffn_up' && !all.has(`blk.${m[1]}.ffn_gate.${m[3]}`)) {
      // no ffn_gate beside it: ffn_up holds gate then up (Phi-3)
      out.set(at('mlp.gate_proj'), { tensor: n, rows: [0, I] });
      out.set(at('mlp.up_proj'), { tensor: n, rows: [I, 2 * I] });
    } else if (part[m[2]]) out.set(at(part[m[2]]), { tensor: n });
  }
  return out;
}

/** Loads a .gguf file (a path in Node/Deno, a Blob/File, bytes, or a ByteSource); quantized linear weights stay quantized unless `quantize: 'none'`. */
export async function loadGGUF(from: string | ByteSource | Blob | ArrayBuffer | Uint8Array, opts: LoadOptions = {}): Promise<LoadedModel> {
  const src = typeof from === 'string' ? await fileSource(from) : typeof Blob !== 'undefined' && from instanceof Blob ? blobSource(from) : from instanceof ArrayBuffer || from instanceof Uint8Array ? bytesSource('model.gguf', from) : (from as ByteSource);
  try {
    const g = await GGUFFile.open(src);
    const { cfg, arch } = configFromGGUF(g.metadata, src.name);
    const sources = ggufSources(g.tensors.keys(), cfg);
    if (!sources.has('lm_head.weight')) cfg.tieWordEmbeddings = true;
    if ([...g.tensors.keys()].some((n) => n.startsWith('rope_factors'))) {
      throw new KilnError('config', 'loadGGUF', `${src.name}: rope_factors tensors (LongRoPE scaling) are not supported`);
    }
    const model = new DecoderLM(cfg, { backend: opts.backend, skipInit: true, dtype: opts.dtype });
    const params = new Map(model.namedParameters());
    // check every parameter's tensor and shape before reading any data
    for (const [name, p] of params) {
      const s = sources.get(name);
      if (!s) throw new KilnError('config', 'loadGGUF', `${src.name}: missing tensor for ${name}`);
      const t = g.tensors.get(s.tensor)!;
      const shape = s.rows ? [s.rows[1] - s.rows[0], ...t.shape.slice(1)] : t.shape;
      if ((s.rows && (t.shape.length !== 2 || s.rows[1] > t.shape[0])) || shape.length !== p.shape.length || shape.some((d, i) => d !== p.shape[i])) {
        const what = s.rows ? `rows ${s.rows[0]}..${s.rows[1]} of tensor '${s.tensor}' ${JSON.stringify(t.shape)}` : `tensor '${s.tensor}' is ${JSON.stringify(t.shape)} but`;
        throw new KilnError('shape', 'loadGGUF', `${src.name}: ${what} the metadata makes ${name} ${JSON.stringify(p.shape)}`);
      }
    }
    for (const [name, p] of params) {
      const s = sources.get(name)!;
      const info = g.tensors.get(s.tensor)!;
      const shape = [...p.shape];
      const type = keptAs(name, shape, opts, info.type);
      // the band of the tensor's bytes this parameter takes (rows are whole blocks: quantized rows split too)
      const rowBytes = (info.end - info.begin) / info.shape[0];
      const [r0, r1] = s.rows ?? [0, info.shape[0]];
      const bytes = () => src.read(info.begin + r0 * rowBytes, (r1 - r0) * rowBytes);
      if (!type && rawWritable(p, info.type)) {
        writeRaw(p, await bytes(), info.type, `${src.name}: tensor '${info.name}'`);
        continue;
      }
      // a tensor already in the kept type goes over block for block, without a second quantization
      const q = type && info.type === type.toUpperCase() ? fromGGUF(type, await bytes(), shape[0], shape[1]) : undefined;
      const values = q ? null : s.rows ? (await g.float32(info.name)).subarray(r0 * shape[1], r1 * shape[1]) : await g.float32(info.name);
      place(model, p, name, shape, values, opts, type, q);
    }
    return { model: model.eval(), modelType: arch as ModelType, hfConfig: Object.fromEntries([...g.metadata].filter(([k]) => !k.startsWith('tokenizer.')).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v])), tokenizer: tokenizerFromGGUF(g.metadata, src.name), generationConfig: null };
  } finally {
    await src.close?.();
  }
}
