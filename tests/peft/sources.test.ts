// loadAdapter from wherever an adapter is, through the model loader's sources: a URL folder (a
// loopback HTTP server), a folder's files as Blobs, and the safetensors file alone as bytes with
// its config given; each gives the golden logits (tests/golden/peft/generate.py).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { KilnError } from '../../src/core/errors.js';
import { loadModel } from '../../src/models/load.js';
import { assertClose } from '../helpers/assert-close.js';
import { serveFolder, type FolderServer } from '../helpers/serve.js';

const ckpt = new URL('../golden/checkpoints/', import.meta.url).pathname;
const peftDir = new URL('../golden/peft/', import.meta.url).pathname;
let server: FolderServer;
let base = '';
let requests: string[] = [];

beforeAll(async () => {
  server = await serveFolder(peftDir);
  base = server.base;
  requests = server.requests;
});
afterAll(() => server.close());

describe('loadAdapter sources', () => {
  it('a URL folder, Blobs by name, and lone safetensors bytes with opts.config give the golden logits', async () => {
    k.use(await k.createBackend('wasm'));
    const g = JSON.parse(readFileSync(join(peftDir, 'qwen2-dora', 'golden.json'), 'utf8'));
    const check = async (peft: k.peft.PeftModel, what: string) => {
      const { logits } = peft.call({ inputIds: k.tensor(g.ids.data, { shape: g.ids.shape, dtype: 'i32' }) }) as { logits: Tensor };
      const scale = Math.max(...g.logits.data.map(Math.abs));
      assertClose(await logits.toArray(), g.logits.data, { atol: 1e-4 * scale, rtol: 0 }, what);
    };
    const model = () => loadModel(join(ckpt, 'qwen2'));
    await check(await k.peft.loadAdapter(await model(), `${base}/qwen2-dora`), 'URL');
    expect(requests.sort()).toEqual(['/qwen2-dora/adapter_config.json', '/qwen2-dora/adapter_model.safetensors']); // nothing probed
    const cfgBytes = readFileSync(join(peftDir, 'qwen2-dora', 'adapter_config.json'));
    const wBytes = readFileSync(join(peftDir, 'qwen2-dora', 'adapter_model.safetensors'));
    await check(await k.peft.loadAdapter(await model(), { 'adapter_config.json': new Blob([cfgBytes]), 'adapter_model.safetensors': new Blob([wBytes]) }), 'Blobs');
    await check(await k.peft.loadAdapter(await model(), new Uint8Array(wBytes), 'default', { config: JSON.parse(cfgBytes.toString()) }), 'bytes');
    const e = await k.peft.loadAdapter(await model(), new Uint8Array(wBytes)).catch((x) => x);
    expect(e).toBeInstanceOf(KilnError);
    expect(e.message).toMatch(/a lone adapter_model.safetensors needs its adapter_config.json as opts.config/);
    const missing = await k.peft.loadAdapter(await model(), `${base}/nowhere`).catch((x) => x);
    expect(missing).toBeInstanceOf(KilnError);
    expect(missing.message).toMatch(/nowhere.*adapter_config.json/);
  });
});
