// A fuzz worker: a child process that runs one case at a time against the built bundle
// (dist/kiln.js) and reports ok / kiln-error / exception / nan / bad-result. The parent times
// each case, watches this process's memory and replaces it when it crashes or hangs.
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const k = await import(join(root, 'dist/kiln.js'));
await k.init('wasm');
let webgpu = null;
const backendFor = async (name) => (name === 'webgpu' ? (webgpu ??= await k.createBackend('webgpu')) : k.getBackend());
const genModels = new Map(); // the generation target's model, loaded once per worker

class BadResult extends Error {}
const bad = (msg) => {
  throw new BadResult(msg);
};
const finite = (a) => a.every((x) => Number.isFinite(x));
const checkIds = (ids, V, what) => {
  if (!Array.isArray(ids) || !ids.every((t) => Number.isInteger(t) && t >= 0 && t < V)) bad(`${what}: ids outside [0, ${V}): ${JSON.stringify(ids).slice(0, 120)}`);
};

/** Loaded: logits for a few tokens must be finite, two greedy tokens through the cache too, the tokenizer must round-trip ids. */
async function load(dir, job) {
  const backend = await backendFor(job.backend);
  const lm = await k.loadModel(join(dir, job.path), { backend });
  try {
    const V = lm.model.config.vocabSize;
    const T = Math.min(4, lm.model.config.maxPositionEmbeddings - 2);
    if (!(T >= 1)) bad(`loaded with a context window of ${lm.model.config.maxPositionEmbeddings}`);
    const input = Array.from({ length: T }, (_, i) => (i * 7) % V);
    const logits = await k.noGrad(() => lm.model.call({ inputIds: k.tensor(input, { shape: [1, T], dtype: 'i32', backend }) })).logits.toArray();
    if (logits.length !== T * V) bad(`logits have ${logits.length} values, expected ${T} x ${V}`);
    if (!finite(logits)) return { status: 'nan', detail: `logits: ${[...logits].filter((x) => !Number.isFinite(x)).length} of ${logits.length} not finite` };
    const steps = [];
    for await (const s of k.generateTokens(lm.model, input, { maxTokens: 2, greedy: true })) steps.push(s);
    if (steps.some((s) => !Number.isFinite(s.logprob))) return { status: 'nan', detail: `generate: logprobs ${steps.map((s) => s.logprob)}` };
    checkIds(steps.map((s) => s.token), V, 'generate');
    if (lm.tokenizer) tokenize(lm.tokenizer, ['Hello world 123', ''], V);
    return { status: 'ok', detail: `${lm.modelType}, ${lm.model.config.numLayers} layers` };
  } finally {
    for (const [, p] of lm.model.namedParameters()) p.dispose();
  }
}

/** Encodes, pads and decodes: ids within the vocab, strings out. */
function tokenize(tok, texts, modelV) {
  const V = tok.vocabSize;
  if (modelV !== undefined && V > modelV) bad(`the tokenizer has ${V} ids, the model ${modelV}`);
  for (const t of texts) {
    const e = tok.encode(t);
    checkIds(e.ids, V, `encode(${JSON.stringify(t.slice(0, 20))})`);
    const s = tok.decode(e.ids);
    if (typeof s !== 'string') bad(`decode returned ${typeof s}`);
  }
  const batch = tok.encodeBatch(texts.slice(0, 3), { padding: true });
  for (const e of batch) checkIds(e.ids.filter((_, i) => e.attentionMask[i]), V, 'encodeBatch');
  const stream = tok.decodeStream();
  for (const id of tok.encodeIds(texts[0])) stream.step(id);
}

async function tokenizer(dir, job) {
  const { readFile } = await import('node:fs/promises');
  const json = await readFile(join(dir, 'tokenizer.json'), 'utf8');
  const config = job.chat ? await readFile(join(dir, 'tokenizer_config.json'), 'utf8') : null;
  const tok = k.Tokenizer.fromString(json, config);
  tokenize(tok, job.texts);
  if (job.chat) {
    const ids = tok.encodeChat([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true });
    checkIds(ids, tok.vocabSize, 'encodeChat');
  }
  return { status: 'ok', detail: `vocab ${tok.vocabSize}` };
}

async function generate(job) {
  if (!genModels.has(job.model)) genModels.set(job.model, await k.loadModel(join(root, job.model)));
  const lm = genModels.get(job.model);
  const V = lm.model.config.vocabSize;
  const maxTokens = job.options?.maxTokens;
  const check = (tokens, logprobs) => {
    checkIds(tokens, V, job.fn);
    if (logprobs.some((x) => Number.isNaN(x) || x > 1e-4)) return { status: 'nan', detail: `logprobs ${logprobs}` };
    if (Number.isInteger(maxTokens) && tokens.length > maxTokens) bad(`${tokens.length} tokens for maxTokens ${maxTokens}`);
    return { status: 'ok', detail: `${tokens.length} tokens` };
  };
  switch (job.fn) {
    case 'generateTokens':
    case 'generateText': {
      const it = job.fn === 'generateTokens' ? k.generateTokens(lm.model, job.prompt, job.options) : k.generateText(lm.model, lm.tokenizer, job.prompt, job.options);
      const steps = [];
      let finish;
      for (;;) {
        const r = await it.next();
        if (r.done) {
          finish = r.value;
          break;
        }
        steps.push(r.value);
        if (job.fn === 'generateText' && typeof r.value.text !== 'string') bad(`text chunk ${typeof r.value.text}`);
      }
      if (finish !== 'stop' && finish !== 'length') bad(`finish reason ${finish}`);
      const real = steps.filter((s) => s.token >= 0);
      return check(real.map((s) => s.token), real.map((s) => s.logprob));
    }
    case 'generateBatch': {
      const rows = await k.generateBatch(lm.model, job.prompt, job.options);
      if (rows.length !== job.prompt.length) bad(`${rows.length} rows for ${job.prompt.length} prompts`);
      for (const r of rows) {
        const c = check(r.tokens, []);
        if (c.status !== 'ok') return c;
      }
      return { status: 'ok', detail: rows.map((r) => r.tokens.length).join(',') };
    }
    case 'chatCompletion': {
      const r = await k.chatCompletion(lm, job.request);
      if (typeof r?.choices?.[0]?.message?.content !== 'string') bad('no message content');
      const lps = r.choices[0].logprobs?.content?.map((c) => c.logprob) ?? [];
      if (lps.some((x) => Number.isNaN(x) || x > 1e-4)) return { status: 'nan', detail: `logprobs ${lps}` };
      return { status: 'ok', detail: `${r.usage.completion_tokens} tokens` };
    }
    case 'chatCompletionStream': {
      let n = 0;
      for await (const c of k.chatCompletionStream(lm, job.request)) {
        n++;
        for (const l of c.choices[0].logprobs?.content ?? []) if (Number.isNaN(l.logprob)) return { status: 'nan', detail: `logprob ${l.logprob}` };
      }
      return { status: 'ok', detail: `${n} chunks` };
    }
    default:
      throw new Error(`unknown generation fn ${job.fn}`);
  }
}

/** The self-test's deliberate failures: the harness must flag each. */
async function self(job) {
  switch (job.what) {
    case 'hang': for (;;);
    case 'hang-async': return new Promise(() => {});
    case 'type-error': return null.x;
    case 'trap': {
      // (module (func (export "f") unreachable))
      const bytes = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 7, 5, 1, 1, 102, 0, 0, 10, 5, 1, 3, 0, 0, 11]);
      return new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports.f();
    }
    case 'crash': return process.abort();
    case 'exit': return process.exit(3);
    case 'stack': { const f = (n) => f(n + 1) + 1; return f(0); }
    case 'memory': {
      const keep = [];
      for (;;) {
        keep.push(Buffer.alloc(64 << 20, 1));
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    case 'late-rejection': {
      Promise.reject(new TypeError('rejected after the reply'));
      return { status: 'ok', detail: 'replied first' };
    }
    default: throw new Error(`unknown self-test ${job.what}`);
  }
}

function classify(e) {
  if (e instanceof BadResult) return { status: 'bad-result', detail: e.message };
  if (e instanceof k.KilnError) {
    const codes = ['shape', 'dtype', 'disposed', 'index', 'grad', 'backend', 'config', 'argument'];
    if (!codes.includes(e.code) || !e.message) return { status: 'exception', name: 'KilnError', detail: `KilnError with code ${e.code}: ${e.message}` };
    return { status: 'kiln-error', code: e.code, detail: e.message.slice(0, 300) };
  }
  const trap = e instanceof WebAssembly.RuntimeError;
  const name = e?.constructor?.name ?? typeof e;
  return { status: trap ? 'trap' : 'exception', name, detail: `${name}: ${String(e?.message ?? e).slice(0, 300)}`, stack: String(e?.stack ?? '').split('\n').slice(1, 6).join('\n') };
}

/**
 * Whether kiln still works in this process after a case: a small matmul always; after a backend
 * error (where a failed allocation may leave state behind) also the tiny llama checkpoint's logits
 * against PyTorch's. null when well, else what went wrong.
 */
async function health(name, r) {
  try {
    const backend = await backendFor(name);
    const a = k.tensor([1, 2, 3, 4], { shape: [2, 2], backend });
    const out = await k.matmul(a, a).toArray();
    a.dispose();
    if (![7, 10, 15, 22].every((x, i) => out[i] === x)) return `a 2x2 matmul gave ${[...out]}`;
    if (r.code !== 'backend') return null;
    const dir = join(root, 'tests/golden/checkpoints/llama');
    const g = JSON.parse(await (await import('node:fs/promises')).readFile(join(dir, 'golden.json'), 'utf8'));
    const lm = await k.loadModel(dir, { backend });
    const logits = await k.noGrad(() => lm.model.call({ inputIds: k.tensor(g.ids.data, { shape: g.ids.shape, dtype: 'i32', backend }) })).logits.toArray();
    for (const [, p] of lm.model.namedParameters()) p.dispose();
    const err = Math.max(...g.logits.data.map((x, i) => Math.abs(x - logits[i])));
    return err < 1e-3 ? null : `the llama checkpoint's logits are off by ${err}`;
  } catch (e) {
    return `${e?.name}: ${String(e?.message ?? e).slice(0, 200)}`;
  }
}

let current = null;
const reply = (r) => {
  if (current === null) return;
  process.send({ id: current, ...r });
  current = null;
};
// an error that escapes the case (a rejected promise nobody awaited) is still the case's failure
process.on('unhandledRejection', (e) => (current !== null ? reply(classify(e)) : process.send({ id: -1, stray: classify(e) })));
process.on('uncaughtException', (e) => (current !== null ? reply(classify(e)) : process.send({ id: -1, stray: classify(e) })));

process.on('message', async (m) => {
  current = m.id;
  let r;
  try {
    const j = m.job;
    r = j.kind === 'load' ? await load(m.dir, j) : j.kind === 'tokenizer' ? await tokenizer(m.dir, j) : j.kind === 'generate' ? await generate(j) : await self(j);
  } catch (e) {
    r = classify(e);
  }
  // give stray rejections of this case a turn to surface before it counts as done
  await new Promise((res) => setTimeout(res, 0));
  // whatever the case raised, kiln must still work afterwards in this process
  const sick = await health(m.job.backend, r);
  reply(sick ? { status: 'poisoned', detail: `after the case ended in ${r.status} (${String(r.detail ?? '').slice(0, 160)}), kiln fails here: ${sick}` } : r);
});
process.send({ ready: true });
