// The `kiln` command.
import { KilnError } from '../core/errors.js';
import type { BackendName } from '../backend/backend.js';
import { probeBackends } from '../core/runtime.js';
import { demo } from './demo.js';
import { info } from './info.js';
import { detokenizeCmd, packCmd, tokenizeCmd, trainTokenizerCmd } from './tokenize.js';
import { chatCmd, generateCmd, logitsCmd, perplexityCmd } from './model.js';

const USAGE = `kiln — run and fine-tune transformer language models on your device

usage:
  kiln info [--json]                         backends, WebGPU adapter (features, limits), WASM SIMD
  kiln demo [--backend auto|both|wasm|webgpu] [--steps N]
                                             train a two-layer MLP with autograd, print the loss
  kiln tokenize --tokenizer FILE|DIR (--text S | --file F|-) [--lines] [--json] [--add-special] [--no-special]
                                             ids of a text (special tokens added), or of each line
                                             (none added unless --add-special)
  kiln detokenize --tokenizer FILE|DIR --ids 1,2,3 [--skip-special]
  kiln train-tokenizer --files F... --vocab-size N --out tokenizer.json
                       [--min-frequency N] [--special-tokens A,B] [--pattern gpt2|llama3]
                                             byte-level BPE, written as a Hugging Face tokenizer.json
  kiln pack --tokenizer FILE|DIR --file F --seq-len N --out DIR
            [--strategy ffd|greedy|concat] [--validation FRACTION] [--seed S]
                                             tokenize a .txt/.jsonl dataset and pack it into rows
                                             (DIR/train.safetensors: input_ids, labels, position_ids,
                                             document_ids), printing the packing efficiency
  kiln generate --model DIR --prompt S [--max-tokens N] [--temperature T] [--top-p P] [--top-k K]
                [--seed S] [--chat] [--backend wasm|webgpu] [--quantize q8_0|q4_0|none] [--dtype f16|bf16]
                                             stream a continuation (greedy unless --temperature),
                                             tokens/s at the end; --chat wraps the prompt in the chat template
  kiln chat --model DIR [--system S] [--max-tokens N] [--temperature T] [--seed S] [--backend wasm|webgpu]
                                             a conversation on stdin/stdout through the chat template
  kiln logits --model DIR --tokens 1,2,3 [--backend wasm|webgpu] [--json]
                                             {"logits": [[...] one row per position]}
  kiln perplexity --model DIR --file F [--context N] [--stride S] [--backend wasm|webgpu]
`;

/** The values after a flag up to the next flag (for --files). */
function values(args: string[], name: string): string[] {
  const i = args.indexOf(name);
  if (i < 0) return [];
  const out: string[] = [];
  for (let k = i + 1; k < args.length && !args[k].startsWith('--'); k++) out.push(args[k]);
  return out;
}

function need(args: string[], name: string, op: string): string {
  const v = flag(args, name);
  if (v === undefined) throw new KilnError('argument', op, `${name} is required`);
  return v;
}

function int(v: string | undefined, name: string, op: string, dflt?: number): number {
  if (v === undefined && dflt !== undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new KilnError('argument', op, `${name} must be a non-negative integer, got ${v}`);
  return n;
}

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
      case 'tokenize':
        return tokenizeCmd({
          tokenizer: need(args, '--tokenizer', 'kiln tokenize'),
          text: flag(args, '--text'),
          file: args.includes('--file') && args[args.indexOf('--file') + 1] === '-' ? '-' : flag(args, '--file'),
          lines: args.includes('--lines'),
          json: args.includes('--json'),
          addSpecial: args.includes('--add-special'),
          noSpecial: args.includes('--no-special'),
        });
      case 'detokenize':
        return detokenizeCmd({ tokenizer: need(args, '--tokenizer', 'kiln detokenize'), ids: need(args, '--ids', 'kiln detokenize'), skipSpecial: args.includes('--skip-special') });
      case 'train-tokenizer': {
        const op = 'kiln train-tokenizer';
        return trainTokenizerCmd({
          files: values(args, '--files'),
          vocabSize: int(need(args, '--vocab-size', op), '--vocab-size', op),
          out: need(args, '--out', op),
          minFrequency: flag(args, '--min-frequency') === undefined ? undefined : int(flag(args, '--min-frequency'), '--min-frequency', op),
          special: (flag(args, '--special-tokens') ?? '').split(',').filter(Boolean),
          pattern: flag(args, '--pattern'),
        });
      }
      case 'pack': {
        const op = 'kiln pack';
        const validation = Number(flag(args, '--validation') ?? 0);
        if (!(validation >= 0)) throw new KilnError('argument', op, `--validation must be a fraction or a count, got ${flag(args, '--validation')}`);
        return packCmd({
          tokenizer: need(args, '--tokenizer', op),
          file: need(args, '--file', op),
          seqLen: int(need(args, '--seq-len', op), '--seq-len', op),
          out: need(args, '--out', op),
          strategy: flag(args, '--strategy') ?? 'ffd',
          validation,
          seed: int(flag(args, '--seed'), '--seed', op, 0),
        });
      }
      case 'logits':
        return await logitsCmd({ model: need(args, '--model', 'kiln logits'), tokens: need(args, '--tokens', 'kiln logits'), backend: flag(args, '--backend'), json: args.includes('--json') });
      case 'generate': {
        const op = 'kiln generate';
        const real = (name: string): number | undefined => {
          const v = flag(args, name);
          if (v === undefined) return undefined;
          const n = Number(v);
          if (!Number.isFinite(n)) throw new KilnError('argument', op, `${name} must be a number, got ${v}`);
          return n;
        };
        return await generateCmd({
          model: need(args, '--model', op),
          prompt: need(args, '--prompt', op),
          maxTokens: int(flag(args, '--max-tokens'), '--max-tokens', op, 128),
          temperature: real('--temperature'),
          topP: real('--top-p'),
          topK: flag(args, '--top-k') === undefined ? undefined : int(flag(args, '--top-k'), '--top-k', op),
          seed: flag(args, '--seed') === undefined ? undefined : int(flag(args, '--seed'), '--seed', op),
          backend: flag(args, '--backend'),
          chat: args.includes('--chat'),
          quantize: flag(args, '--quantize'),
          dtype: flag(args, '--dtype'),
        });
      }
      case 'chat': {
        const op = 'kiln chat';
        const t = flag(args, '--temperature');
        return await chatCmd({
          model: need(args, '--model', op),
          system: flag(args, '--system'),
          maxTokens: int(flag(args, '--max-tokens'), '--max-tokens', op, 256),
          temperature: t === undefined ? undefined : Number(t),
          seed: flag(args, '--seed') === undefined ? undefined : int(flag(args, '--seed'), '--seed', op),
          backend: flag(args, '--backend'),
          quantize: flag(args, '--quantize'),
          dtype: flag(args, '--dtype'),
        });
      }
      case 'perplexity': {
        const op = 'kiln perplexity';
        return await perplexityCmd({
          model: need(args, '--model', op),
          file: need(args, '--file', op),
          context: flag(args, '--context') === undefined ? undefined : int(flag(args, '--context'), '--context', op),
          stride: flag(args, '--stride') === undefined ? undefined : int(flag(args, '--stride'), '--stride', op),
          backend: flag(args, '--backend'),
        });
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
