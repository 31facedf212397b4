// Runs the runtime checks under Deno (WebGPU through wgpu on Mesa lavapipe, which has
// shader-f16) and prints them as JSON for tests/runtimes/deno.test.ts.
// @ts-nocheck: a Deno script, outside the Node type check
import * as kiln from '../../dist/kiln.js';
import { runChecks } from './checks.js';

const rows = await runChecks(kiln, { expectF16: true });
// JSON has no Infinity: non-finite numbers travel as strings
console.log(JSON.stringify(rows, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v)));
