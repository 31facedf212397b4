// The `kiln` command.
import { KilnError } from '../core/errors.js';
import type { BackendName } from '../backend/backend.js';
import { probeBackends } from '../core/runtime.js';
import { demo } from './demo.js';
import { info } from './info.js';

const USAGE = `kiln — run and fine-tune transformer language models on your device

usage:
  kiln info [--json]                         backends, WebGPU adapter (features, limits), WASM SIMD
  kiln demo [--backend auto|both|wasm|webgpu] [--steps N]
                                             train a two-layer MLP with autograd, print the loss
`;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new KilnError('argument', 'kiln', `${name} needs a value`);
  return v;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv;
  try {
    switch (cmd) {
      case 'info':
        return await info(args.includes('--json'));
      case 'demo': {
        const which = flag(args, '--backend') ?? 'both';
        const steps = Number(flag(args, '--steps') ?? 200);
        if (!Number.isInteger(steps) || steps < 1) throw new KilnError('argument', 'kiln demo', `--steps must be a positive integer, got ${flag(args, '--steps')}`);
        let backends: BackendName[];
        if (which === 'both' || which === 'auto') {
          const p = await probeBackends();
          if (!p.webgpu.available) console.log(`webgpu unavailable (${p.webgpu.reason}); running on wasm only`);
          backends = p.webgpu.available ? (which === 'both' ? ['wasm', 'webgpu'] : ['webgpu']) : ['wasm'];
        } else if (which === 'wasm' || which === 'webgpu') backends = [which];
        else throw new KilnError('argument', 'kiln demo', `--backend must be auto, both, wasm or webgpu, got ${which}`);
        await demo(backends, steps);
        return 0;
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return cmd === undefined ? 1 : 0;
      default:
        console.error(`kiln: unknown command '${cmd}'\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof KilnError) {
      console.error(`kiln: ${e.message}`);
      return 1;
    }
    throw e;
  }
}
