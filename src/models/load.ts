// loadModel: a model from wherever it is. A path, a URL, a Hugging Face repo id ('org/name'),
// raw bytes, a Blob/File or a folder's files by name; GGUF is told by its magic bytes, not by
// a file name. Sources and folders: sources.ts; the cache: cache.ts; a Hugging Face folder:
// hf-load.ts (config: hf.ts); GGUF: gguf-load.ts, gguf-config.ts, gguf-tokenizer.ts; weight
// names both ways: name-map.ts; placing weights: weights.ts.
import { KilnError } from '../core/errors.js';
import type { Backend } from '../backend/backend.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import type { ModelType } from './hf.js';
import { ggufModel } from './gguf-load.js';
import { loadFolder } from './hf-load.js';
import {
  filesFolder, fileSource, hubFolder, isRepoId, pathFolder, pathKind, Progress, sniff, sniffSource, toSource, trackedSource, urlFolder, urlHead, urlSource,
  type ByteSource, type Folder, type ModelFiles, type SourceOptions,
} from './sources.js';
import type { DecoderLM } from './transformer.js';

export { tokenizerFromGGUF } from './gguf-tokenizer.js';
export { listCachedModels, deleteCachedModel, type CachedModel } from './cache.js';
export type { ModelFiles, ProgressEvent } from './sources.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface LoadedModel {
  model: DecoderLM;
  modelType: ModelType;
  /** config.json as written */
  hfConfig: Json;
  tokenizer: Tokenizer | null;
  generationConfig: Json | null;
}

export interface LoadOptions extends SourceOptions {
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

/**
 * Loads a model:
 * - a path (Node, Deno): a model folder, or a GGUF file;
 * - a URL: a model folder (https://huggingface.co/ORG/NAME/resolve/main), or a GGUF file (a URL
 *   whose last segment names a file is asked for its first bytes, so a query string is fine);
 * - a Hugging Face repo id 'org/name' (not a local path), at opts.revision, from opts.hubUrl;
 * - bytes, a Blob or a File: a GGUF file;
 * - a folder's files by name (a folder picker, fetched bytes).
 * opts.onProgress reports every file read or downloaded, with the load's overall fraction.
 */
export async function loadModel(from: string | ModelFiles | ArrayBuffer | Uint8Array | Blob, opts: LoadOptions = {}): Promise<LoadedModel> {
  const progress = new Progress(opts.onProgress);
  const done = (m: LoadedModel): LoadedModel => (progress.finish(), m);
  if (from instanceof ArrayBuffer || from instanceof Uint8Array || (typeof Blob !== 'undefined' && from instanceof Blob)) {
    const src = toSource(from, (from as File).name ?? 'model.gguf');
    if ((await sniffSource(src)) !== 'gguf') throw new KilnError('argument', 'loadModel', `${src.name}: not a GGUF file (a Hugging Face model is a folder: pass its files by name)`);
    return done(await ggufModel(trackedSource(src, progress), opts));
  }
  if (typeof from !== 'string') {
    const files = from as ModelFiles;
    if (!('config.json' in files)) {
      // no config.json: one GGUF file among the files, found by its magic
      const gguf: string[] = [];
      for (const f of Object.keys(files)) if ((await sniffSource(toSource(files[f], f))) === 'gguf') gguf.push(f);
      if (gguf.length === 1) return done(await ggufModel(await filesFolder(files, opts).source(gguf[0], progress), opts));
    }
    return done(await loadFolder(filesFolder(files, opts), opts, progress));
  }
  if (/^https?:\/\//i.test(from)) {
    const url = new URL(from);
    // a URL whose last segment names a file (has a dot), or with a query, is a file: its magic says which format
    if ((url.pathname.split('/').pop() ?? '').includes('.') || url.search) {
      const head = await urlHead(from, opts);
      if (head && sniff(head) === 'gguf') return done(await ggufModel(await urlSource(from, opts, progress), opts));
      if (head && sniff(head) === 'safetensors') throw new KilnError('argument', 'loadModel', `${from}: a safetensors file alone has no config.json; pass the folder's URL`);
      if (url.search) throw new KilnError('argument', 'loadModel', `${from}: not a GGUF file${head ? '' : ' (no answer)'}; a model folder's URL takes no query string`);
    }
    // a hub's resolve URL (https://huggingface.co/ORG/NAME/resolve/REV): listed through the hub's API, so nothing is probed
    const hub = /^(https?:\/\/.+?)\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/?$/.exec(from);
    const listed = hub ? await hubFolder(hub[2], { ...opts, hubUrl: hub[1], revision: decodeURIComponent(hub[3]) }).catch(() => null) : null;
    return done(listed ? await loadFromHub(listed, opts, progress) : await loadFolder(urlFolder(from, opts), opts, progress));
  }
  const local = await pathKind(from);
  if (local === 'dir') return done(await loadFolder(await pathFolder(from, opts), opts, progress));
  if (local === null && isRepoId(from)) {
    const repo = await hubFolder(from, opts).catch((e: Error) => {
      // 'models/tiny' may be a mistyped local path as much as a repo id: say both
      throw new KilnError('argument', 'loadModel', `${e.message.replace(/^loadModel: /, '')}${typeof (globalThis as { process?: unknown }).process !== 'undefined' ? ` (and there is no local path '${from}')` : ''}`);
    });
    return done(await loadFromHub(repo, opts, progress));
  }
  // a file (or nothing there: fileSource says which, in one line)
  const src = trackedSource(await fileSource(from, opts), progress);
  if ((await sniffSource(src)) !== 'gguf') {
    await src.close?.();
    throw new KilnError('argument', 'loadModel', `${from}: not a GGUF file, nor a model folder`);
  }
  return done(await ggufModel(src, opts));
}

/** A hub repo: its Hugging Face files, else its one GGUF file. */
async function loadFromHub(folder: Folder, opts: LoadOptions, progress: Progress): Promise<LoadedModel> {
  const files = (await folder.list()) ?? [];
  const gguf = files.filter((f) => /\.gguf$/i.test(f)); // names from the hub's list, not a URL
  if (!files.includes('config.json') && gguf.length === 1) return ggufModel(await folder.source(gguf[0], progress), opts);
  if (!files.includes('config.json') && gguf.length > 1) throw new KilnError('argument', 'loadModel', `${folder.name} has ${gguf.length} GGUF files (${gguf.join(', ')}); pass one's URL`);
  return loadFolder(folder, opts, progress);
}

/** Loads a .gguf file (a path in Node/Deno, a Blob/File, bytes, or a ByteSource); quantized linear weights stay quantized unless `quantize: 'none'`. */
export async function loadGGUF(from: string | ByteSource | Blob | ArrayBuffer | Uint8Array, opts: LoadOptions = {}): Promise<LoadedModel> {
  const progress = new Progress(opts.onProgress);
  const src = typeof from === 'string' ? await fileSource(from, opts) : toSource(from, 'model.gguf');
  const m = await ggufModel(trackedSource(src, progress), opts);
  progress.finish();
  return m;
}
