// `kiln generate | logits | perplexity`: a Hugging Face model folder from the shell.
import { KilnError } from '../core/errors.js';
import { init } from '../core/runtime.js';
import { noGrad } from '../core/autograd.js';
import { tensor } from '../core/ops/creation.js';
import { crossEntropy } from '../core/ops/loss.js';
import { reshape, slice, contiguous } from '../core/ops/shape.js';
import type { Tensor } from '../core/tensor.js';
import type { BackendName } from '../backend/backend.js';
import { defaultStopIds, generateText } from '../generation/generate.js';
import { loadModel, type LoadOptions } from '../models/load.js';
import { readInput, userMaxFileBytes } from './files.js';
import { adapterDirs, applyAdapters, type AdapterFlags } from './adapter.js';

/** --quantize q8_0|q4_0|none and --dtype f16|bf16, as loadModel takes them. */
export interface WeightFlags {
  quantize?: string;
  dtype?: string;
}

/** The model on --backend ('auto', the default, is the backend `kiln info` reports for auto), with the --adapter folders applied. */
async function open(dir: string, backend: string | undefined, w: WeightFlags & AdapterFlags, op: string) {
  adapterDirs(w, op); // the flags checked before the model loads
  const { backend: b } = await init((backend ?? 'auto') as BackendName | 'auto');
  const opts: LoadOptions = { backend: b, quantize: w.quantize as 'q8_0' | undefined, dtype: w.dtype as 'f16' | undefined };
  // --max-file-size / KILN_MAX_FILE_SIZE, when set, is the loader's maxFileBytes (assigned, not
  // written in the literal, so this compiles against loaders with and without the option)
  if (userMaxFileBytes() !== undefined) Object.assign(opts, { maxFileBytes: userMaxFileBytes() });
  const loaded = await loadModel(dir, opts);
  await applyAdapters(loaded, w, op); // in place: the model's Linears become LoraLinears
  return { ...loaded, backend: b };
}

export async function logitsCmd(o: { model: string; tokens: number[]; backend?: string; json: boolean } & AdapterFlags): Promise<number> {
  const op = 'kiln logits';
  const ids = o.tokens;
  const { model } = await open(o.model, o.backend, o, op);
  const V = model.config.vocabSize;
  const bad = ids.find((t) => t >= V);
  if (bad !== undefined) throw new KilnError('argument', op, `--tokens: ${bad} is outside the vocab (size ${V})`);
  const logits = noGrad(() => (model.call({ inputIds: tensor(ids, { shape: [1, ids.length], dtype: 'i32' }) }) as { logits: Tensor }).logits);
  const flat = await logits.toArray();
  const rows = ids.map((_, t) => Array.from(flat.slice(t * V, (t + 1) * V)));
  if (o.json) console.log(JSON.stringify({ logits: rows }));
  else rows.forEach((r, t) => console.log(`${t}: argmax ${r.indexOf(Math.max(...r))} (${Math.max(...r).toFixed(4)})`));
  return 0;
}

export async function generateCmd(o: { model: string; prompt: string; maxTokens: number; temperature?: number; topP?: number; topK?: number; seed?: number; backend?: string; chat: boolean } & WeightFlags & AdapterFlags): Promise<number> {
  const op = 'kiln generate';
  const { model, tokenizer, generationConfig, backend } = await open(o.model, o.backend, o, op);
  if (!tokenizer) throw new KilnError('config', op, `${o.model} has no tokenizer.json`);
  const prompt = o.chat ? tokenizer.encodeChat([{ role: 'user', content: o.prompt }], { addGenerationPrompt: true }) : o.prompt;
  const t0 = performance.now();
  let n = 0;
  let first = 0;
  const it = generateText(model, tokenizer, prompt, {
    maxTokens: o.maxTokens,
    temperature: o.temperature ?? 0,
    topP: o.topP,
    topK: o.topK,
    seed: o.seed,
    stopTokenIds: defaultStopIds(tokenizer, generationConfig),
  });
  for (;;) {
    const r = await it.next();
    if (r.done) {
      const s = (performance.now() - t0) / 1000;
      const decode = n > 1 ? (n - 1) / ((performance.now() - first) / 1000) : 0;
      process.stdout.write('\n');
      console.error(`[${n} tokens in ${s.toFixed(2)} s; decode ${decode.toFixed(1)} tokens/s; finish: ${r.value}; backend ${backend.name}]`);
      return 0;
    }
    if (r.value.token >= 0) n++;
    if (n === 1 && !first) first = performance.now();
    process.stdout.write(r.value.text);
  }
}

/** Perplexity with a sliding window (transformers' strided evaluation): each token scored once, with up to `context` tokens before it. */
export async function perplexityCmd(o: { model: string; file: string; context?: number; stride?: number; backend?: string } & AdapterFlags): Promise<number> {
  const op = 'kiln perplexity';
  const text = readInput(o.file, op);
  const { model, tokenizer } = await open(o.model, o.backend, o, op);
  if (!tokenizer) throw new KilnError('config', op, `${o.model} has no tokenizer.json`);
  const ids = tokenizer.encodeIds(text);
  const context = Math.min(o.context ?? model.config.maxPositionEmbeddings, model.config.maxPositionEmbeddings);
  const stride = o.stride ?? context;
  if (!(stride >= 1 && stride <= context)) throw new KilnError('argument', op, `--stride must be in 1..${context}`);
  let nll = 0;
  let count = 0;
  let prevEnd = 0;
  for (let begin = 0; begin < ids.length - 1; begin += stride) {
    const end = Math.min(begin + context, ids.length);
    const trg = end - prevEnd; // tokens scored in this window: the ones not scored before
    const window = ids.slice(begin, end);
    const labels = window.map((t, i) => (i < window.length - trg || i === 0 ? -100 : t));
    const sum = await noGrad(() => {
      const { logits } = model.call({ inputIds: tensor(window, { shape: [1, window.length], dtype: 'i32' }) }) as { logits: Tensor };
      const V = model.config.vocabSize;
      const pred = reshape(contiguous(slice(logits, 1, 0, window.length - 1)), [-1, V]);
      return crossEntropy(pred, tensor(labels.slice(1), { dtype: 'i32' }), { reduction: 'sum', ignoreIndex: -100 });
    }).item();
    nll += sum;
    count += labels.slice(1).filter((l) => l !== -100).length;
    prevEnd = end;
    if (end === ids.length) break;
  }
  console.log(JSON.stringify({ tokens: ids.length, scored: count, nll: nll / count, perplexity: Math.exp(nll / count), context, stride }));
  return 0;
}

/**
 * An interactive chat through the chat template: one line in, the streamed reply out. When the
 * conversation no longer fits the context (with room for a reply), the oldest turns go first;
 * the system message stays.
 */
export async function chatCmd(o: { model: string; system?: string; maxTokens: number; temperature?: number; seed?: number; backend?: string; context?: number } & WeightFlags & AdapterFlags): Promise<number> {
  const op = 'kiln chat';
  const { model, tokenizer, generationConfig } = await open(o.model, o.backend, o, op);
  if (!tokenizer) throw new KilnError('config', op, `${o.model} has no tokenizer.json`);
  const ctx = Math.min(o.context ?? Infinity, model.config.maxPositionEmbeddings);
  const room = Math.min(o.maxTokens, Math.floor(ctx / 2)); // what a reply needs left free
  const { createInterface } = await import('node:readline');
  const tty = process.stdin.isTTY === true;
  // in a terminal readline echoes what is typed (and edits it); piped input is not echoed
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: tty, prompt: '> ' });
  const messages: { role: string; content: string }[] = o.system ? [{ role: 'system', content: o.system }] : [];
  const first = messages.length; // the system message is never dropped
  if (tty) rl.prompt();
  for await (const line of rl) {
    if (line.trim()) {
      messages.push({ role: 'user', content: line });
      let ids = tokenizer.encodeChat(messages, { addGenerationPrompt: true });
      let dropped = 0;
      while (ids.length + room > ctx && messages.length - first > 1) {
        // one turn: the oldest user message and the reply to it
        messages.splice(first, messages[first + 1]?.role === 'assistant' ? 2 : 1);
        dropped++;
        ids = tokenizer.encodeChat(messages, { addGenerationPrompt: true });
      }
      if (dropped) console.error(`[dropped the oldest ${dropped} turn${dropped > 1 ? 's' : ''} to fit the ${ctx}-token context]`);
      if (ids.length >= ctx) {
        console.error(`kiln: that message takes ${ids.length} tokens with the template; the context holds ${ctx}: not sent`);
        messages.pop();
      } else {
        let reply = '';
        const it = generateText(model, tokenizer, ids, { maxTokens: Math.min(o.maxTokens, ctx - ids.length), temperature: o.temperature ?? 0.7, seed: o.seed, stopTokenIds: defaultStopIds(tokenizer, generationConfig) });
        for (;;) {
          const r = await it.next();
          if (r.done) break;
          reply += r.value.text;
          process.stdout.write(r.value.text);
        }
        process.stdout.write('\n');
        messages.push({ role: 'assistant', content: reply });
      }
    }
    if (tty) rl.prompt();
  }
  return 0;
}
