// Every generation and sampling option checked in one place, once per entry point: a table of
// option name -> check. Domains follow transformers' GenerationConfig and OpenAI's API; a value
// outside them is a KilnError naming the option, never coerced (a numeric string is not a number,
// a fractional seed is not rounded, an out-of-vocab bias is not ignored).
import { KilnError } from '../core/errors.js';

/** What an option's check needs to know about the model. */
interface Ctx {
  vocabSize: number;
}

/** A check returns what is wrong with a present value, ending with the value at fault (undefined when it is fine). */
type Check = (v: unknown, c: Ctx) => string | undefined;

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const num = (ok: (v: number) => boolean, what: string): Check => (v) => (isNum(v) && ok(v) ? undefined : `must be ${what}, got ${show(v)}`);
// integers are safe integers: past 2^53 a number no longer names one integer (topK 2^64 passed)
const int = (ok: (v: number) => boolean, what: string): Check => (v) => (Number.isSafeInteger(v) && ok(v as number) ? undefined : `must be ${what}, got ${show(v)}`);
const bool: Check = (v) => (typeof v === 'boolean' ? undefined : `must be a boolean, got ${show(v)}`);
const tokenId = (v: unknown, c: Ctx): boolean => isNum(v) && Number.isInteger(v) && v >= 0 && v < c.vocabSize;

/** The options' domains. */
const CHECKS: Record<string, Check> = {
  temperature: num((v) => v >= 0, 'a finite number >= 0'),
  greedy: bool,
  topK: int((v) => v >= 0, 'an integer >= 0 (0 = off)'),
  topP: num((v) => v > 0 && v <= 1, 'a number in (0, 1]'),
  minP: num((v) => v >= 0 && v <= 1, 'a number in [0, 1]'),
  repetitionPenalty: num((v) => v > 0, 'a finite number > 0'),
  frequencyPenalty: num(() => true, 'a finite number'),
  presencePenalty: num(() => true, 'a finite number'),
  // the generator takes 64 bits, but a JS number is exact only to 2^53: larger seeds would alias
  seed: int((v) => v >= 0 && Number.isSafeInteger(v), 'a non-negative safe integer (< 2^53)'),
  maxTokens: int((v) => v >= 1, 'a positive integer'),
  truncatePrompt: bool,
  logitBias: (v, c) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return `must be an object mapping token ids to numbers, got ${show(v)}`;
    for (const [k, b] of Object.entries(v)) {
      if (!/^(0|[1-9]\d*)$/.test(k) || !tokenId(+k, c)) return `key '${k}' is not a token id in [0, ${c.vocabSize})`;
      if (!isNum(b)) return `value for ${k} must be a finite number, got ${show(b)}`;
    }
    return undefined;
  },
  stop: (v) => {
    const list = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(list)) return `must be a string or an array of strings, got ${show(v)}`;
    const i = list.findIndex((s) => typeof s !== 'string' || !s.length);
    return i < 0 ? undefined : `entry ${i} must be a non-empty string, got ${show(list[i])}`;
  },
  stopTokenIds: (v, c) => {
    if (!Array.isArray(v)) return `must be an array of token ids, got ${show(v)}`;
    const i = v.findIndex((t) => !tokenId(t, c));
    return i < 0 ? undefined : `entry ${i} must be a token id in [0, ${c.vocabSize}), got ${show(v[i])}`;
  },
  signal: (v) => (typeof v === 'object' && v !== null && typeof (v as AbortSignal).aborted === 'boolean' ? undefined : `must be an AbortSignal, got ${show(v)}`),
};

function show(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'object' && v !== null) {
    try {
      return JSON.stringify(v);
    } catch {
      return Object.prototype.toString.call(v);
    }
  }
  return String(v);
}

/**
 * Checks generation options (GenerateOptions and SamplingOptions) for a model with `vocabSize`
 * tokens: every option's domain, and no unknown option. `names` maps an option to the name the
 * caller used (chatCompletion's `top_p` for topP), so the error names what the caller wrote.
 */
export function validateOptions(op: string, opts: unknown, vocabSize: number, names: Readonly<Record<string, string>> = {}): void {
  if (opts === undefined) return;
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) throw new KilnError('argument', op, `options must be an object, got ${show(opts)}`);
  const c = { vocabSize };
  for (const [k, v] of Object.entries(opts)) {
    if (v === undefined) continue;
    const check = CHECKS[k];
    const name = names[k] ?? k;
    if (!check) throw new KilnError('argument', op, `${name}: unknown option (known: ${Object.keys(CHECKS).join(', ')})`);
    const wrong = check(v, c);
    if (wrong) throw new KilnError('argument', op, `${name}: ${wrong}`);
  }
}

/** The model's vocabulary size, or a KilnError when `model` is not a loaded decoder. */
export function vocabOf(op: string, model: unknown): number {
  const V = (model as { config?: { vocabSize?: unknown } } | null)?.config?.vocabSize;
  if (typeof V !== 'number') {
    const got = model === null ? 'null' : typeof model === 'object' ? `an object (${(model as object).constructor?.name ?? 'no class'})` : typeof model;
    throw new KilnError('argument', op, `model must be a DecoderLM (loadModel(...).model), got ${got}`);
  }
  return V;
}

/** Throws the signal's reason (an AbortError DOMException by default), as fetch rejects. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}
