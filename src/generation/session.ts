// One decoding session: the KV cache, the device sampler and the step buffers of one generation
// over B rows, and nothing else. generateTokens (B = 1) and generateBatch are thin loops over it;
// the worker engine and batched serving build on the same three calls:
//
//   const s = new DecodingSession(model, opts);   // opts already validated (validateOptions)
//   try {
//     s.prefill(prompts);                          // the prompts' forward and first draw, submitted
//     while (!s.done) { const r = await s.step(); ... r.tokens[b] ... }
//   } finally { s.dispose(); }                     // frees everything; idempotent
//
// Rows of different lengths are left-padded (transformers' layout for decoder-only generation):
// the attention mask is one (B, capacity) tensor uploaded at prefill, and each step attends
// through a view of its live columns, so nothing grows or is re-uploaded per token.
import { KilnError } from '../core/errors.js';
import { noGrad } from '../core/autograd.js';
import { slice } from '../core/ops/shape.js';
import { cast } from '../core/ops/pointwise.js';
import { fromValues, tensor } from '../core/ops/creation.js';
import { tidy, type Tensor } from '../core/tensor.js';
import type { KVCache } from '../nn/attention.js';
import type { DecoderLM } from '../models/transformer.js';
import { DeviceSampler, type SamplingOptions } from './sampling.js';
import { throwIfAborted } from './options.js';

export type FinishReason = 'stop' | 'length';

export interface SessionOptions extends SamplingOptions {
  /** most new tokens per row (default 128) */
  maxTokens?: number;
  /** ids that end a row */
  stopTokenIds?: number[];
  /** checked at prefill and at every step: an aborted signal throws its reason */
  signal?: AbortSignal;
}

/** One step: per row, the new token and its log-probability (null for a row that finished earlier). */
export interface SessionStep {
  tokens: (number | null)[];
  logprobs: (number | null)[];
}

type Readback = Promise<Float32Array | Int32Array | Uint32Array>;

/**
 * The prompts' token ids made ready to decode: each an array of ids in the vocab, not empty;
 * a prompt that leaves no room for a token in the context window is an error, or, with
 * `truncate`, loses its start (keeping room for up to maxTokens new tokens).
 */
export function checkPrompt(op: string, model: DecoderLM, prompt: unknown, maxTokens: number, truncate = false, name = 'the prompt'): number[] {
  const { vocabSize: V, maxPositionEmbeddings: ctx } = model.config;
  if (!Array.isArray(prompt)) throw new KilnError('argument', op, `${name} must be an array of token ids, got ${typeof prompt}`);
  if (!prompt.length) throw new KilnError('argument', op, `${name} has no tokens`);
  const bad = prompt.findIndex((t) => !(Number.isInteger(t) && t >= 0 && t < V));
  if (bad >= 0) throw new KilnError('index', op, `${name}: token ${bad} (${prompt[bad]}) is outside the vocab (size ${V})`);
  if (prompt.length < ctx) return [...prompt];
  if (!truncate) throw new KilnError('argument', op, `${name} has ${prompt.length} tokens; the context window holds ${ctx} (set truncatePrompt to keep its end)`);
  return prompt.slice(prompt.length - ctx + Math.min(maxTokens, ctx - 1));
}

/**
 * Prefill, then one step at a time, one step ahead: step n + 1 is recorded from the token still
 * on the device and submitted, with the copy that brings its token back, before step n's token
 * is awaited, so the GPU never waits for the host's round trip. A stop found late costs one step
 * whose result is dropped. Options are taken as given: the entry points validate them.
 */
export class DecodingSession {
  /** each row's finish reason; null while the row runs */
  finish: (FinishReason | null)[] = [];
  /** steps taken (tokens drawn per row) */
  steps = 0;
  private readonly maxTokens: number;
  private readonly stopIds: Set<number>;
  private cache: KVCache[] | null = null;
  private sampler: DeviceSampler | null = null;
  /** (B, capacity) i32: 0 on the left padding, 1 elsewhere; null without padding */
  private mask: Tensor | null = null;
  /** per row: its next position id minus the step count (its prompt's length) */
  private lengths: number[] = [];
  private width = 0; // the padded prompt length
  private picked: Tensor | null = null; // (B, 2) of the step being read back: token, log-probability
  private pending: Readback | null = null;
  private disposed = false;

  constructor(readonly model: DecoderLM, readonly opts: SessionOptions = {}) {
    this.maxTokens = opts.maxTokens ?? 128;
    this.stopIds = new Set(opts.stopTokenIds ?? []);
  }

  /** Rows in the batch. */
  get rows(): number {
    return this.finish.length;
  }

  /** Every row has finished (or the session was disposed). */
  get done(): boolean {
    return this.disposed || (this.finish.length > 0 && this.finish.every((f) => f !== null));
  }

  /**
   * Runs the prompts' forward (left-padded to the longest) and submits the first draw. Prompts
   * are token ids in the vocab, shorter than the context window (checkPrompt; the entry points
   * truncate them first where asked).
   */
  prefill(prompts: readonly (readonly number[])[]): void {
    const op = 'DecodingSession';
    if (this.cache || this.disposed) throw new KilnError('argument', op, 'prefill() runs once per session');
    throwIfAborted(this.opts.signal);
    if (!Array.isArray(prompts as unknown) || !prompts.length) throw new KilnError('argument', op, 'prefill() needs a non-empty array of prompts');
    prompts.forEach((p, i) => checkPrompt(op, this.model, p, this.maxTokens, false, `prompts[${i}]`));
    const model = this.model;
    const backend = model.backend;
    const B = prompts.length;
    const T = (this.width = Math.max(...prompts.map((p) => p.length)));
    const capacity = Math.min(model.config.maxPositionEmbeddings, T + this.maxTokens);
    this.lengths = prompts.map((p) => p.length);
    this.finish = prompts.map(() => null);
    this.cache = model.allocateCache(B, capacity);
    // the processors and the draw run on the device: each row's token and log-probability come back
    this.sampler = new DeviceSampler(backend, prompts, model.config.vocabSize, this.opts); // row b draws from seed + b
    const padded = prompts.some((p) => p.length < T);
    if (padded) {
      const m = new Int32Array(B * capacity).fill(1);
      prompts.forEach((p, b) => m.fill(0, b * capacity, b * capacity + T - p.length));
      this.mask = fromValues(m, [B, capacity], { backend, dtype: 'i32' });
    }
    this.picked = this.forward(
      () => tensor(prompts.flatMap((p) => [...new Array(T - p.length).fill(0), ...p]), { shape: [B, T], dtype: 'i32', backend }),
      padded ? () => tensor(prompts.flatMap((p) => [...new Array(T - p.length).fill(0), ...p.map((_, i) => i)]), { shape: [B, T], dtype: 'i32', backend }) : null,
    );
    this.pending = this.readback(this.picked); // submits the prefill and starts its readback
  }

  /**
   * The next token of every row. Submits the step after it first (one step ahead) unless this is
   * the last one (max tokens or the context window reached). Rows that draw a stop id finish.
   */
  async step(): Promise<SessionStep> {
    if (this.disposed) throw new KilnError('argument', 'DecodingSession', 'the session was disposed');
    if (!this.pending) throw new KilnError('argument', 'DecodingSession', this.done ? 'every row has finished' : 'step() before prefill()');
    throwIfAborted(this.opts.signal);
    const ctx = this.model.config.maxPositionEmbeddings;
    const more = this.steps + 1 < this.maxTokens && this.width + this.steps + 1 < ctx;
    let ahead: Tensor | null = null;
    if (more) {
      const p = this.picked!;
      const pos = this.mask ? this.lengths.map((l) => l + this.steps) : null;
      ahead = this.forward(
        () => cast(slice(p, 1, 0, 1), 'i32'), // (B, 1): the tokens still on the device
        pos ? () => tensor(pos, { shape: [pos.length, 1], dtype: 'i32', backend: this.model.backend }) : null,
      );
    }
    const aheadPending = ahead ? this.readback(ahead) : null;
    let got: Float32Array | Int32Array | Uint32Array;
    try {
      got = await this.pending;
    } finally {
      // the awaited step is spent either way; the ahead step takes its place (dispose frees it)
      this.picked?.dispose();
      this.picked = this.disposed ? null : ahead;
      this.pending = this.disposed ? null : aheadPending;
      if (this.disposed) ahead?.dispose();
    }
    if (this.disposed) throw new KilnError('argument', 'DecodingSession', 'the session was disposed during a step');
    this.steps++;
    const tokens = this.finish.map((f, b) => (f ? null : got[2 * b]));
    const logprobs = this.finish.map((f, b) => (f ? null : got[2 * b + 1]));
    tokens.forEach((t, b) => {
      if (t === null) return;
      if (this.stopIds.has(t)) this.finish[b] = 'stop';
      else if (!more) this.finish[b] = 'length';
    });
    if (this.done) {
      // nothing more will be read: free the dropped step now
      this.picked?.dispose();
      this.picked = null;
      this.pending = null;
    }
    return { tokens, logprobs };
  }

  /** Frees the cache, the sampler, the mask and any step in flight. Safe to call more than once. */
  dispose(): void {
    this.disposed = true;
    this.picked?.dispose();
    this.picked = null;
    this.sampler?.dispose();
    this.sampler = null;
    this.mask?.dispose();
    this.mask = null;
    for (const l of this.cache ?? []) {
      l.key.dispose();
      l.value.dispose();
    }
    this.cache = null;
  }

  /** One forward and draw; inputs are made inside its scope (and freed with it): the (B, 2) pick. */
  private forward(inputIds: () => Tensor, positionIds: (() => Tensor) | null): Tensor {
    const model = this.model;
    return noGrad(() =>
      tidy(() => {
        const ids = inputIds();
        const past = this.cache!;
        const kvLength = (past[0]?.length ?? 0) + ids.shape[1];
        const out = model.call({
          inputIds: ids,
          positionIds: positionIds?.() ?? undefined,
          attentionMask: this.mask ? slice(this.mask, 1, 0, kvLength) : null, // (B, kvLength) view
          past,
          logitsToKeep: 1,
        }) as { logits: Tensor; cache: KVCache[] };
        this.cache = out.cache;
        return { pick: this.sampler!.sample(out.logits) }; // (B, 2): token, log-probability
      }),
    ).pick;
  }

  private readback(t: Tensor): Readback {
    const p = t.toArray();
    p.catch(() => {}); // awaited by the next step, or dropped after a stop, a break or an abort
    return p;
  }
}
