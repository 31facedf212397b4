// Node: the built bundle (not the sources) on Dawn from the `webgpu` package, in a fresh process
// that sets nothing up: kiln finds the software Vulkan driver by itself on a GPU-less machine.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EXPECTED_ROWS, assertRows, parseRows } from './rows.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('Node runtime', () => {
  it('runs kiln kernels from dist/kiln.js on Dawn, and on wasm', () => {
    const env: NodeJS.ProcessEnv = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' };
    delete env.VK_ICD_FILENAMES;
    const out = execFileSync(process.execPath, ['tests/runtimes/node-check.mjs'], { cwd: root, env, encoding: 'utf8', timeout: 120_000 });
    const line = out.split('\n').find((l) => l.startsWith('[{'));
    expect(line, `node printed no result:\n${out}`).toBeDefined();
    const rows = parseRows(line!);
    assertRows(rows, EXPECTED_ROWS);
    expect(JSON.stringify(rows[0].info)).toMatch(/swiftshader|vulkan|nvidia|amd|intel/i);
  });
});
