// npm run bench -- [--filter matmul|attention|moe|tokenizer|packing|generate] [--tokenizers llama3,...] [--runtime node|chromium|all] [--shapes MxKxN,...]
//   [--backends wasm,webgpu] [--seqs 128,512,1024,2048]
// Prints one JSON line per case: {bench, backend, shape, unit, kiln, peer, peerValue, ratio, ...};
// ratio > 1 means kiln is ahead of the peer measured in the same run.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const arg = (name, def) => { const i = process.argv.indexOf(name); return i >= 0 ? process.argv[i + 1] : def; };
const filter = arg('--filter', '');
const runtime = arg('--runtime', 'all');
const shapes = arg('--shapes', undefined)?.split(',');
const emit = (row) => console.log(JSON.stringify(row));
process.env.XDG_RUNTIME_DIR ??= '/tmp/kiln-xdg';
mkdirSync(process.env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });

if (!existsSync(join(root, 'dist/kiln.js'))) spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });

if ((runtime === 'all' || runtime === 'node') && (!filter || 'matmul'.includes(filter) || filter.includes('matmul'))) {
  const { runNode } = await import('./bench/node.mjs');
  await runNode(filter, (row) => (!shapes || shapes.includes(row.shape)) && emit(row));
}

const want = (name) => !filter || name.includes(filter) || filter.includes(name);
const backendsArg = arg('--backends', 'wasm,webgpu').split(',');
if ((runtime === 'all' || runtime === 'node') && want('attention')) {
  const { attentionBench } = await import('./bench/attention.mjs');
  const seqs = arg('--seqs', '128,512,1024,2048').split(',').map(Number);
  for await (const row of attentionBench(backendsArg, seqs)) emit(row);
}
if ((runtime === 'all' || runtime === 'node') && want('moe')) {
  const { moeBench } = await import('./bench/moe.mjs');
  for await (const row of moeBench(backendsArg)) emit(row);
}

if ((runtime === 'all' || runtime === 'node') && (want('tokenizer') || want('packing'))) {
  // TypeScript (it shares the corpus and fixtures with the tests): bundle, then run
  const esbuild = await import('esbuild');
  const out = join(root, '.cache/bench/tokenizer.mjs');
  await esbuild.build({ entryPoints: [join(root, 'scripts/bench/tokenizer.ts')], bundle: true, platform: 'node', format: 'esm', outfile: out, logLevel: 'warning', external: ['@anush008/tokenizers', '@huggingface/tokenizers', '@huggingface/jinja'] });
  const { tokenizerBench, packingBench } = await import(out);
  if (want('tokenizer')) for await (const row of tokenizerBench(arg('--tokenizers', undefined)?.split(','))) emit(row);
  if (want('packing')) for (const row of packingBench()) emit(row);
}

if ((runtime === 'all' || runtime === 'node') && want('generate')) {
  const esbuild = await import('esbuild');
  const out = join(root, '.cache/bench/generate.mjs');
  await esbuild.build({ entryPoints: [join(root, 'scripts/bench/generate.ts')], bundle: true, platform: 'node', format: 'esm', outfile: out, logLevel: 'warning', external: ['webgpu', '@huggingface/jinja', 'onnxruntime-web'] });
  const { generateBench } = await import(out);
  for await (const row of generateBench(backendsArg)) emit(row);
}

if ((runtime === 'all' || runtime === 'chromium') && want('generate') && backendsArg.includes('webgpu')) {
  // kiln WebGPU against onnxruntime-web WebGPU in the browser, on the model the Node run exported
  const onnx = existsSync(join(root, '.cache/bench/llama95m.onnx')) ? '/.cache/bench/llama95m.onnx' : null;
  if (!onnx) console.error('[generate] no onnxruntime-web WebGPU comparison: run the Node generate bench first (it exports the ONNX model)');
  const { serve, launchChromium } = await import('./chromium.mjs');
  const server = await serve('<!doctype html><script type="module" src="/scripts/bench/generate-page.js"></script>');
  const browser = await launchChromium();
  try {
    const p = await browser.newPage();
    p.on('console', (m) => { if (m.type() === 'error') console.error('[chromium]', m.text()); });
    await p.goto(server.url);
    await p.waitForFunction(() => typeof window.runGenerate === 'function');
    const res = await p.evaluate((o) => window.runGenerate(o), { prompt: 64, decode: 8, onnx });
    for (const row of res.rows) emit(row);
    if (res.error) { console.error(res.error); process.exitCode = 1; }
  } finally {
    await browser.close();
    await server.close();
  }
}

if ((runtime === 'all' || runtime === 'chromium') && want('matmul')) {
  const esbuild = await import('esbuild');
  mkdirSync(join(root, '.cache/bench'), { recursive: true });
  await esbuild.build({ entryPoints: [join(root, 'scripts/bench/page.js')], bundle: true, format: 'esm', outfile: join(root, '.cache/bench/page.js'), logLevel: 'warning' });
  const { serve, launchChromium } = await import('./chromium.mjs');
  const server = await serve('<!doctype html><script type="module" src="/.cache/bench/page.js"></script>');
  const browser = await launchChromium();
  try {
    const p = await browser.newPage();
    p.on('console', (m) => { const t = m.text(); if (t.startsWith('BENCH ')) { const row = JSON.parse(t.slice(6)); emit(row); } });
    await p.goto(server.url);
    await p.waitForFunction(() => typeof window.runBench === 'function');
    const res = await p.evaluate(([f, s]) => window.runBench(f, s), [filter, shapes]);
    if (res.error) { console.error(res.error); process.exitCode = 1; }
  } finally {
    await browser.close();
    await server.close();
  }
}
