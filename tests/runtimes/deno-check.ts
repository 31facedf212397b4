// Runs the runtime checks under Deno (WebGPU through wgpu on Mesa lavapipe, which has
// shader-f16) and prints them as JSON for tests/runtimes/deno.test.ts.
// @ts-nocheck: a Deno script, outside the Node type check
import * as kiln from '../../dist/kiln.js';
import { runChecks } from './checks.js';

const dir = 'tests/golden/checkpoints/llama/';
const loadCheckpoint = async (k) => {
  const files = {};
  for (const f of ['config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) files[f] = await Deno.readFile(dir + f);
  return { lm: await k.loadModel(files), golden: JSON.parse(await Deno.readTextFile(dir + 'golden.json')) };
};
const rows = await runChecks(kiln, { expectF16: true, loadCheckpoint });
// JSON has no Infinity: non-finite numbers travel as strings
console.log(JSON.stringify(rows, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v)));
