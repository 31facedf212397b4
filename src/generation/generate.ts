// Text generation over one decoding session (session.ts): token by token for one prompt, as text
// (never half a character, stop strings held back), or a left-padded batch. Every entry point
// validates its options once (options.ts) and frees the session in a finally, so a consumer's
// break, an error or an abort leaves no device buffer behind.
import { KilnError } from '../core/errors.js';
import type { DecoderLM } from '../models/transformer.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import type { SamplingOptions } from './sampling.js';
import { throwIfAborted, validateOptions, vocabOf } from './options.js';
import { checkPrompt, DecodingSession, type FinishReason } from './session.js';

export type { FinishReason } from './session.js';

export interface GenerateOptions extends SamplingOptions {
  /** most new tokens (default 128) */
  maxTokens?: number;
  /** ids that end generation (default: the model's EOS ids from generation_config / tokenizer_config) */
  stopTokenIds?: number[];
  /** strings that end generation (generateText); the text stops before them */
  stop?: string | string[];
  /** cut the prompt's start when prompt + output would pass the context window (else an error) */
  truncatePrompt?: boolean;
  /** ends generation at the next step with the signal's reason (an AbortError), as fetch does */
  signal?: AbortSignal;
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

/**
 * Token by token generation for one prompt. Yields each new token; the generator's return value
 * is the finish reason.
 */
export async function* generateTokens(model: DecoderLM, prompt: readonly number[], opts: GenerateOptions = {}): AsyncGenerator<TokenStep, FinishReason> {
  validateOptions('generateTokens', opts, vocabOf('generateTokens', model));
  return yield* tokens('generateTokens', model, prompt, opts);
}

/** generateTokens after validation (generateText validates once and calls this). */
async function* tokens(op: string, model: DecoderLM, prompt: readonly number[], opts: GenerateOptions): AsyncGenerator<TokenStep, FinishReason> {
  throwIfAborted(opts.signal);
  const ids = checkPrompt(op, model, prompt, opts.maxTokens ?? 128, opts.truncatePrompt);
  const session = new DecodingSession(model, opts);
  try {
    session.prefill([ids]);
    while (!session.done) {
      const r = await session.step();
      yield { token: r.tokens[0]!, logprob: r.logprobs[0]! };
    }
    return session.finish[0]!;
  } finally {
    session.dispose();
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
  const op = 'generateText';
  const V = vocabOf(op, model);
  if (!tokenizer || typeof tokenizer.decodeStream !== 'function') throw new KilnError('argument', op, 'a tokenizer is needed to decode text (the model folder has no tokenizer.json?); generateTokens decodes none');
  validateOptions(op, opts, V);
  return yield* textChunks(op, model, tokenizer, prompt, opts);
}

/** generateText after validation (chatCompletion validates its request once and calls this). */
export async function* textChunks(op: string, model: DecoderLM, tokenizer: Tokenizer, prompt: string | readonly number[], opts: GenerateOptions): AsyncGenerator<TextChunk, FinishReason> {
  if (typeof prompt !== 'string' && !Array.isArray(prompt)) throw new KilnError('argument', op, `the prompt must be a string or an array of token ids, got ${typeof prompt}`);
  const ids = typeof prompt === 'string' ? tokenizer.encodeIds(prompt) : prompt;
  const stream = tokenizer.decodeStream({ skipSpecialTokens: true });
  const stops = typeof opts.stop === 'string' ? [opts.stop] : opts.stop ?? [];
  let pending = ''; // decoded text not yet emitted (could begin a stop string)
  const it = tokens(op, model, ids, opts);
  try {
    for (;;) {
      const r = await it.next();
      if (r.done) {
        if (pending) yield { token: -1, logprob: 0, text: pending };
        return r.value;
      }
      pending += stream.step(r.value.token) ?? '';
      const hit = stops.map((s) => pending.indexOf(s)).filter((i) => i >= 0);
      if (hit.length) {
        yield { ...r.value, text: pending.slice(0, Math.min(...hit)) };
        return 'stop';
      }
      // hold back the longest tail that is a prefix of a stop string
      let hold = 0;
      for (const s of stops) for (let k = Math.min(s.length - 1, pending.length); k > hold; k--) if (pending.endsWith(s.slice(0, k))) { hold = k; break; }
      yield { ...r.value, text: pending.slice(0, pending.length - hold) };
      pending = pending.slice(pending.length - hold);
    }
  } finally {
    await it.return('stop'); // a break, an error or a stop string: the session is freed
  }
}

/**
 * Several prompts at once, left-padded into one batch (attention mask and per-row positions as
 * transformers' generate makes them); each row stops on its own. Returns each row's new tokens.
 */
export async function generateBatch(model: DecoderLM, prompts: readonly (readonly number[])[], opts: GenerateOptions = {}): Promise<{ tokens: number[]; finish: FinishReason }[]> {
  const op = 'generateBatch';
  validateOptions(op, opts, vocabOf(op, model));
  if (!Array.isArray(prompts)) throw new KilnError('argument', op, `prompts must be an array of token id arrays, got ${typeof prompts}`);
  throwIfAborted(opts.signal);
  if (!prompts.length) return [];
  const rows = prompts.map((p, i) => checkPrompt(op, model, p, opts.maxTokens ?? 128, opts.truncatePrompt, `prompts[${i}]`));
  const out = rows.map(() => [] as number[]);
  const session = new DecodingSession(model, opts);
  try {
    session.prefill(rows);
    while (!session.done) {
      const r = await session.step();
      r.tokens.forEach((t, b) => t !== null && out[b].push(t));
    }
    return out.map((tokens, b) => ({ tokens, finish: session.finish[b]! }));
  } finally {
    session.dispose();
  }
}
