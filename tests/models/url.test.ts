// Loading from a URL: a loopback HTTP server serves a conformance checkpoint; the download
// reports its progress, and with Cache Storage (stood in for here; browsers and Deno have it) a
// second load downloads nothing.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { KilnError } from '../../src/core/errors.js';
import { assertClose } from '../helpers/assert-close.js';
import { serveFolder, type FolderServer } from '../helpers/serve.js';

const dir = new URL('../golden/checkpoints/', import.meta.url).pathname;
let server: FolderServer;
let base = '';
let requests: string[] = [];

beforeAll(async () => {
  server = await serveFolder(dir);
  base = server.base;
  requests = server.requests;
});
afterAll(() => server.close());

describe('loadModel from a URL', () => {
  it('downloads with progress, gives the same logits, and a cached reload downloads nothing', async () => {
    k.use(await k.createBackend('wasm'));
    const g = JSON.parse(readFileSync(join(dir, 'llama', 'golden.json'), 'utf8'));
    // a Cache Storage stand-in with the API the loader uses
    const stores = new Map<string, Map<string, Response>>();
    (globalThis as { caches?: unknown }).caches = {
      open: async (name: string) => {
        if (!stores.has(name)) stores.set(name, new Map());
        const s = stores.get(name)!;
        return { match: async (u: string) => s.get(u)?.clone(), put: async (u: string, r: Response) => void s.set(u, r.clone()) };
      },
    };
    try {
      const progress = new Map<string, [number, number | null]>();
      const lm = await k.loadModel(`${base}/llama`, { onProgress: ({ file, loaded, total }) => progress.set(file, [loaded, total]) });
      const { logits } = lm.model.call({ inputIds: k.tensor(g.ids.data, { shape: g.ids.shape, dtype: 'i32' }) }) as { logits: Tensor };
      assertClose(await logits.toArray(), g.logits.data, { atol: 1e-4, rtol: 1e-4 }, 'logits');
      for (const f of ['config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
        const p = progress.get(f)!;
        expect(p[0], f).toBe(p[1]);
        expect(p[0]).toBe(readFileSync(join(dir, 'llama', f)).length);
      }
      const fetched = requests.length;
      await k.loadModel(`${base}/llama`);
      // only the files that were missing (404s are not cached) are asked for again
      const again = requests.slice(fetched);
      for (const f of ['config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) expect(again).not.toContain(`/llama/${f}`);
    } finally {
      delete (globalThis as { caches?: unknown }).caches;
    }
    await expect(k.loadModel(`${base}/nope`)).rejects.toThrow(KilnError);
  });
});
