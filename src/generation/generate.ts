// Text generation: prefill the prompt, then one token at a time through the KV cache, each step
// sampling on the device and reading back only the token; stop tokens, stop strings, max tokens;
// text as it is decoded (never half a character), with the token's log-probability.
import { KilnError } from '../core/errors.js';
import { noGrad } from '../core/autograd.js';
import { slice } from '../core/ops/shape.js';
import { cast } from '../core/ops/pointwise.js';
import { tensor } from '../core/ops/creation.js';
import { tidy, type Tensor } from '../core/tensor.js';
import type { KVCache } from '../nn/attention.js';
import type { DecoderLM } from '../models/transformer.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { checkSampling, DeviceSampler, type SamplingOptions } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  /** most new tokens (default 128) */
  maxTokens?: number;
  /** ids that end generation (default: the model's EOS ids from generation_config / tokenizer_config) */
  stopTokenIds?: number[];
  /** strings that end generation; the text stops before them */
  stop?: string[];
  /** cut the prompt's start when prompt + output would pass the context window (else an error) */
  truncatePrompt?: boolean;
}

export interface TokenStep {
  token: number;
  /** log-probability of the token under the model (before sampling's warpers) */
  logprob: number;
}

export interface TextChunk extends TokenStep {
  /** the text this token completes (may be empty while a character is unfinished) */
  text: string;
}

export type FinishReason = 'stop' | 'length';

function lastRow(logits: Tensor): Tensor {
  const [, T] = logits.shape;
  return slice(logits, 1, T - 1, T); // (1, 1, V)
}

/**
 * Token by token generation for one prompt. Yields each new token; the generator's return value
 * is the finish reason.
 */
export async function* generateTokens(model: DecoderLM, prompt: readonly number[], opts: GenerateOptions = {}): AsyncGenerator<TokenStep, FinishReason> {
  checkSampling(opts);
  const maxTokens = opts.maxTokens ?? 128;
  if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new KilnError('argument', 'generate', `maxTokens must be a non-negative integer, got ${maxTokens}`);
  if (!prompt.length) throw new KilnError('argument', 'generate', 'the prompt has no tokens');
  const ctx = model.config.maxPositionEmbeddings;
  let ids = [...prompt];
  if (ids.length >= ctx) {
    if (!opts.truncatePrompt) throw new KilnError('argument', 'generate', `the prompt has ${ids.length} tokens; the context window holds ${ctx} (set truncatePrompt to keep its end)`);
    ids = ids.slice(ids.length - ctx + Math.min(maxTokens, ctx - 1));
  }
  const V = model.config.vocabSize;
  for (const t of ids) if (!(Number.isInteger(t) && t >= 0 && t < V)) throw new KilnError('index', 'generate', `prompt token ${t} is outside the vocab (size ${V})`);
  const stopIds = new Set(opts.stopTokenIds ?? []);
  const generated: number[] = [];
  const backend = model.backend;

  // one cache for the whole generation, written in place: no per-token cache allocation
  let cache: KVCache[] = model.allocateCache(1, Math.min(ctx, ids.length + maxTokens));
  // the processors and the draw run on the device: one token and its log-probability come back
  const sampler = new DeviceSampler(backend, [ids], V, opts);
  /** One forward step (the prompt from the host, then each token from the device): its (1, 2) pick. */
  const step = (input: number[] | Tensor): Tensor => {
    const pick = noGrad(() =>
      tidy(() => {
        const inputIds = Array.isArray(input) ? tensor(input, { shape: [1, input.length], dtype: 'i32', backend }) : input;
        const out = model.call({ inputIds, past: cache, logitsToKeep: 1 }) as { logits: Tensor; cache: KVCache[] };
        cache = out.cache;
        return { pick: sampler.sample(lastRow(out.logits)) }; // (1, 2): token, log-probability
      }),
    ).pick;
    if (!Array.isArray(input)) input.dispose();
    return pick;
  };
  /** The step after `p`, fed the token p holds on the device: (1, 1) i32. */
  const stepFrom = (p: Tensor): Tensor => step(noGrad(() => tidy(() => ({ t: cast(slice(p, 1, 0, 1), 'i32') })).t));

  // Decoding runs one step ahead: step n + 1 is recorded from the token still on the device and
  // submitted, with the copy that brings its token back, as one command buffer while step n's
  // token travels back, so the GPU never waits for the host's round trip. A stop token found
  // late costs one step whose result is dropped.
  let picked = step(ids);
  let pending = picked.toArray(); // submits the prefill and starts its readback
  let ahead: Tensor | null = null;
  let aheadPending: Promise<Float32Array | Int32Array | Uint32Array> | null = null;
  try {
    for (let n = 0; n < maxTokens; n++) {
      const more = n + 1 < maxTokens && ids.length + n + 1 < ctx;
      if (more) {
        ahead = stepFrom(picked);
        aheadPending = ahead.toArray();
        aheadPending.catch(() => {}); // awaited next round, or dropped after a stop
      }
      const [token, logprob] = await pending;
      generated.push(token);
      yield { token, logprob };
      if (stopIds.has(token)) return 'stop';
      if (!more) return 'length';
      picked.dispose();
      picked = ahead!;
      pending = aheadPending!;
      ahead = null;
    }
    return 'length';
  } finally {
    picked.dispose();
    ahead?.dispose();
    sampler.dispose();
    for (const l of cache) {
      l.key.dispose();
      l.value.dispose();
    }
  }
}

/** The EOS ids a model stops on: generation_config.json's eos_token_id, else the tokenizer's eos_token. */
export function defaultStopIds(tokenizer: Tokenizer | null, generationConfig: Record<string, unknown> | null): number[] {
  const g = generationConfig?.eos_token_id;
  if (typeof g === 'number') return [g];
  if (Array.isArray(g)) return g.filter((x): x is number => typeof x === 'number');
  const eos = tokenizer?.config?.eos_token;
  const name = typeof eos === 'string' ? eos : eos?.content;
  const id = name !== undefined ? tokenizer?.tokenToId(name) : undefined;
  return id !== undefined ? [id] : [];
}

/**
 * Generation as text: yields chunks (token, logprob and the text it completes). Stop strings
 * end it early: text is held back while it could be the start of one, and never includes it.
 */
export async function* generateText(model: DecoderLM, tokenizer: Tokenizer, prompt: string | readonly number[], opts: GenerateOptions = {}): AsyncGenerator<TextChunk, FinishReason> {
  const ids = typeof prompt === 'string' ? tokenizer.encodeIds(prompt) : [...prompt];
  const stream = tokenizer.decodeStream({ skipSpecialTokens: true });
  const stops = (opts.stop ?? []).filter((s) => s.length > 0);
  let pending = ''; // decoded text not yet emitted (could begin a stop string)
  const it = generateTokens(model, ids, opts);
  for (;;) {
    const r = await it.next();
    if (r.done) {
      if (pending) yield { token: -1, logprob: 0, text: pending };
      return r.value;
    }
    pending += stream.step(r.value.token) ?? '';
    const hit = stops.map((s) => pending.indexOf(s)).filter((i) => i >= 0);
    if (hit.length) {
      const cut = Math.min(...hit);
      yield { ...r.value, text: pending.slice(0, cut) };
      await it.return('stop');
      return 'stop';
    }
    // hold back the longest tail that is a prefix of a stop string
    let hold = 0;
    for (const s of stops) for (let k = Math.min(s.length - 1, pending.length); k > hold; k--) if (pending.endsWith(s.slice(0, k))) { hold = k; break; }
    yield { ...r.value, text: pending.slice(0, pending.length - hold) };
    pending = pending.slice(pending.length - hold);
  }
}

/**
 * Several prompts at once, left-padded into one batch (attention mask and per-row positions as
 * transformers' generate makes them); each row stops on its own. Returns each row's new tokens.
 */
export async function generateBatch(model: DecoderLM, prompts: readonly (readonly number[])[], opts: GenerateOptions = {}): Promise<{ tokens: number[]; finish: FinishReason }[]> {
  checkSampling(opts);
  if (!prompts.length) return [];
  const maxTokens = opts.maxTokens ?? 128;
  const ctx = model.config.maxPositionEmbeddings;
  const B = prompts.length;
  const T = Math.max(...prompts.map((p) => p.length));
  if (prompts.some((p) => !p.length)) throw new KilnError('argument', 'generateBatch', 'a prompt has no tokens');
  if (T >= ctx) throw new KilnError('argument', 'generateBatch', `the longest prompt has ${T} tokens; the context window holds ${ctx}`);
  const V = model.config.vocabSize;
  const backend = model.backend;
  const stopIds = new Set(opts.stopTokenIds ?? []);
  const sampler = new DeviceSampler(backend, prompts, V, opts); // row b draws from seed + b
  const out = prompts.map(() => ({ tokens: [] as number[], finish: 'length' as FinishReason, done: false }));
  const mask: number[][] = prompts.map((p) => [...new Array(T - p.length).fill(0), ...new Array(p.length).fill(1)]);
  const next = prompts.map((p) => p.length); // each row's next position
  let cache: KVCache[] = model.allocateCache(B, Math.min(ctx, T + maxTokens));
  const step = (input: number[][], positions: number[][]): Tensor =>
    noGrad(() =>
      tidy(() => {
        const L = input[0].length;
        const o = model.call({
          inputIds: tensor(input.flat(), { shape: [B, L], dtype: 'i32', backend }),
          positionIds: tensor(positions.flat(), { shape: [B, L], dtype: 'i32', backend }),
          attentionMask: tensor(mask.flat(), { shape: [B, mask[0].length], dtype: 'i32', backend }),
          past: cache,
          logitsToKeep: 1,
        }) as { logits: Tensor; cache: KVCache[] };
        cache = o.cache;
        return { row: lastRow(o.logits) }; // (B, 1, V)
      }),
    ).row;
  let row = step(
    prompts.map((p) => [...new Array(T - p.length).fill(0), ...p]),
    prompts.map((p) => [...new Array(T - p.length).fill(0), ...p.map((_, i) => i)]),
  );
  try {
    for (let n = 0; n < maxTokens && out.some((o) => !o.done); n++) {
      const picked = sampler.sample(row);
      row.dispose();
      const tokens = await picked.toArray(); // (B, 2): token, log-probability
      picked.dispose();
      const chosen = prompts.map((_, b) => {
        if (out[b].done) return 0;
        const t = tokens[2 * b];
        out[b].tokens.push(t);
        if (stopIds.has(t)) Object.assign(out[b], { done: true, finish: 'stop' });
        else if (T + out[b].tokens.length >= ctx) out[b].done = true;
        return t;
      });
      if (n + 1 === maxTokens || out.every((o) => o.done)) break;
      mask.forEach((m) => m.push(1));
      row = step(chosen.map((t) => [t]), next.map((p, b) => [p + out[b].tokens.length - 1]));
    }
  } finally {
    sampler.dispose();
    for (const l of cache) {
      l.key.dispose();
      l.value.dispose();
    }
  }
  return out.map(({ tokens, finish }) => ({ tokens, finish }));
}
