// Runs the runtime checks on the built bundle in plain Node (WebGPU from the `webgpu` package).
import * as kiln from '../../dist/kiln.js';
import { runChecks } from './checks.js';

const rows = await runChecks(kiln, { expectF16: false });
console.log(JSON.stringify(rows, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)));
process.exit(0);
