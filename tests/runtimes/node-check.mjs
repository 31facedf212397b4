// Runs the runtime checks on the built bundle in plain Node (WebGPU from the `webgpu` package).
import * as kiln from '../../dist/kiln.js';
import { runChecks } from './checks.js';
import { readFile } from 'node:fs/promises';

// the checkpoint loaded from a path, as Node users do
const loadCheckpoint = async (k) => ({ lm: await k.loadModel('tests/golden/checkpoints/llama'), golden: JSON.parse(await readFile('tests/golden/checkpoints/llama/golden.json', 'utf8')) });
const rows = await runChecks(kiln, { expectF16: false, loadCheckpoint });
console.log(JSON.stringify(rows, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)));
process.exit(0);
