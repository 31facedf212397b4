// The test command: build, type-check, then every suite (both backends, the three runtimes).
// WebGPU is required: without an adapter this fails, it never skips the GPU path.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';

process.env.XDG_RUNTIME_DIR ??= '/tmp/kiln-xdg';
mkdirSync(process.env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });

const run = (cmd, args) => {
  console.log(`\n$ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', env: process.env });
  return r.status ?? 1;
};

if (run('npm', ['run', '--silent', 'build'])) process.exit(1);
if (run('npx', ['tsc', '--noEmit', '-p', '.'])) process.exit(1);
// fail fast, with the reason, when this machine has no WebGPU adapter
if (run(process.execPath, ['bin/kiln.mjs', 'info'])) process.exit(1);
const probe = spawnSync(process.execPath, ['-e', "import('./dist/kiln.js').then(async k => { const p = await k.probeBackends(); if (!p.webgpu.available) { console.error('WebGPU is required for the tests: ' + p.webgpu.reason); process.exit(1); } process.exit(0); })"], { stdio: 'inherit', env: process.env });
if (probe.status !== 0) process.exit(1);

mkdirSync('.cache', { recursive: true });
const status = run('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', '--outputFile.json=.cache/vitest.json', ...process.argv.slice(2)]);
let summary = '';
try {
  const r = JSON.parse(readFileSync('.cache/vitest.json', 'utf8'));
  summary = `${r.numPassedTests} passed, ${r.numFailedTests} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : '');
  if (r.numPendingTests || r.numTodoTests) {
    console.error('tests were skipped: nothing may be skipped (WebGPU is required)');
    console.log(summary);
    process.exit(1);
  }
} catch {
  summary = status === 0 ? '' : '0 passed, 1 failed';
}
if (summary) console.log(summary);
process.exit(status);
