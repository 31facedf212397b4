// Deno: kiln's bundle on Deno's WebGPU (wgpu on Mesa lavapipe, with shader-f16: the native f16
// kernels run here) and on its wasm backend. Deno runs without --allow-env: kiln reads a refused
// permission as unset and still takes WebGPU. The test picks lavapipe itself, since Node's tests
// here usually point VK_ICD_FILENAMES at SwiftShader, which has no shader-f16.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EXPECTED_ROWS, assertRows, parseRows } from './rows.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const LAVAPIPE_ICD = '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json';

describe('Deno runtime', () => {
  it('runs kiln kernels on a real WebGPU adapter with shader-f16, and on wasm, without --allow-env', () => {
    const out = execFileSync(`${root}node_modules/.bin/deno`, ['run', '--allow-read', 'tests/runtimes/deno-check.ts'], {
      cwd: root,
      env: { ...process.env, VK_ICD_FILENAMES: LAVAPIPE_ICD, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', NO_COLOR: '1' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    const line = out.split('\n').find((l) => l.startsWith('[{'));
    expect(line, `deno printed no result:\n${out}`).toBeDefined();
    const rows = parseRows(line!);
    assertRows(rows, EXPECTED_ROWS);
    expect(JSON.stringify(rows[0].info)).toMatch(/llvmpipe|lavapipe|mesa|65541/i);
  });
});
