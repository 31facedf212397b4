// Where a model comes from: safe paths (shard names stay in the folder; FIFOs, devices and
// directories are refused before they are opened; a size cap), GGUF told by its magic (a URL
// with a query string, raw bytes, a file without the suffix), Hugging Face repo ids through a
// loopback server with the hub's layout, progress with an overall fraction, and the model cache.
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { KilnError } from '../../src/core/errors.js';
import { deleteCachedModel, listCachedModels, loadModel, type LoadedModel, type ProgressEvent } from '../../src/models/load.js';
import { assertClose } from '../helpers/assert-close.js';

const golden = new URL('../golden/checkpoints/', import.meta.url).pathname;
const llama = join(golden, 'llama');
const ggufFile = join(golden, 'gguf', 'tiny-llama.gguf');
const g = JSON.parse(readFileSync(join(llama, 'golden.json'), 'utf8'));
const gg = JSON.parse(readFileSync(join(golden, 'gguf', 'golden.json'), 'utf8'));
const tmp = new URL('../../.cache/sources/', import.meta.url).pathname;
rmSync(tmp, { recursive: true, force: true });
mkdirSync(tmp, { recursive: true });

const logitsOf = async (lm: LoadedModel, ids: { data: number[]; shape: number[] }): Promise<number[]> => {
  const { logits } = lm.model.call({ inputIds: k.tensor(ids.data, { shape: ids.shape, dtype: 'i32' }) }) as { logits: Tensor };
  const out = Array.from(await logits.toArray());
  lm.model.dispose();
  return out;
};
const ggufLogits = (lm: LoadedModel) => logitsOf(lm, gg.ids);
const maxAbs = (xs: number[]): number => xs.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** The error a load raises, within `ms` (a FIFO must not block, /dev/zero must not be read). */
async function fails(load: () => Promise<unknown>, ms = 1000): Promise<KilnError> {
  const t0 = performance.now();
  const e = await load().then(() => null, (x: unknown) => x);
  expect(performance.now() - t0).toBeLessThan(ms);
  expect(e).toBeInstanceOf(KilnError);
  return e as KilnError;
}

/** The llama checkpoint in tmp/name, edited. */
function folder(name: string, edit: (d: string) => void = () => undefined): string {
  const d = join(tmp, name);
  mkdirSync(d, { recursive: true });
  for (const f of readdirSync(llama)) copyFileSync(join(llama, f), join(d, f));
  edit(d);
  return d;
}

describe('paths', () => {
  beforeAll(async () => k.use(await k.createBackend('wasm')));

  it('a shard name in the index that leaves the folder (../, absolute, /etc/passwd) is refused, though the file exists', async () => {
    folder('sibling'); // the weights a ../ name would reach
    const shard = 'model-00001-of-00002.safetensors';
    for (const [name, to] of [['dotdot', `../sibling/${shard}`], ['absolute', join(tmp, 'sibling', shard)], ['passwd', '../../../../../../../etc/passwd'], ['inner-dotdot', `x/../${shard}`]]) {
      const d = folder(name, (d) => {
        const index = JSON.parse(readFileSync(join(d, 'model.safetensors.index.json'), 'utf8'));
        for (const w of Object.keys(index.weight_map)) if (index.weight_map[w] === shard) index.weight_map[w] = to;
        writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify(index));
      });
      const e = await fails(() => loadModel(d));
      expect(e.code, name).toBe('config');
      expect(e.message, name).toContain(`file name ${JSON.stringify(to)} leaves the model folder`);
    }
  });

  it('a FIFO, /dev/zero (also through a symlink) and a directory are refused before they are opened, in well under a second', async () => {
    const fifo = join(tmp, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const single = (name: string, make: (p: string) => void): string => {
      const d = join(tmp, name);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'config.json'), readFileSync(join(golden, 'qwen2', 'config.json')));
      make(join(d, 'model.safetensors'));
      return d;
    };
    const cases: [string, string, RegExp][] = [
      ['a FIFO as a GGUF path', fifo, /fifo: is a FIFO; a model file must be a regular file/],
      ['/dev/zero as a GGUF path', '/dev/zero', /\/dev\/zero: is a device; a model file must be a regular file/],
      ['a FIFO as the weights', single('fifo-weights', (p) => symlinkSync(fifo, p)), /model\.safetensors: is a FIFO/],
      ['/dev/zero as the weights (a symlink)', single('zero-weights', (p) => symlinkSync('/dev/zero', p)), /model\.safetensors: is a device/],
      ['a directory as the weights', single('dir-weights', (p) => mkdirSync(p)), /model\.safetensors: is a directory/],
      ['a missing path', join(tmp, 'nothing-here'), /nothing-here: no such file or directory/],
    ];
    for (const [name, path, msg] of cases) {
      const e = await fails(() => loadModel(path), 500);
      expect(e.message, name).toMatch(msg);
      expect(e.message, name).not.toContain('\n');
    }
  });

  it('files over maxFileBytes are refused before they are read; raising the cap loads them', async () => {
    const size = statSync(join(llama, 'model-00001-of-00002.safetensors')).size;
    const e = await fails(() => loadModel(llama, { maxFileBytes: size - 1 }));
    expect(e.message).toMatch(new RegExp(`model-0000[12]-of-00002\\.safetensors: \\d+ bytes is over maxFileBytes \\(${size - 1}\\); raise maxFileBytes`));
    expect((await fails(() => loadModel(ggufFile, { maxFileBytes: 1000 }))).message).toMatch(/tiny-llama\.gguf: 773600 bytes is over maxFileBytes \(1000\)/);
    assertClose(await logitsOf(await loadModel(llama, { maxFileBytes: size + 64 }), g.ids), g.logits.data, { atol: 1e-4, rtol: 1e-4 }, 'logits under a raised cap');
  });
});

// ---------------------------------------------------------------- a loopback hub

const REPOS: Record<string, { dir: string; files: string[] }> = {
  'kiln/tiny-llama': { dir: llama, files: readdirSync(llama).filter((f) => f !== 'golden.json') },
  'kiln/tiny-gguf': { dir: join(golden, 'gguf'), files: ['tiny-llama.gguf'] },
  'kiln/gated': { dir: llama, files: readdirSync(llama).filter((f) => f !== 'golden.json') },
};
let server: Server;
let hub = '';
const requests: { url: string; status: number }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const reply = (status: number, body?: Buffer | string, type = 'application/octet-stream') => {
      requests.push({ url: req.url!, status });
      if (body === undefined) return void res.writeHead(status).end();
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) }).end(body);
    };
    // kiln/gated: the llama repo behind a token
    if (url.pathname.includes('kiln/gated') && req.headers.authorization !== 'Bearer hf_test') return reply(401, '{"error":"Access to model kiln/gated is restricted"}', 'application/json');
    let m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
    if (m) {
      const repo = REPOS[m[1]];
      if (!repo || !['main', 'v1'].includes(decodeURIComponent(m[2]))) return reply(404, '{"error":"Repository not found"}', 'application/json');
      return reply(200, JSON.stringify({ id: m[1], sha: '0'.repeat(40), siblings: repo.files.map((f) => ({ rfilename: f, size: statSync(join(repo.dir, f)).size })) }), 'application/json');
    }
    m = /^\/([^/]+\/[^/]+)\/resolve\/(main|v1)\/(.+)$/.exec(url.pathname);
    if (m && REPOS[m[1]]?.files.includes(m[3])) return reply(200, readFileSync(join(REPOS[m[1]].dir, m[3])));
    // plain folders and files: the golden checkpoints (the query string is ignored, as by a CDN)
    const f = join(golden, decodeURIComponent(url.pathname));
    if (!f.includes('..') && existsSync(f) && statSync(f).isFile()) return reply(200, readFileSync(f));
    reply(404);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  hub = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('sources', () => {
  beforeAll(async () => k.use(await k.createBackend('wasm')));

  it('GGUF is told by its magic: a URL with a query string, bytes, an ArrayBuffer, a Blob, a file and a ModelFiles entry without the suffix', async () => {
    const want = gg.logits.data;
    const tol = { atol: 1e-4 * maxAbs(want), rtol: 0 };
    const bytes = new Uint8Array(readFileSync(ggufFile));
    const plain = join(tmp, 'weights.bin');
    copyFileSync(ggufFile, plain);
    const sources: [string, () => Promise<LoadedModel>][] = [
      ['URL with a query string', () => loadModel(`${hub}/gguf/tiny-llama.gguf?download=true&x=1`)],
      ['Uint8Array', () => loadModel(bytes)],
      ['ArrayBuffer', () => loadModel(bytes.slice().buffer)],
      ['Blob', () => loadModel(new Blob([bytes]))],
      ['a path without the suffix', () => loadModel(plain)],
      ['ModelFiles entry without the suffix', () => loadModel({ 'weights.bin': bytes })],
    ];
    for (const [name, load] of sources) assertClose(await ggufLogits(await load()), want, tol, name);
    // bytes or a URL that are not GGUF: a typed error, not a guess
    expect((await fails(() => loadModel(new Uint8Array(64)))).message).toMatch(/not a GGUF file/);
    expect((await fails(() => loadModel(`${hub}/llama/config.json?x=1`))).message).toMatch(/config\.json\?x=1: not a GGUF file; a model folder's URL takes no query string/);
  });

  it("a repo id loads through the hub's layout (file list once, only files that exist: no 404s) with the folder's logits", async () => {
    const folderLogits = await logitsOf(await loadModel(llama), g.ids);
    requests.length = 0;
    const events: ProgressEvent[] = [];
    const lm = await loadModel('kiln/tiny-llama', { hubUrl: hub, onProgress: (e) => events.push(e) });
    expect(await logitsOf(lm, g.ids)).toEqual(folderLogits);
    expect(requests.filter((r) => r.status !== 200)).toEqual([]);
    expect(requests.map((r) => r.url).sort()).toEqual(['/api/models/kiln/tiny-llama/revision/main?blobs=true', ...REPOS['kiln/tiny-llama'].files.map((f) => `/kiln/tiny-llama/resolve/main/${f}`)].sort());
    checkProgress(events, REPOS['kiln/tiny-llama'].files.map((f) => [f, statSync(join(llama, f)).size]));

    // the same repo by its resolve URL: listed through the API too, no probing
    requests.length = 0;
    expect(await logitsOf(await loadModel(`${hub}/kiln/tiny-llama/resolve/main`), g.ids)).toEqual(folderLogits);
    expect(requests.filter((r) => r.status !== 200)).toEqual([]);
    expect(requests[0].url).toBe('/api/models/kiln/tiny-llama/revision/main?blobs=true');

    // a revision, the endpoint from HF_ENDPOINT, and a repo holding one GGUF file
    process.env.HF_ENDPOINT = hub;
    try {
      expect(await logitsOf(await loadModel('kiln/tiny-llama', { revision: 'v1' }), g.ids)).toEqual(folderLogits);
      assertClose(await ggufLogits(await loadModel('kiln/tiny-gguf')), gg.logits.data, { atol: 1e-4 * maxAbs(gg.logits.data), rtol: 0 }, 'hub GGUF');
      const e = await fails(() => loadModel('kiln/tiny-llama', { revision: 'nope' }));
      expect(e.message).toMatch(/kiln\/tiny-llama@nope: the hub at http:\/\/127\.0\.0\.1:\d+ answered HTTP 404/);
      expect((await fails(() => loadModel('kiln/absent'))).message).toMatch(/kiln\/absent@main: .*HTTP 404.*\(and there is no local path 'kiln\/absent'\)/);
      // a gated repo: refused without a token (the message says how), loaded with hubToken or $HF_TOKEN
      expect((await fails(() => loadModel('kiln/gated'))).message).toMatch(/kiln\/gated@main: .*HTTP 401.*set hubToken or \$HF_TOKEN/);
      expect(await logitsOf(await loadModel('kiln/gated', { hubToken: 'hf_test' }), g.ids)).toEqual(folderLogits);
      process.env.HF_TOKEN = 'hf_test';
      expect(await logitsOf(await loadModel('kiln/gated'), g.ids)).toEqual(folderLogits);
    } finally {
      delete process.env.HF_ENDPOINT;
      delete process.env.HF_TOKEN;
    }
  });

  it('progress for local files: every file, monotone overall fraction ending at 1', async () => {
    const events: ProgressEvent[] = [];
    await loadModel(llama, { onProgress: (e) => events.push(e) });
    checkProgress(events, ['config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'].map((f) => [f, statSync(join(llama, f)).size]));
    const gEvents: ProgressEvent[] = [];
    await loadModel(ggufFile, { onProgress: (e) => gEvents.push(e) });
    checkProgress(gEvents, [[ggufFile, statSync(ggufFile).size]]);
  });

  it('a plain URL folder given its file list fetches only those files: no 404 probes', async () => {
    requests.length = 0;
    const files = ['config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    const lm = await loadModel(`${hub}/llama`, { files });
    assertClose(await logitsOf(lm, g.ids), g.logits.data, { atol: 1e-4, rtol: 1e-4 }, 'URL folder');
    expect(requests.filter((r) => r.status !== 200)).toEqual([]);
    expect(requests.length).toBe(files.length);
  });

  it('cached models are listed by repo id and deleted; Node without Cache Storage lists none', async () => {
    expect(await listCachedModels()).toEqual([]);
    expect(await deleteCachedModel('kiln/tiny-llama')).toBe(0);
    const stores = new Map<string, Map<string, Response>>();
    (globalThis as { caches?: unknown }).caches = {
      open: async (name: string) => {
        if (!stores.has(name)) stores.set(name, new Map());
        const s = stores.get(name)!;
        return {
          match: async (u: string | { url: string }) => s.get(typeof u === 'string' ? u : u.url)?.clone(),
          put: async (u: string, r: Response) => void s.set(u, r.clone()),
          keys: async () => [...s.keys()].map((url) => ({ url })),
          delete: async (u: { url: string }) => s.delete(u.url),
        };
      },
    };
    try {
      await loadModel('kiln/tiny-llama', { hubUrl: hub });
      await loadModel(`${hub}/gguf/tiny-llama.gguf?download=true`);
      const files = REPOS['kiln/tiny-llama'].files;
      const list = await listCachedModels();
      expect(list.map((m) => m.id).sort()).toEqual([`${hub}/gguf`, 'kiln/tiny-llama'].sort());
      const repo = list.find((m) => m.id === 'kiln/tiny-llama')!;
      expect(repo.files.sort()).toEqual([...files].sort());
      expect(repo.bytes).toBe(files.reduce((a, f) => a + statSync(join(llama, f)).size, 0));
      // a cached load downloads nothing
      requests.length = 0;
      await loadModel('kiln/tiny-llama', { hubUrl: hub });
      expect(requests.map((r) => r.url)).toEqual(['/api/models/kiln/tiny-llama/revision/main?blobs=true']);
      expect(await deleteCachedModel('kiln/tiny-llama')).toBe(files.length);
      expect((await listCachedModels()).map((m) => m.id)).toEqual([`${hub}/gguf`]);
    } finally {
      delete (globalThis as { caches?: unknown }).caches;
    }
  });
});

/**
 * Every file reported, ending loaded = total = its size; the overall fraction monotone, ending at
 * 1, and at each event the bytes loaded so far over all the files' bytes (every file is known
 * before the first event: the shards too, though the index names them).
 */
function checkProgress(events: ProgressEvent[], files: [string, number][]): void {
  expect(events.length).toBeGreaterThan(files.length);
  for (let i = 1; i < events.length; i++) expect(events[i].fraction).toBeGreaterThanOrEqual(events[i - 1].fraction);
  const all = files.reduce((a, [, n]) => a + n, 0);
  const size = new Map(files);
  // the small files read before the shards were known (config, index) are reported once the
  // shards are: up to then the fraction covers only them; from the first weight file on it is exact
  const first = events.findIndex((e) => /\.(safetensors|gguf)$/.test(e.file));
  const early = new Set(events.slice(0, first).map((e) => e.file));
  for (const e of events.slice(0, first)) expect(e.fraction).toBeLessThanOrEqual([...early].reduce((a, f) => a + size.get(f)!, 0) / all + 1e-9);
  const loaded = new Map(events.slice(0, first).map((e) => [e.file, e.loaded]));
  for (const e of events.slice(first)) {
    loaded.set(e.file, e.loaded);
    expect(e.fraction).toBeCloseTo([...loaded.values()].reduce((a, b) => a + b, 0) / all, 9);
  }
  expect(events.at(-1)!.fraction).toBe(1);
  expect(events.slice(0, -1).some((e) => e.fraction > 0 && e.fraction < 1)).toBe(true);
  for (const [f, size] of files) {
    const last = events.filter((e) => e.file === f).at(-1);
    expect(last, f).toBeDefined();
    expect([last!.loaded, last!.total], f).toEqual([size, size]);
  }
}
