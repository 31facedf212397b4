// The `kiln` command: one table of commands and their flags (parsing, --help and did-you-mean
// come from it), one place that turns an error into one line.
import { KilnError } from '../core/errors.js';
import { envVar } from '../core/env.js';
import type { BackendName } from '../backend/backend.js';
import { probeBackends } from '../core/runtime.js';
import { closest, commandHelp, parseFlags, synopsis, type CommandSpec, type FlagSpec } from './args.js';
import { demo } from './demo.js';
import { fsErrorLine, MAX_FILE_SIZE_FLAG, setMaxFileBytes } from './files.js';
import { info } from './info.js';
import { detokenizeCmd, packCmd, tokenizeCmd, trainTokenizerCmd } from './tokenize.js';
import { chatCmd, generateCmd, logitsCmd, perplexityCmd } from './model.js';
import { adapterInfoCmd, mergeCmd } from './adapter.js';

const MODEL: FlagSpec = { name: 'model', kind: 'string', value: 'DIR|FILE.gguf', required: true, help: 'a Hugging Face model folder (config.json, *.safetensors, tokenizer.json) or a GGUF file' };
const TOKENIZER: FlagSpec = { name: 'tokenizer', kind: 'string', value: 'FILE|DIR|FILE.gguf', required: true, help: 'tokenizer.json, a folder holding it (and tokenizer_config.json), or a GGUF file (its tokenizer metadata)' };
const BACKEND: FlagSpec = { name: 'backend', kind: 'string', choices: ['auto', 'wasm', 'webgpu'], default: 'auto', help: 'auto: WebGPU where an adapter exists, else wasm (what kiln info reports)' };
const QUANTIZE: FlagSpec = { name: 'quantize', kind: 'string', choices: ['q8_0', 'q4_0', 'none'], help: "keep the layers' weights quantized (GGUF: quantized unless none)" };
const DTYPE: FlagSpec = { name: 'dtype', kind: 'string', choices: ['f32', 'f16', 'bf16'], help: 'the float weights kept in this type' };
const SEED: FlagSpec = { name: 'seed', kind: 'int', help: 'the sampling seed' };
const JSON_OUT: FlagSpec = { name: 'json', kind: 'bool', help: 'print JSON' };
const ADAPTER: FlagSpec = { name: 'adapter', kind: 'string', value: 'DIR[,DIR...]', help: 'PEFT LoRA/DoRA adapter folders (adapter_config.json, adapter_model.safetensors) applied together' };
const ADAPTER_WEIGHTS: FlagSpec = { name: 'adapter-weights', kind: 'floats', value: 'W[,W...]', help: "one weight per --adapter folder: the LoRA updates' linear combination (default 1 each)" };
/** What every command that runs a model takes: its adapters and its backend; and the weights' storage where it is kept. */
const ON_MODEL = [ADAPTER, ADAPTER_WEIGHTS, BACKEND];
const STORAGE = [QUANTIZE, DTYPE];

const COMMANDS: CommandSpec[] = [
  {
    name: 'info',
    summary: 'backends, WebGPU adapter (features, limits), WASM SIMD',
    flags: [JSON_OUT],
    run: (o) => info(o.json),
  },
  {
    name: 'demo',
    summary: 'train a two-layer MLP with autograd, print the loss',
    flags: [
      { name: 'backend', kind: 'string', choices: ['auto', 'both', 'wasm', 'webgpu'], default: 'both', help: 'where to train (both: each backend in turn)' },
      { name: 'steps', kind: 'int', min: 1, default: 200, help: 'optimizer steps' },
    ],
    run: async (o) => {
      const which: string = o.backend;
      let backends: BackendName[] = [which as BackendName];
      if (which === 'both' || which === 'auto') {
        const p = await probeBackends();
        if (!p.webgpu.available) console.log(`webgpu unavailable (${p.webgpu.reason}); running on wasm only`);
        backends = p.webgpu.available ? (which === 'both' ? ['wasm', 'webgpu'] : ['webgpu']) : ['wasm'];
      }
      await demo(backends, o.steps);
      return 0;
    },
  },
  {
    name: 'tokenize',
    summary: 'ids of a text (special tokens added), or of each line (none added unless --add-special)',
    flags: [
      TOKENIZER,
      { name: 'text', kind: 'string', value: 'S', help: 'the text (or --file)' },
      { name: 'file', kind: 'string', value: 'F|-', help: 'a text file, - for stdin (or --text)' },
      { name: 'lines', kind: 'bool', help: 'one line of ids per input line' },
      { name: 'json', kind: 'bool', help: 'ids as a JSON array' },
      { name: 'add-special', kind: 'bool', help: 'with --lines: add the special tokens to each line' },
      { name: 'no-special', kind: 'bool', help: 'without --lines: add no special tokens' },
      MAX_FILE_SIZE_FLAG,
    ],
    run: (o) => tokenizeCmd(o),
  },
  {
    name: 'detokenize',
    summary: 'the text of token ids',
    flags: [TOKENIZER, { name: 'ids', kind: 'ids', value: '1,2,3', required: true, help: 'token ids (decimal), by commas or spaces' }, { name: 'skip-special', kind: 'bool', help: 'leave special tokens out' }, MAX_FILE_SIZE_FLAG],
    run: (o) => detokenizeCmd(o),
  },
  {
    name: 'train-tokenizer',
    summary: 'byte-level BPE, written as a Hugging Face tokenizer.json',
    flags: [
      { name: 'files', kind: 'list', value: 'F', required: true, help: 'text files, one example a line' },
      { name: 'vocab-size', kind: 'int', min: 1, required: true, help: 'tokens in the vocab (with the 256 bytes and the special tokens)' },
      { name: 'out', kind: 'string', value: 'FILE', required: true, help: 'the tokenizer.json to write' },
      { name: 'min-frequency', kind: 'int', help: 'merge pairs seen at least this often' },
      { name: 'special-tokens', kind: 'string', value: 'A,B', default: '', help: 'special tokens, by commas' },
      { name: 'pattern', kind: 'string', choices: ['gpt2', 'llama3'], help: 'the pre-tokenizer split (default gpt2)' },
      MAX_FILE_SIZE_FLAG,
    ],
    run: (o) => trainTokenizerCmd({ ...o, special: String(o.specialTokens).split(',').filter(Boolean) }),
  },
  {
    name: 'pack',
    summary: 'tokenize a .txt/.jsonl dataset and pack it into rows (DIR/train.safetensors: input_ids, labels, position_ids, document_ids), printing the packing efficiency',
    flags: [
      TOKENIZER,
      { name: 'file', kind: 'string', value: 'F', required: true, help: 'a .txt (documents between blank lines) or .jsonl dataset' },
      { name: 'seq-len', kind: 'int', min: 2, required: true, help: 'tokens per row' },
      { name: 'out', kind: 'string', value: 'DIR', required: true, help: 'the folder to write' },
      { name: 'strategy', kind: 'string', choices: ['ffd', 'greedy', 'concat'], default: 'ffd', help: 'first-fit-decreasing, greedy in order, or cut at row ends' },
      { name: 'validation', kind: 'float', default: 0, help: 'the validation share (a fraction, or a count of documents)' },
      { name: 'seed', kind: 'int', default: 0, help: 'the split seed' },
      MAX_FILE_SIZE_FLAG,
    ],
    run: (o, op) => {
      if (o.validation < 0) throw new KilnError('argument', op, `--validation must be a fraction or a count, got ${o.validation}`);
      return packCmd(o);
    },
  },
  {
    name: 'generate',
    summary: 'stream a continuation (greedy unless --temperature), tokens/s at the end',
    flags: [
      MODEL,
      { name: 'prompt', kind: 'string', value: 'S', required: true, help: 'the prompt' },
      { name: 'max-tokens', kind: 'int', default: 128, help: 'tokens to generate at most' },
      { name: 'temperature', kind: 'float', value: 'T', help: 'sampling temperature (0: greedy)' },
      { name: 'top-p', kind: 'float', value: 'P', help: 'nucleus sampling' },
      { name: 'top-k', kind: 'int', value: 'K', help: 'sample among the K most likely' },
      SEED,
      { name: 'chat', kind: 'bool', help: 'wrap the prompt in the chat template' },
      ...ON_MODEL,
      ...STORAGE,
      MAX_FILE_SIZE_FLAG,
    ],
    run: (o) => generateCmd(o),
  },
  {
    name: 'chat',
    summary: 'a conversation on stdin/stdout through the chat template; the oldest turns go when the context fills',
    flags: [
      MODEL,
      { name: 'system', kind: 'string', value: 'S', help: 'the system message' },
      { name: 'max-tokens', kind: 'int', default: 256, help: 'tokens per reply at most' },
      { name: 'temperature', kind: 'float', value: 'T', default: 0.7, help: 'sampling temperature (0: greedy)' },
      { name: 'context', kind: 'int', min: 2, help: "the conversation's token budget (default: the model's context)" },
      SEED,
      ...ON_MODEL,
      ...STORAGE,
      MAX_FILE_SIZE_FLAG,
    ],
    run: (o) => chatCmd(o),
  },
  {
    name: 'logits',
    summary: '{"logits": [[...] one row per position]}',
    flags: [MODEL, { name: 'tokens', kind: 'ids', value: '1,2,3', required: true, help: 'token ids (decimal), by commas or spaces' }, ...ON_MODEL, JSON_OUT, MAX_FILE_SIZE_FLAG],
    run: (o) => logitsCmd(o),
  },
  {
    name: 'perplexity',
    summary: 'perplexity of a text file, with a sliding window',
    flags: [
      MODEL,
      { name: 'file', kind: 'string', value: 'F', required: true, help: 'the text' },
      { name: 'context', kind: 'int', min: 2, help: "tokens per window (default: the model's context)" },
      { name: 'stride', kind: 'int', min: 1, help: 'tokens between windows (default: the context)' },
      ...ON_MODEL,
      MAX_FILE_SIZE_FLAG,
    ],
    run: (o) => perplexityCmd(o),
  },
  {
    name: 'merge',
    summary: 'merge adapters into the base weights and write a Hugging Face folder (config.json, model.safetensors, tokenizer files) that kiln and transformers load',
    flags: [
      MODEL,
      { ...ADAPTER, required: true },
      ADAPTER_WEIGHTS,
      { name: 'out', kind: 'string', value: 'DIR', required: true, help: 'the folder to write (refused when it is not empty, unless --force)' },
      { name: 'force', kind: 'bool', help: 'write into a non-empty --out (replacing its model files)' },
      BACKEND,
      MAX_FILE_SIZE_FLAG,
    ],
    run: (o) => mergeCmd(o),
  },
  {
    name: 'adapter info',
    summary: "a PEFT adapter folder's adapters (subfolders too): method, rank, alpha, targets, trainable parameters, base model",
    args: [{ name: 'dir', help: 'the adapter folder (adapter_config.json, adapter_model.safetensors)' }],
    flags: [JSON_OUT],
    run: (o) => adapterInfoCmd(o),
  },
];

export function usage(): string {
  const lines = COMMANDS.map((c) => `  ${synopsis(c)}\n      ${c.summary}`);
  return `kiln — run and fine-tune transformer language models on your device

usage:
${lines.join('\n')}

--model takes a Hugging Face folder, a .gguf file (told by its magic bytes), a URL of either, or a
Hugging Face repo id ORG/NAME (resolved against $HF_ENDPOINT, default https://huggingface.co;
$HF_TOKEN for gated repos). --tokenizer takes tokenizer.json, its folder, or a .gguf file.
kiln <command> --help lists a command's flags.
`;
}

/** A thrown error as the one line kiln prints (without the 'kiln ...:' op prefix the message may carry). */
function errorLine(e: unknown): string {
  if (e instanceof KilnError) return e.message.replace(/^kiln(?: [a-z-]+){0,2}: /, '');
  const fs = fsErrorLine(e);
  if (fs) return fs;
  const err = e as Error;
  return `internal error: ${err?.message ?? String(e)}${err?.stack ? ' (KILN_DEBUG=1 prints the stack)' : ''}`;
}

/** Runs the command line; returns the exit code (0, 1: the command failed, 2: a usage error). Never throws. */
export async function main(argv: string[]): Promise<number> {
  let [name, ...args] = argv;
  // a two-word command (kiln adapter info DIR)
  if (name !== undefined && args.length && COMMANDS.some((c) => c.name === `${name} ${args[0]}`)) [name, ...args] = [`${name} ${args[0]}`, ...args.slice(1)];
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const cmd = COMMANDS.find((c) => c.name === args[0]) ?? COMMANDS.find((c) => c.name === `${args[0]} ${args[1]}`);
    (name === undefined ? console.error : console.log)(cmd ? commandHelp(cmd) : usage());
    return name === undefined ? 2 : 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  // a command group (kiln adapter) names its sub-command in the error
  if (!cmd && args.length && COMMANDS.some((c) => c.name.startsWith(`${name} `))) name = `${name} ${args[0]}`;
  if (!cmd) {
    const near = closest(name, COMMANDS.map((c) => c.name));
    console.error(`kiln: unknown command '${name}'${near ? `; did you mean '${near}'?` : ''} (kiln --help lists the commands)`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    console.log(commandHelp(cmd));
    return 0;
  }
  const op = `kiln ${cmd.name}`;
  let flags;
  try {
    flags = parseFlags(cmd, args, op);
    setMaxFileBytes(flags.maxFileSize, op);
  } catch (e) {
    console.error(`kiln: ${errorLine(e)}`);
    return 2;
  }
  try {
    return await cmd.run(flags, op);
  } catch (e) {
    console.error(`kiln: ${errorLine(e)}`);
    if (!(e instanceof KilnError) && !fsErrorLine(e) && envVar('KILN_DEBUG')) console.error((e as Error)?.stack);
    return 1;
  }
}
