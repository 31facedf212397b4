// The models the URL and hub loaders keep in Cache Storage (browsers, Deno), by hub repo id or
// folder URL: listed and deleted. Node has no Cache Storage: nothing is kept there.
import { DEFAULT_CACHE } from './sources.js';

export interface CachedModel {
  /** the hub repo id ('org/name', '@revision' unless main) or the folder URL */
  id: string;
  files: string[];
  bytes: number;
}

/** The model a cached URL belongs to: a hub repo (by its /resolve/ layout) or the URL's folder. */
function modelOf(url: string): { id: string; file: string } {
  const m = /^(.*?)\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url);
  if (m) return { id: m[3] === 'main' ? m[2] : `${m[2]}@${decodeURIComponent(m[3])}`, file: m[4] };
  const i = url.lastIndexOf('/');
  return { id: url.slice(0, i), file: url.slice(i + 1) };
}

/**
 * The models in Cache Storage (browsers, Deno), by repo id or folder URL. In Node there is no
 * Cache Storage: nothing is cached, the list is empty and every load downloads again.
 */
export async function listCachedModels(opts: { cache?: string } = {}): Promise<CachedModel[]> {
  if (typeof caches === 'undefined') return [];
  const store = await caches.open(opts.cache ?? DEFAULT_CACHE);
  const out = new Map<string, CachedModel>();
  for (const req of await store.keys()) {
    const { id, file } = modelOf(req.url);
    const res = await store.match(req);
    const m = out.get(id) ?? { id, files: [], bytes: 0 };
    m.files.push(file);
    m.bytes += Number(res?.headers.get('content-length')) || 0;
    out.set(id, m);
  }
  return [...out.values()];
}

/** Deletes a cached model's files (by the id listCachedModels gives); the number of files deleted. */
export async function deleteCachedModel(id: string, opts: { cache?: string } = {}): Promise<number> {
  if (typeof caches === 'undefined') return 0;
  const store = await caches.open(opts.cache ?? DEFAULT_CACHE);
  let n = 0;
  for (const req of await store.keys()) if (modelOf(req.url).id === id && (await store.delete(req))) n++;
  return n;
}
