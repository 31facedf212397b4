// Chromium: a page imports the built bundle and runs kiln on the browser's WebGPU (SwiftShader
// here) and on wasm. Debian's chromium, driven by playwright-core; no browser is downloaded.
import { createReadStream, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { EXPECTED_ROWS, assertRows, parseRows } from './rows.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-webgpu-adapter=swiftshader',
  '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const TYPES: Record<string, string> = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.html': 'text/html', '.map': 'application/json' };

const PAGE = `<!doctype html><script type="module">
import * as kiln from '/dist/kiln.js';
import { runChecks } from '/tests/runtimes/checks.js';
try {
  const rows = await runChecks(kiln, { expectF16: false });
  window.__result = JSON.stringify(rows, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
} catch (e) { window.__result = 'ERROR ' + (e && e.stack || e); }
</script>`;

let server: Server;
let browser: Browser;
let base = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    if (path === '/') { res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE); return; }
    const file = join(root, path);
    if (!file.startsWith(root) || !existsSync(file)) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true });
});

afterAll(async () => {
  await browser?.close();
  await new Promise((r) => server?.close(r));
});

describe('Chromium runtime', () => {
  it('runs kiln kernels from the built bundle on the page\'s WebGPU adapter, and on wasm', async () => {
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on('console', (m) => logs.push(m.text()));
    page.on('pageerror', (e) => logs.push(String(e)));
    await page.goto(base);
    await page.waitForFunction(() => (window as unknown as { __result?: string }).__result !== undefined, undefined, { timeout: 120_000 });
    const result = await page.evaluate(() => (window as unknown as { __result: string }).__result);
    expect(result.startsWith('ERROR'), `${result}\n${logs.join('\n')}`).toBe(false);
    const rows = parseRows(result);
    assertRows(rows, EXPECTED_ROWS);
    expect(JSON.stringify(rows[0].info)).toMatch(/swiftshader/i);
    await page.close();
  });
});
