// The one place kiln opens model files: paths (Node, Deno), URLs, Blobs/Files and bytes become
// ByteSources; folders of them (a path, a URL, a Hugging Face hub repo, files by name) refuse
// names that leave the folder. Paths are checked to be regular files before they are opened (a
// FIFO would block forever, /dev/zero never ends), every file has a size cap, and reads and
// downloads report progress with an overall fraction.
import { KilnError } from '../core/errors.js';
import { envVar, nodeModule } from '../core/env.js';

/** Random access to a file's bytes, wherever it lives (memory, a Blob/File, a path). */
export interface ByteSource {
  readonly name: string;
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  close?(): Promise<void>;
}

/** What loadModel reports as each file is read or downloaded. */
export interface ProgressEvent {
  file: string;
  loaded: number;
  /** the file's size, or null while a server has not said */
  total: number | null;
  /** 0..1 over every file of the load (never decreases; 1 once the load is done) */
  fraction: number;
}

export interface SourceOptions {
  onProgress?: (e: ProgressEvent) => void;
  /** Cache Storage name (browsers, Deno): a file found there is not downloaded again; false: no cache. Node has no Cache Storage: every load downloads. */
  cache?: string | false;
  /** the largest file accepted, in bytes (default 32 GiB): a bigger file or download is an error before it is read */
  maxFileBytes?: number;
  /** Hugging Face hub base URL for repo ids (default $HF_ENDPOINT, else https://huggingface.co) */
  hubUrl?: string;
  /** the hub revision (branch, tag or commit) for repo ids (default 'main') */
  revision?: string;
  /** a hub access token for gated or private repos (default $HF_TOKEN), sent to the hub only */
  hubToken?: string;
  /** a plain URL folder's file names, when known: only these are fetched (nothing is probed) */
  files?: string[];
}

export const DEFAULT_MAX_FILE_BYTES = 32 * 2 ** 30;
export const DEFAULT_CACHE = 'kiln-models';

const argErr = (msg: string): KilnError => new KilnError('argument', 'loadModel', msg);

function capOf(opts: SourceOptions): number {
  const cap = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  if (!(Number.isFinite(cap) && cap > 0)) throw argErr(`maxFileBytes must be a positive number, got ${cap}`);
  return cap;
}

function checkSize(name: string, size: number, opts: SourceOptions): void {
  const cap = capOf(opts);
  if (size > cap) throw argErr(`${name}: ${size} bytes is over maxFileBytes (${cap}); raise maxFileBytes to load it`);
}

// ---------------------------------------------------------------- progress

/**
 * Progress over the files of one load. Files are announced (with their sizes when known) before
 * any is read, so the overall fraction covers them all; it is kept monotone, and finish() reports 1.
 */
export class Progress {
  private readonly files = new Map<string, { loaded: number; total: number | null; spans: [number, number][] }>();
  private fraction = 0;
  private held = false;
  constructor(private readonly cb?: (e: ProgressEvent) => void) {}

  /** Keeps events back until release(): a folder reads its config and index before it knows its shards. */
  hold(): void {
    this.held = true;
  }

  /** Reports what happened while held, one event per file touched, now that every file is announced. */
  release(): void {
    this.held = false;
    for (const [file, f] of this.files) if (f.loaded > 0) this.emit(file);
  }

  expect(file: string, total: number | null): void {
    if (!this.files.has(file)) this.files.set(file, { loaded: 0, total, spans: [] });
    else if (total !== null) this.files.get(file)!.total = total;
  }

  /** A download's bytes so far. */
  update(file: string, loaded: number, total: number | null): void {
    this.expect(file, total);
    const f = this.files.get(file)!;
    f.loaded = loaded;
    this.emit(file);
  }

  /** A read of [offset, offset + n): counts the bytes not read before (headers are read twice). */
  read(file: string, offset: number, n: number, total: number): void {
    this.expect(file, total);
    const f = this.files.get(file)!;
    let [a, b] = [offset, offset + n];
    const kept: [number, number][] = [];
    for (const [s, e] of f.spans) {
      if (e < a || s > b) kept.push([s, e]);
      else [a, b] = [Math.min(a, s), Math.max(b, e)];
    }
    kept.push([a, b]);
    f.spans = kept;
    f.loaded = kept.reduce((t, [s, e]) => t + e - s, 0);
    this.emit(file);
  }

  /** A file is done with (bytes it never needed, such as padding, count as loaded). */
  done(file: string): void {
    const f = this.files.get(file);
    if (!f || f.total === null || f.loaded === f.total) return;
    f.loaded = f.total;
    this.emit(file);
  }

  finish(): void {
    this.held = false;
    for (const f of this.files.keys()) this.done(f);
    if (this.fraction < 1) {
      this.fraction = 1;
      const last = [...this.files.entries()].pop();
      if (last) this.cb?.({ file: last[0], loaded: last[1].loaded, total: last[1].total, fraction: 1 });
    }
  }

  private emit(file: string): void {
    if (!this.cb || this.held) return;
    let loaded = 0;
    let total = 0;
    for (const f of this.files.values()) {
      loaded += f.loaded;
      total += f.total ?? Math.max(f.loaded, 1); // an unknown size counts as what has arrived
    }
    this.fraction = Math.max(this.fraction, Math.min(total ? loaded / total : 0, 1));
    const f = this.files.get(file)!;
    this.cb({ file, loaded: f.loaded, total: f.total, fraction: this.fraction });
  }
}

/** A source whose reads report to `progress` under `file`. */
function tracked(src: ByteSource, file: string, progress?: Progress): ByteSource {
  if (!progress) return src;
  progress.expect(file, src.size);
  return {
    name: src.name,
    size: src.size,
    read: async (o, n) => {
      const b = await src.read(o, n);
      progress.read(file, o, n, src.size);
      return b;
    },
    close: async () => {
      progress.done(file);
      await src.close?.();
    },
  };
}

// ---------------------------------------------------------------- sources

export function bytesSource(name: string, data: ArrayBuffer | Uint8Array): ByteSource {
  const u8 = data instanceof Uint8Array ? data : new Uint8Array(data);
  return { name, size: u8.length, read: async (o, n) => u8.subarray(o, o + n) };
}

export function blobSource(blob: Blob, name = (blob as File).name ?? 'blob'): ByteSource {
  return { name, size: blob.size, read: async (o, n) => new Uint8Array(await blob.slice(o, o + n).arrayBuffer()) };
}

type Fs = typeof import('node:fs/promises');
const fsModule = (): Promise<Fs> => nodeModule<Fs>('node:fs/promises');

/** What a path is, in words, when it is not a regular file. */
function kindOf(st: { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string {
  return st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : st.isSocket() ? 'a socket' : 'not a regular file';
}

/** fs errors as one line: "path: no such file" rather than a stack. */
function fsError(path: string, e: unknown): KilnError {
  const code = (e as { code?: string }).code;
  const what = ({ ENOENT: 'no such file or directory', EACCES: 'permission denied', EISDIR: 'is a directory', ENOTDIR: 'a parent is not a directory', ELOOP: 'too many symbolic links', EMFILE: 'too many open files' } as Record<string, string>)[code ?? ''];
  return argErr(`${path}: ${what ?? (e as Error).message}`);
}

/**
 * A file on disk (Node, Deno), read piece by piece, never whole. Only a regular file is opened
 * (stat first, then the opened handle checked again), and only up to maxFileBytes.
 */
export async function fileSource(path: string, opts: SourceOptions = {}): Promise<ByteSource> {
  const fs = await fsModule();
  const st = await fs.stat(path).catch((e) => Promise.reject(fsError(path, e)));
  if (!st.isFile()) throw argErr(`${path}: is ${kindOf(st)}; a model file must be a regular file`);
  checkSize(path, st.size, opts);
  const { constants } = fs as unknown as { constants: Record<string, number> };
  // O_NONBLOCK: should the path be swapped for a FIFO after the stat, opening it does not block
  const fh = await fs.open(path, (constants?.O_RDONLY ?? 0) | (constants?.O_NONBLOCK ?? 0)).catch((e) => Promise.reject(fsError(path, e)));
  const again = await fh.stat();
  if (!again.isFile()) {
    await fh.close();
    throw argErr(`${path}: is ${kindOf(again)}; a model file must be a regular file`);
  }
  const size = again.size;
  checkSize(path, size, opts);
  return {
    name: path,
    size,
    read: async (o, n) => {
      const buf = new Uint8Array(n);
      const { bytesRead } = await fh.read(buf, 0, n, o);
      if (bytesRead !== n) throw new KilnError('config', 'load', `${path}: read ${bytesRead} of ${n} bytes at offset ${o} (file truncated?)`);
      return buf;
    },
    close: () => fh.close(),
  };
}

/** 'dir' or 'file' for an existing path; null where nothing is there or the runtime has no paths (browsers). */
export async function pathKind(path: string): Promise<'dir' | 'file' | null> {
  const g = globalThis as { process?: { versions?: { node?: string } }; Deno?: unknown };
  if (!g.process?.versions?.node && !g.Deno) return null;
  try {
    return (await (await fsModule()).stat(path)).isDirectory() ? 'dir' : 'file';
  } catch {
    return null;
  }
}

/** Cache Storage where the runtime has it (browsers, Deno); null in Node or with cache: false. */
async function cacheStore(opts: SourceOptions): Promise<Cache | null> {
  return opts.cache !== false && typeof caches !== 'undefined' ? caches.open(opts.cache ?? DEFAULT_CACHE) : null;
}

/** A file at a URL: streamed down with progress (under `file`), kept in Cache Storage where the runtime has it. */
export async function urlSource(url: string, opts: SourceOptions = {}, progress?: Progress, file = fileName(url), headers?: Record<string, string>): Promise<ByteSource> {
  const store = await cacheStore(opts);
  const hit = store ? await store.match(url) : undefined;
  if (hit) {
    const blob = await hit.blob();
    checkSize(url, blob.size, opts);
    progress?.update(file, blob.size, blob.size);
    return blobSource(blob, url);
  }
  const res = await get(url, headers && { headers });
  if (!res.ok || !res.body) throw argErr(`${url}: HTTP ${res.status} ${res.statusText}`);
  const total = Number(res.headers.get('content-length')) || null;
  if (total !== null) checkSize(url, total, opts);
  const cap = capOf(opts);
  const parts: Uint8Array[] = [];
  let loaded = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.length;
    if (loaded > cap) {
      await reader.cancel();
      throw argErr(`${url}: the download passed maxFileBytes (${cap}); raise maxFileBytes to load it`);
    }
    progress?.update(file, loaded, total);
  }
  if (total !== null && loaded !== total) throw new KilnError('config', 'load', `${url}: the download stopped at ${loaded} of ${total} bytes`);
  progress?.update(file, loaded, loaded);
  const blob = new Blob(parts as BlobPart[]);
  if (store) await store.put(url, new Response(blob, { headers: { 'content-length': String(blob.size) } }));
  return blobSource(blob, url);
}

async function get(url: string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    throw argErr(`${url}: ${(e as Error).message}`);
  }
}

const fileName = (url: string): string => new URL(url).pathname.split('/').filter(Boolean).pop() ?? url;

// ---------------------------------------------------------------- formats

export type Format = 'gguf' | 'safetensors' | 'unknown';

/** The format by the first bytes: GGUF's magic, or safetensors' header length followed by '{'. */
export function sniff(head: Uint8Array): Format {
  if (head.length >= 4 && head[0] === 0x47 && head[1] === 0x47 && head[2] === 0x55 && head[3] === 0x46) return 'gguf';
  if (head.length >= 9 && head[8] === 0x7b && head[5] === 0 && head[6] === 0 && head[7] === 0) return 'safetensors';
  return 'unknown';
}

export async function sniffSource(src: ByteSource): Promise<Format> {
  return sniff(await src.read(0, Math.min(src.size, 9)));
}

/**
 * The first bytes of a URL (one ranged request; a server that ignores the range has its body
 * cancelled after the first chunk), or null when the URL is not a file (HTTP error). Cached
 * files are read from the cache.
 */
export async function urlHead(url: string, opts: SourceOptions): Promise<Uint8Array | null> {
  const store = await cacheStore(opts);
  const hit = store ? await store.match(url) : undefined;
  if (hit) return new Uint8Array(await (await hit.blob()).slice(0, 9).arrayBuffer());
  const res = await get(url, { headers: { range: 'bytes=0-8' } });
  if (!res.ok || !res.body) return null;
  const reader = res.body.getReader();
  const { value } = await reader.read();
  await reader.cancel().catch(() => undefined);
  return value ?? new Uint8Array(0);
}

// ---------------------------------------------------------------- folders

/** A model folder: its files by name, whatever holds them. */
export interface Folder {
  readonly name: string;
  /** the folder's file names where they can be listed (a path, a hub repo, files by name); null for a plain URL */
  list(): Promise<string[] | null>;
  /** whether a file exists (a plain URL folder finds out by downloading it, reporting to progress) */
  has(file: string, progress?: Progress): Promise<boolean>;
  /** a file's size where known without reading it */
  size(file: string): Promise<number | null>;
  source(file: string, progress?: Progress): Promise<ByteSource>;
}

/**
 * A file name inside a folder: relative, no '.' or '..' segment, no backslash or drive: a shard
 * name in an index (or any name) cannot reach another folder's files, or /etc/passwd.
 */
export function safeName(file: string, where: string): string {
  const segs = file.split('/');
  if (!file || file.startsWith('/') || /[\\\0]|^[a-zA-Z]:/.test(file) || segs.some((s) => s === '' || s === '.' || s === '..')) {
    throw new KilnError('config', 'loadModel', `${where}: file name ${JSON.stringify(file)} leaves the model folder; names must be relative and stay inside it`);
  }
  return file;
}

export async function pathFolder(dir: string, opts: SourceOptions = {}): Promise<Folder> {
  const fs = await fsModule();
  const root = dir.replace(/\/+$/, '') || '/';
  const join = (f: string): string => `${root}/${safeName(f, root)}`;
  const st = await fs.stat(root).catch((e) => Promise.reject(fsError(root, e)));
  if (!st.isDirectory()) throw argErr(`${root}: is ${kindOf(st)}, not a model folder`);
  let names: Promise<string[]> | null = null;
  const list = (): Promise<string[]> => (names ??= fs.readdir(root).catch((e) => Promise.reject(fsError(root, e))));
  return {
    name: root,
    list,
    has: async (f) => (await list()).includes(safeName(f, root)),
    size: async (f) => fs.stat(join(f)).then((s) => (s.isFile() ? s.size : null), () => null),
    source: async (f, p) => tracked(await fileSource(join(f), opts), f, p),
  };
}

/**
 * A model folder at a plain URL (e.g. https://host/models/tiny). It cannot be listed, so an
 * optional file is found by asking for it (a 404 when absent: up to four per load, for
 * model.safetensors.index.json, tokenizer_config.json, generation_config.json and tokenizer.json);
 * opts.files names the folder's files and then nothing is probed.
 */
export function urlFolder(base: string, opts: SourceOptions = {}): Folder {
  const root = base.replace(/\/+$/, '');
  const url = (f: string): string => `${root}/${safeName(f, root)}`;
  const known = opts.files ? new Set(opts.files) : null;
  const seen = new Map<string, Promise<ByteSource | null>>();
  const fetchOnce = (f: string, p?: Progress): Promise<ByteSource | null> => {
    if (!seen.has(f)) {
      seen.set(f, known && !known.has(f) ? Promise.resolve(null) : urlSource(url(f), opts, p, f).catch((e) => (/HTTP 404/.test((e as Error).message) ? null : Promise.reject(e))));
    }
    return seen.get(f)!;
  };
  return {
    name: root,
    list: async () => (known ? [...known] : null),
    has: async (f, p) => (known ? known.has(f) : (await fetchOnce(f, p)) !== null),
    size: async () => null,
    source: async (f, p) => {
      const s = await fetchOnce(f, p);
      if (!s) throw new KilnError('config', 'loadModel', `${url(f)}: not found`);
      return s;
    },
  };
}

/** The hub base URL: opts.hubUrl, else $HF_ENDPOINT, else huggingface.co. */
export const hubBase = (opts: SourceOptions): string => (opts.hubUrl ?? envVar('HF_ENDPOINT') ?? 'https://huggingface.co').replace(/\/+$/, '');

/** 'org/name': a Hugging Face repo id (a string that is no URL and no absolute or dotted path). */
export const isRepoId = (s: string): boolean => /^[A-Za-z0-9][\w.-]*\/[\w.-]*[A-Za-z0-9_]$/.test(s) && !s.includes('..');

/**
 * A Hugging Face hub repo at a revision: the file list (with sizes) comes from the hub's API
 * (/api/models/{id}/revision/{rev}?blobs=true) once, so only files that exist are fetched; files
 * resolve to {hub}/{id}/resolve/{rev}/{file}.
 */
export async function hubFolder(id: string, opts: SourceOptions = {}): Promise<Folder> {
  const hub = hubBase(opts);
  const rev = opts.revision ?? 'main';
  const api = `${hub}/api/models/${id}/revision/${encodeURIComponent(rev)}?blobs=true`;
  const token = opts.hubToken ?? envVar('HF_TOKEN');
  const headers = token ? { authorization: `Bearer ${token}` } : undefined;
  const res = await get(api, headers && { headers });
  if (!res.ok) throw argErr(`${id}@${rev}: the hub at ${hub} answered HTTP ${res.status} ${res.statusText} for its file list (no such repo or revision, or it is gated or private: set hubToken or $HF_TOKEN)`);
  let info: { siblings?: { rfilename?: unknown; size?: unknown }[] };
  try {
    info = await res.json();
  } catch (e) {
    throw argErr(`${api}: not JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(info?.siblings)) throw argErr(`${api}: no 'siblings' file list`);
  const sizes = new Map(info.siblings.filter((s) => typeof s?.rfilename === 'string').map((s) => [s.rfilename as string, typeof s.size === 'number' ? s.size : null]));
  const base = `${hub}/${id}/resolve/${encodeURIComponent(rev)}`;
  const name = `${id}@${rev}`;
  return {
    name,
    list: async () => [...sizes.keys()],
    has: async (f) => sizes.has(safeName(f, name)),
    size: async (f) => sizes.get(f) ?? null,
    source: async (f, p) => {
      if (!sizes.has(safeName(f, name))) throw new KilnError('config', 'loadModel', `${name}: the repo has no file ${f}`);
      return urlSource(`${base}/${f}`, opts, p, f, headers);
    },
  };
}

/** A model folder's files by name: from a folder picker (File), fetched bytes, or ByteSources. */
export type ModelFiles = Record<string, ByteSource | Blob | ArrayBuffer | Uint8Array>;

/** Bytes, a Blob or a ByteSource as a ByteSource. */
export function toSource(v: ByteSource | Blob | ArrayBuffer | Uint8Array, name: string): ByteSource {
  if (typeof Blob !== 'undefined' && v instanceof Blob) return blobSource(v, name);
  if (v instanceof ArrayBuffer || v instanceof Uint8Array) return bytesSource(name, v);
  return v as ByteSource;
}

export function filesFolder(files: ModelFiles, opts: SourceOptions = {}): Folder {
  const size = (f: string): number | null => {
    const v = files[f];
    return v === undefined ? null : v instanceof ArrayBuffer || v instanceof Uint8Array ? v.byteLength : (v as { size: number }).size;
  };
  return {
    name: 'files',
    list: async () => Object.keys(files),
    has: async (f) => Object.hasOwn(files, safeName(f, 'files')),
    size: async (f) => size(f),
    source: async (f, p) => {
      if (!Object.hasOwn(files, safeName(f, 'files'))) throw new KilnError('config', 'loadModel', `missing file ${f}`);
      const src = toSource(files[f], f);
      checkSize(f, src.size, opts);
      return tracked(src, f, p);
    },
  };
}

/** A single source (bytes, a Blob, a file) with progress. */
export const trackedSource = (src: ByteSource, p?: Progress): ByteSource => tracked(src, src.name, p);
