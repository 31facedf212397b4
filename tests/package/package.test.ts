// The package as people install it: `npm pack` of this repository, installed offline into a fresh
// project in a temp dir, then used the ways the README promises: a strict TypeScript consumer
// (three module resolutions, skipLibCheck off), Node ESM and require(), esbuild and Vite builds
// of a page run in Chromium, and Deno. Needs dist/ (npm test builds it first).
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, serve } from '../../scripts/chromium.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fixtures = join(root, 'tests/package/fixtures');
const LAVAPIPE_ICD = '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json';
const WANT = [58, 64, 139, 154]; // [[1,2,3],[4,5,6]] @ [[7,8],[9,10],[11,12]], by hand
const env = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', NO_COLOR: '1' };

let tmp: string;
let app: string;
let tarball: string;
let packed: { dependencies?: Record<string, string>; peerDependencies?: Record<string, string>; peerDependenciesMeta?: Record<string, { optional?: boolean }>; engines?: { node?: string } };

/** Runs a command (without blocking the test worker); fails with its output unless it exits 0. */
function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { cwd: opts.cwd ?? app, env: opts.env ?? env, encoding: 'utf8', timeout: 60_000, maxBuffer: 16 << 20 }, (e, stdout, stderr) =>
      e ? reject(new Error(`${cmd} ${args.join(' ')} failed (${e.code ?? e.signal}):\n${stdout}\n${stderr}`)) : resolve(stdout)),
  );
}
const result = (out: string) => JSON.parse(out.split('\n').find((l) => l.startsWith('RESULT '))?.slice(7) ?? 'null');

/** A package and its dependencies, transitively, as folders of this repository's node_modules. */
function closure(names: string[], seen = new Set<string>()): string[] {
  for (const n of names) {
    if (seen.has(n)) continue;
    seen.add(n);
    const pj = JSON.parse(readFileSync(join(root, 'node_modules', n, 'package.json'), 'utf8'));
    closure(Object.keys(pj.dependencies ?? {}), seen);
  }
  return [...seen].map((n) => join(root, 'node_modules', n));
}

beforeAll(async () => {
  if (!existsSync(join(root, 'dist/types/src/index.d.ts'))) throw new Error('dist/ is not built: run `npm run build`');
  tmp = mkdtempSync(join(tmpdir(), 'kiln-package-'));
  app = join(tmp, 'app');
  mkdirSync(app);
  tarball = join(tmp, (await sh('npm', ['pack', '--silent', '--pack-destination', tmp], { cwd: root })).trim().split('\n').pop()!);
  packed = JSON.parse(await sh('tar', ['xzOf', tarball, 'package/package.json'], { cwd: tmp }));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  // offline: kiln's declared dependencies (and the consumer's @types/node, @webgpu/types) come
  // from this repository's node_modules as local folders, so a dependency missing from kiln's
  // package.json is missing here too
  const deps = closure([...Object.keys(packed.dependencies ?? {}), '@types/node', '@webgpu/types']);
  await sh('npm', ['install', '--offline', '--install-links', '--no-audit', '--no-fund', '--no-save', tarball, ...deps]);
  cpSync(fixtures, app, { recursive: true });
}, 120_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('holds the bundle, the declarations and the LICENSE; no sources, no source maps; webgpu an optional peer', async () => {
    const files = (await sh('tar', ['tzf', tarball], { cwd: tmp })).trim().split('\n');
    for (const f of ['package/LICENSE', 'package/dist/kiln.js', 'package/dist/types/src/index.d.ts', 'package/bin/kiln.mjs', 'package/dist/cli.js']) expect(files).toContain(f);
    expect(files.filter((f) => f.endsWith('.map') || f.startsWith('package/src/') || f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(statSync(tarball).size).toBeLessThan(1 << 20);
    expect(packed.peerDependencies?.webgpu).toBeDefined();
    expect(packed.peerDependenciesMeta?.webgpu?.optional).toBe(true);
    expect(packed.dependencies?.webgpu).toBeUndefined();
    expect(packed.engines?.node).toBe('^20.19.0 || >=22.12.0'); // require(esm) without a flag: tested below
  });

  it('type-checks in a strict consumer with moduleResolution bundler, node16 and nodenext, skipLibCheck off', async () => {
    const strict = { target: 'ES2022', strict: true, noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true, skipLibCheck: false, noEmit: true };
    const cases = [
      // a CommonJS consumer too under nodenext: TypeScript models require(esm) there only
      ...[['esnext', 'bundler'], ['node16', 'node16'], ['nodenext', 'nodenext']].map(([module, moduleResolution]) => ({
        name: `node-${moduleResolution}`, files: module === 'nodenext' ? ['consumer.ts', 'cjs-consumer.cts'] : ['consumer.ts'], options: { module, moduleResolution, lib: ['ES2022'], types: ['node'] },
      })),
      { name: 'browser-gpu', files: ['gpu-consumer.ts'], options: { module: 'esnext', moduleResolution: 'bundler', lib: ['ES2022', 'DOM'], types: ['@webgpu/types'] } },
    ];
    for (const c of cases) writeFileSync(join(app, `tsconfig.${c.name}.json`), JSON.stringify({ compilerOptions: { ...strict, ...c.options }, files: c.files }));
    // rejects with the diagnostics when any project has errors
    await sh(process.execPath, [join(root, 'tests/package/typecheck.mjs'), ...cases.map((c) => `tsconfig.${c.name}.json`)]);
  });

  it('runs in Node: ESM and the CLI fall back to wasm naming `npm install webgpu`, ESM takes WebGPU once it is installed; require() works', async () => {
    expect(await sh(join(app, 'node_modules/.bin/kiln'), ['info'])).toContain('npm install webgpu'); // the CLI from the package's bin
    const noGpu = result(await sh(process.execPath, ['node.mjs']));
    expect(noGpu.backend).toBe('wasm');
    expect(noGpu.fallbackReason).toContain('npm install webgpu');
    expect(noGpu.matmul.wasm).toEqual(WANT);
    symlinkSync(join(root, 'node_modules/webgpu'), join(app, 'node_modules/webgpu')); // the optional peer, as `npm install webgpu` would add it
    const gpu = result(await sh(process.execPath, ['node.mjs']));
    expect(gpu.backend, gpu.fallbackReason).toBe('webgpu');
    expect(gpu.matmul).toEqual({ webgpu: WANT, wasm: WANT });
    expect(result(await sh(process.execPath, ['require.cjs'])).matmul.wasm).toEqual(WANT);
  });

  it('imports in Deno without --allow-env and runs on its WebGPU adapter and on wasm', async () => {
    const deno = join(root, 'node_modules/.bin/deno');
    const r = result(await sh(deno, ['run', '--allow-read', 'node.mjs'], { env: { ...env, VK_ICD_FILENAMES: LAVAPIPE_ICD } }));
    expect(r.backend, r.fallbackReason).toBe('webgpu');
    expect(r.matmul).toEqual({ webgpu: WANT, wasm: WANT });
  });

  it('bundles for the browser with esbuild and Vite; the built pages run in Chromium on WebGPU and wasm', async () => {
    const esbuild = await import('esbuild');
    await esbuild.build({ entryPoints: [join(app, 'page.js')], bundle: true, platform: 'browser', format: 'esm', outfile: join(app, 'esbuild/page.js'), logLevel: 'silent' });
    const vite = await import('vite');
    await vite.build({ root: app, configFile: false, logLevel: 'silent', build: { outDir: join(app, 'vite'), emptyOutDir: true } });
    const pages = [
      { name: 'esbuild', dir: join(app, 'esbuild'), html: readFileSync(join(app, 'index.html'), 'utf8') },
      { name: 'vite', dir: join(app, 'vite'), html: readFileSync(join(app, 'vite/index.html'), 'utf8') },
    ];
    const browser = await launchChromium();
    try {
      for (const p of pages) {
        const server = await serve(p.html, p.dir);
        const page = await browser.newPage();
        const logs: string[] = [];
        page.on('console', (m) => logs.push(m.text()));
        page.on('pageerror', (e) => logs.push(String(e)));
        try {
          await page.goto(server.url);
          await page.waitForFunction(() => (window as unknown as { __result?: string }).__result !== undefined, undefined, { timeout: 60_000 });
          const text = await page.evaluate(() => (window as unknown as { __result: string }).__result);
          expect(text.startsWith('ERROR'), `${p.name}: ${text}\n${logs.join('\n')}`).toBe(false);
          const r = JSON.parse(text);
          expect(r.backend, `${p.name}: ${r.fallbackReason}`).toBe('webgpu');
          expect(r.matmul, p.name).toEqual({ webgpu: WANT, wasm: WANT });
        } finally {
          await page.close();
          await server.close();
        }
      }
    } finally {
      await browser.close();
    }
  });
});
