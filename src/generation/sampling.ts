// Choosing the next token from one row of logits, in transformers' order: repetition penalty,
// then the OpenAI-style frequency and presence penalties and logit bias, then temperature,
// top-k, top-p and min-p, then a draw from a seeded generator (or the argmax when greedy).
import type { Backend } from '../backend/backend.js';
import { KilnError, fmtShape } from '../core/errors.js';
import { fromValues } from '../core/ops/creation.js';
import { Tensor } from '../core/tensor.js';
import { sampleCall, type SampleParams } from '../kernels/sample.js';

export interface SamplingOptions {
  /** 0 (or greedy: true) picks the argmax; default 1 */
  temperature?: number;
  greedy?: boolean;
  topK?: number;
  topP?: number;
  minP?: number;
  /** transformers' repetition_penalty over prompt and output: > 1 discourages repeats */
  repetitionPenalty?: number;
  /** OpenAI: logit -= frequencyPenalty * count, over the generated tokens */
  frequencyPenalty?: number;
  /** OpenAI: logit -= presencePenalty once a token has been generated */
  presencePenalty?: number;
  /** token id -> added to its logit (-100 bans it) */
  logitBias?: Record<number, number>;
  /** a non-negative safe integer; row b of a batch draws from seed + b (default 0) */
  seed?: number;
}

const U64 = 0xffffffffffffffffn;

/**
 * PCG32 (O'Neill): the same seed draws the same numbers everywhere. The seed is an integer in
 * [0, 2^64) (a number must be exact, so below 2^53): distinct seeds give distinct streams.
 */
export class Rng {
  private state = 0n;
  private readonly inc: bigint;
  constructor(seed: number | bigint = 0) {
    const ok = typeof seed === 'bigint' ? seed >= 0n && seed <= U64 : Number.isSafeInteger(seed) && seed >= 0;
    if (!ok) throw new KilnError('argument', 'Rng', `seed must be an integer in [0, 2^64) (a number below 2^53), got ${seed}`);
    const s = BigInt(seed);
    this.inc = ((s << 1n) | 1n) & U64;
    this.next();
    this.state = (this.state + s * 0x9e3779b97f4a7c15n) & U64;
    this.next();
  }
  next(): number {
    const old = this.state;
    this.state = (old * 6364136223846793005n + this.inc) & U64;
    const xorshifted = Number(((old >> 18n) ^ old) >> 27n & 0xffffffffn) >>> 0;
    const rot = Number(old >> 59n);
    return ((xorshifted >>> rot) | (xorshifted << ((32 - rot) & 31))) >>> 0;
  }
  /** Uniform in [0, 1). */
  uniform(): number {
    return this.next() / 4294967296;
  }
}

/** log_softmax of a row (natural log). */
export function logSoftmax(row: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i]);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i] - m);
  const l = Math.log(s) + m;
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i] - l;
  return out;
}

/** The processed scores (the logits after every penalty and warper; -Infinity = excluded). */
export function processLogits(logits: ArrayLike<number>, o: SamplingOptions, context: readonly number[], generated: readonly number[]): Float64Array {
  const s = Float64Array.from(logits as ArrayLike<number>);
  const V = s.length;
  if (o.repetitionPenalty && o.repetitionPenalty !== 1) {
    const seen = new Set(context);
    for (const t of seen) if (t >= 0 && t < V) s[t] = s[t] < 0 ? s[t] * o.repetitionPenalty : s[t] / o.repetitionPenalty;
  }
  if (o.frequencyPenalty || o.presencePenalty) {
    const counts = new Map<number, number>();
    for (const t of generated) counts.set(t, (counts.get(t) ?? 0) + 1);
    for (const [t, c] of counts) if (t >= 0 && t < V) s[t] -= (o.frequencyPenalty ?? 0) * c + (o.presencePenalty ?? 0);
  }
  if (o.logitBias) for (const [t, b] of Object.entries(o.logitBias)) if (+t >= 0 && +t < V) s[+t] += b;
  const temp = o.temperature ?? 1;
  if (o.greedy || temp === 0) return s;
  if (temp !== 1) for (let i = 0; i < V; i++) s[i] /= temp;
  if (o.topK && o.topK < V) {
    const kth = [...s].sort((a, b) => b - a)[o.topK - 1];
    for (let i = 0; i < V; i++) if (s[i] < kth) s[i] = -Infinity;
  }
  if ((o.topP !== undefined && o.topP < 1) || o.minP) {
    const lp = logSoftmax(s);
    if (o.topP !== undefined && o.topP < 1) {
      // keep the most likely tokens until their mass reaches topP (always at least one), and the
      // tokens tied with the last one kept (transformers leaves the order of ties to its sort)
      const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => lp[b] - lp[a]);
      let mass = 0;
      let k = 0;
      for (; k < V - 1; k++) {
        mass += Math.exp(lp[order[k]]);
        if (mass >= o.topP) break;
      }
      const last = lp[order[k]];
      for (let i = 0; i < V; i++) if (lp[i] < last) s[i] = -Infinity;
    }
    if (o.minP) {
      let best = -Infinity;
      for (let i = 0; i < V; i++) best = Math.max(best, lp[i]);
      const floor = best + Math.log(o.minP);
      for (let i = 0; i < V; i++) if (lp[i] < floor) s[i] = -Infinity;
    }
  }
  return s;
}

/** The next token: argmax when greedy, else a draw from softmax(scores). */
export function pickToken(scores: Float64Array, o: SamplingOptions, rng: Rng): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i;
  if (o.greedy || (o.temperature ?? 1) === 0) return best;
  const p = logSoftmax(scores);
  let u = rng.uniform();
  for (let i = 0; i < p.length; i++) {
    if (p[i] === -Infinity) continue;
    u -= Math.exp(p[i]);
    if (u < 0) return i;
  }
  return best; // rounding left a sliver: the most likely token
}

/**
 * Sampling on the device: the processors and the draw run in one kernel (kernels/sample.ts) after
 * the forward pass, and only (token, log-probability) per row comes back. The host keeps the
 * seeded generator and passes each row's uniform draw, so the same seed gives the same tokens on
 * each backend. The history of each row (prompt tokens, output counts) lives on the device.
 */
export class DeviceSampler {
  private readonly bias: Tensor;
  private readonly scores: Tensor;
  private readonly hist: Tensor;
  private readonly rngs: Rng[];
  private readonly params: SampleParams;
  constructor(readonly backend: Backend, prompts: readonly (readonly number[])[], readonly V: number, readonly opts: SamplingOptions, seeds?: number[]) {
    const rows = prompts.length;
    const b = new Float32Array(V);
    for (const [t, v] of Object.entries(opts.logitBias ?? {})) if (+t >= 0 && +t < V) b[+t] += v;
    const h = new Int32Array(rows * V);
    prompts.forEach((p, r) => { for (const t of p) if (t >= 0 && t < V) h[r * V + t] = 1; });
    this.bias = fromValues(b, [V], { backend });
    this.hist = fromValues(h, [rows, V], { backend, dtype: 'i32' });
    this.scores = Tensor.empty(backend, [rows, V], 'f32');
    this.rngs = prompts.map((_, r) => new Rng(seeds?.[r] ?? BigInt(opts.seed ?? 0) + BigInt(r)));
    const temperature = opts.temperature ?? 1;
    this.params = {
      greedy: !!opts.greedy || temperature === 0,
      temperature,
      topK: opts.topK ?? 0,
      topP: opts.topP ?? 1,
      minP: opts.minP ?? 0,
      repetitionPenalty: opts.repetitionPenalty ?? 1,
      frequencyPenalty: opts.frequencyPenalty ?? 0,
      presencePenalty: opts.presencePenalty ?? 0,
    };
  }

  /** (rows, 2): each row's token and its log-probability, from logits (rows, 1, V) or (rows, V). */
  sample(logits: Tensor): Tensor {
    const rows = this.rngs.length;
    if (logits.size !== rows * this.V || !logits.isContiguous()) throw new KilnError('shape', 'sample', `logits ${fmtShape(logits.shape)} are not ${rows} contiguous rows of ${this.V}`);
    const draws = fromValues(Float32Array.from(this.rngs, (g) => (this.params.greedy ? 0 : g.uniform())), [rows], { backend: this.backend });
    const out = Tensor.empty(this.backend, [rows, 2], 'f32');
    this.backend.run(sampleCall(logits, this.bias, draws, this.scores, this.hist, out, rows, this.V, this.params));
    draws.dispose();
    return out;
  }

  dispose(): void {
    this.bias.dispose();
    this.scores.dispose();
    this.hist.dispose();
  }
}
