// Chromium: a page imports the built bundle and runs kiln on the browser's WebGPU (SwiftShader
// here) and on wasm. Debian's chromium, driven by playwright-core; no browser is downloaded.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchChromium, serve } from '../../scripts/chromium.mjs';
import { EXPECTED_ROWS, assertRows, parseRows } from './rows.js';

const PAGE = `<!doctype html><script type="module">
import * as kiln from '/dist/kiln.js';
import { runChecks } from '/tests/runtimes/checks.js';
try {
  const base = location.origin + '/tests/golden/checkpoints/llama';
  const loadCheckpoint = async (k) => ({ lm: await k.loadModel(base), golden: await (await fetch(base + '/golden.json')).json() });
  const rows = await runChecks(kiln, { expectF16: false, loadCheckpoint });
  window.__cached = (await (await caches.open('kiln-models')).keys()).length;
  window.__result = JSON.stringify(rows, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
} catch (e) { window.__result = 'ERROR ' + (e && e.stack || e); }
</script>`;

let server: { url: string; close: () => Promise<void> };
let browser: Browser;

beforeAll(async () => {
  server = await serve(PAGE);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe('Chromium runtime', () => {
  it('runs kiln kernels from the built bundle on the page\'s WebGPU adapter, and on wasm', async () => {
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on('console', (m) => logs.push(m.text()));
    page.on('pageerror', (e) => logs.push(String(e)));
    await page.goto(server.url);
    await page.waitForFunction(() => (window as unknown as { __result?: string }).__result !== undefined, undefined, { timeout: 120_000 });
    const result = await page.evaluate(() => (window as unknown as { __result: string }).__result);
    expect(result.startsWith('ERROR'), `${result}\n${logs.join('\n')}`).toBe(false);
    const rows = parseRows(result);
    assertRows(rows, EXPECTED_ROWS);
    expect(JSON.stringify(rows[0].info)).toMatch(/swiftshader/i);
    // the checkpoint came over HTTP into Cache Storage (config, index, two shards)
    expect(await page.evaluate(() => (window as unknown as { __cached: number }).__cached)).toBe(4);
    await page.close();
  });
});
