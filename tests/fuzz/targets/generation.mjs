// Generation options: random option objects for generateTokens / generateText / generateBatch
// and OpenAI requests for chatCompletion(Stream), each option drawn from its valid values or from
// the adversarial table, on the tiny GGUF model (vocab 301, context 64, with a chat template).
import { JS_VALUES, isNum } from '../values.mjs';

export const GEN_MODEL = 'tests/golden/checkpoints/gguf/tiny-llama.gguf';
const V = 301;
const isInt = (v) => Number.isSafeInteger(v);
const inRange = (lo, hi) => (v) => isNum(v) && v >= lo && v <= hi;
const ids = (v) => Array.isArray(v) && v.every((t) => isInt(t) && t >= 0 && t < V);
/** A token count: a positive integer; 0 (nothing to generate) may be refused or return nothing. */
const nTokens = (v) => (isInt(v) && v >= 0 ? v > 0 || 'any' : false);
const bias = (v) => v && typeof v === 'object' && !Array.isArray(v) && Object.entries(v).every(([k, x]) => /^\d+$/.test(k) && +k < V && isNum(x));

/**
 * Each option: [valid values to draw from, a predicate for what is valid]. Values the predicate
 * refuses must raise a KilnError; null and undefined read as "unset" where noted.
 */
const SAMPLING = {
  temperature: [[0, 0.7, 1, 2], (v) => isNum(v) && v >= 0],
  greedy: [[true, false], (v) => typeof v === 'boolean', 'lenient'],
  topK: [[0, 1, 5, 400], (v) => isInt(v) && v >= 0],
  topP: [[0.1, 0.9, 1], (v) => isNum(v) && v > 0 && v <= 1],
  minP: [[0, 0.05, 1], inRange(0, 1)],
  repetitionPenalty: [[1, 1.3, 0.8], (v) => isNum(v) && v > 0],
  frequencyPenalty: [[0, 0.5, -1, 2], isNum],
  presencePenalty: [[0, 0.5, -2], isNum],
  logitBias: [[{}, { 5: -100 }, { 7: 3.5, 8: -1 }], bias],
  seed: [[0, 42, 2 ** 32 - 1], (v) => (isInt(v) ? v >= 0 || 'any' : false)],
  maxTokens: [[0, 1, 3, 100], nTokens],
  stopTokenIds: [[[], [5], [300, 1]], ids],
  stop: [[[], ['a'], ['', 'the']], (v) => (Array.isArray(v) && v.every((s) => typeof s === 'string') ? !v.includes('') || 'any' : false)],
  truncatePrompt: [[true, false], (v) => typeof v === 'boolean', 'lenient'],
};
const CHAT = {
  max_tokens: [[1, 3], nTokens],
  max_completion_tokens: [[1, 2], nTokens],
  temperature: [[0, 1, 1.5], (v) => isNum(v) && v >= 0],
  top_p: [[0.5, 1], (v) => isNum(v) && v > 0 && v <= 1],
  top_k: [[0, 3], (v) => isInt(v) && v >= 0],
  min_p: [[0, 0.1], inRange(0, 1)],
  repetition_penalty: [[1, 1.2], (v) => isNum(v) && v > 0],
  frequency_penalty: [[0, 1], isNum],
  presence_penalty: [[0, -1], isNum],
  logit_bias: [[{}, { 5: -100 }], bias],
  stop: [['x', ['a', 'b'], []], (v) => (typeof v === 'string' || (Array.isArray(v) && v.every((s) => typeof s === 'string')) ? (v !== '' && !(Array.isArray(v) && v.includes(''))) || 'any' : false)],
  seed: [[1, 7], (v) => (isInt(v) ? v >= 0 || 'any' : false)],
  n: [[1], (v) => v === 1],
  logprobs: [[true, false], (v) => typeof v === 'boolean', 'lenient'],
  stream: [[false], () => true, 'lenient'],
  model: [['kiln'], () => true, 'lenient'],
};
const MESSAGES = [
  [[{ role: 'user', content: 'hi' }], true],
  [[{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello there' }], true],
  [[{ role: 'user', content: 'x'.repeat(500) }], 'any'], // past the 64-token window: an error, or a cut
  [[{ role: 'user', content: null }], false], [[{ role: 'user', content: 5 }], false], [[{ role: 'user', content: {} }], false],
  [[{ role: 5, content: 'hi' }], false], [[{ role: null, content: 'hi' }], false], [[null], false], [[5], false], [[], false], [null, false], ['hi', false],
  [[{ role: 'user' }], false], [[{ role: 'user', content: [{ type: 'text', text: 'hi' }] }], 'any'],
];
const PROMPTS = [
  [[1, 2, 3], true], [[299], true], [Array.from({ length: 80 }, (_, i) => i % V), true], // 80 > the window: valid with truncatePrompt, else an error
  [[], false], [[-1], false], [[1.5], false], [[V], false], [[NaN], false], [['1'], false], [[2 ** 53], false], [[null], false],
];

/**
 * An option set: each option unset, valid or adversarial. Its verdict: 'invalid' when a value
 * fails its predicate, 'any' when one is unclear (a lenient option's odd value, a null where
 * JSON callers mean "unset"), else 'valid'.
 */
function options(rng, table, pAdv, nullIsUnset) {
  const o = {};
  let verdict = 'valid';
  for (const [name, [good, ok, mode]] of Object.entries(table)) {
    if (!rng.chance(0.35)) continue;
    const v = rng.chance(pAdv) ? rng.pick(JS_VALUES)[1] : rng.pick(good);
    o[name] = v;
    if (v === undefined) continue;
    const r = v === null ? (nullIsUnset || name !== 'seed' ? 'any' : false) : mode === 'lenient' ? 'any' : ok(v);
    if (r === false) verdict = 'invalid';
    else if (r === 'any' && verdict === 'valid') verdict = 'any';
  }
  return { o, verdict };
}

const worst = (...vs) => (vs.includes('invalid') ? 'invalid' : vs.includes('any') ? 'any' : 'valid');

export function generationCase(rng) {
  const fn = rng.pick(['generateTokens', 'generateText', 'generateBatch', 'chatCompletion', 'chatCompletionStream']);
  const pAdv = rng.pick([0, 0.2, 0.5]);
  let args;
  let expect;
  let desc;
  if (fn.startsWith('chat')) {
    const { o, verdict } = options(rng, CHAT, pAdv, true);
    if (!('max_tokens' in o) && !('max_completion_tokens' in o)) o.max_tokens = 3;
    const [messages, okMessages] = rng.chance(0.7) ? MESSAGES[0] : rng.pick(MESSAGES);
    args = { request: { messages, ...o } };
    expect = worst(verdict, okMessages === 'any' ? 'any' : okMessages ? 'valid' : 'invalid');
    desc = `${fn}(${show(args.request)})`;
  } else {
    const { o, verdict } = options(rng, SAMPLING, pAdv, false);
    if (!('maxTokens' in o)) o.maxTokens = 3;
    const [prompt, okPrompt] = rng.chance(0.7) ? PROMPTS[0] : rng.pick(PROMPTS);
    const promptArg = fn === 'generateText' && rng.chance(0.5) ? 'Hello world' : fn === 'generateBatch' && rng.chance(0.5) ? [prompt, [4, 5]] : fn === 'generateBatch' ? [prompt] : prompt;
    // a prompt as long as the window: an error unless truncatePrompt (generateBatch has none)
    const okLong = typeof promptArg === 'string' || prompt.length < 64 || (fn !== 'generateBatch' && o.truncatePrompt === true);
    args = { prompt: promptArg, options: o };
    expect = worst(verdict, typeof promptArg === 'string' || (okPrompt && okLong) ? 'valid' : 'invalid');
    desc = `${fn}(${show(promptArg)}, ${show(o)})`;
  }
  return { desc, kind: fn, files: {}, job: { kind: 'generate', fn, model: GEN_MODEL, ...args }, expect };
}

/** JSON-ish text that also shows NaN, Infinity, undefined and bigints. */
export function show(v) {
  const s = JSON.stringify(v, (_, x) => (typeof x === 'number' && !Number.isFinite(x) ? `@${x}@` : x === undefined ? '@undefined@' : typeof x === 'bigint' ? `@${x}n@` : x));
  return (s ?? String(v)).replace(/"@(.*?)@"/g, '$1').slice(0, 300);
}

export const generationTargets = { generation: generationCase };
