// The decoding session and the entry points over it: device buffers freed on every way out
// (break, abort, thrown errors), every bad option a KilnError naming it, a padded batch equal to
// each row alone and to PyTorch, a padding mask that is not re-uploaded per token, and the
// context window named by the forward itself.
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';
import { KilnError } from '../../src/core/errors.js';
import { DecodingSession, generateBatch, generateText, generateTokens, chatCompletion, chatCompletionStream, Rng, type GenerateOptions } from '../../src/generation/index.js';
import { loadModel, type LoadedModel } from '../../src/models/load.js';
import { describeBackends } from '../helpers/backends.js';

const dir = new URL('../golden/checkpoints/', import.meta.url).pathname;
const golden = (a: string) => JSON.parse(readFileSync(join(dir, a, 'golden.json'), 'utf8'));
// a word-level tokenizer over the tiny checkpoints' 40 ids: "w0" .. "w39"
const vocab = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`w${i}`, i]));
const tokJson = { model: { type: 'WordLevel', vocab, unk_token: 'w0' }, pre_tokenizer: { type: 'WhitespaceSplit' } };
const withTokenizer = (lm: LoadedModel): LoadedModel => {
  lm.tokenizer = new k.Tokenizer(tokJson, { chat_template: '{% for m in messages %}{{ m.content }} {% endfor %}' });
  return lm;
};
const isAbort = (e: unknown): boolean => e instanceof Error && e.name === 'AbortError';

describeBackends('generation frees its device buffers', (ctx) => {
  const live = () => ctx.backend.memory().liveBuffers;
  /** A model whose lazily built tables (RoPE's cos / sin) exist already, so only leaks count. */
  const warm = async (arch = 'llama') => {
    const lm = withTokenizer(await loadModel(join(dir, arch)));
    for await (const _ of generateTokens(lm.model, [1, 2], { greedy: true, maxTokens: 2 }));
    return lm;
  };

  it('after 20 early breaks (tokens, text, chat stream) and a finished run', async () => {
    const lm = await warm();
    const opts = { greedy: true, maxTokens: 10 };
    const before = live();
    for (let i = 0; i < 20; i++) {
      let n = 0;
      for await (const _ of generateTokens(lm.model, [1, 5, 12], opts)) if (++n === 1 + (i % 3)) break;
      n = 0;
      for await (const _ of generateText(lm.model, lm.tokenizer!, 'w1 w5 w12', opts)) if (++n === 2) break;
    }
    for await (const c of chatCompletionStream(lm, { messages: [{ role: 'user', content: 'w3 w4' }], max_tokens: 6, temperature: 0 })) if (c.choices[0].delta.content) break;
    expect(live()).toBe(before);
    // a run to the end frees as much, and gives what the broken ones started with
    const whole = [];
    for await (const s of generateTokens(lm.model, [1, 5, 12], opts)) whole.push(s.token);
    expect(whole.length).toBe(10);
    expect(live()).toBe(before);
  });

  it('after aborts: the signal reason is thrown (AbortError as fetch), at the next step', async () => {
    const lm = await warm();
    const model = lm.model;
    const before = live();
    for (let i = 0; i < 5; i++) {
      const ac = new AbortController();
      const got: number[] = [];
      const run = async () => {
        for await (const s of generateTokens(model, [1, 5, 12], { greedy: true, maxTokens: 10, signal: ac.signal })) {
          got.push(s.token);
          if (got.length === 2) ac.abort();
        }
      };
      const err = await run().then(() => null, (e) => e);
      expect(isAbort(err), String(err)).toBe(true);
      expect(got.length).toBe(2); // the loop ends at the step after the abort
    }
    // a reason of the caller's own is thrown as it is; an aborted signal never starts
    const ac = new AbortController();
    const reason = new Error('user left');
    ac.abort(reason);
    await expect(generateBatch(model, [[1, 2], [3]], { maxTokens: 4, signal: ac.signal })).rejects.toBe(reason);
    const pre = AbortSignal.abort();
    await expect(generateTokens(model, [1], { signal: pre }).next()).rejects.toSatisfy(isAbort);
    await expect(generateText(model, lm.tokenizer!, 'w1', { signal: pre }).next()).rejects.toSatisfy(isAbort);
    await expect(chatCompletion(lm, { messages: [{ role: 'user', content: 'w1' }], signal: pre })).rejects.toSatisfy(isAbort);
    await expect(chatCompletionStream(lm, { messages: [{ role: 'user', content: 'w1' }], signal: pre }).next()).rejects.toSatisfy(isAbort);
    // generateBatch aborted mid-way
    const mid = new AbortController();
    const orig = model.forward.bind(model);
    let calls = 0;
    model.forward = (inp) => { if (++calls === 3) mid.abort(); return orig(inp); };
    try {
      await expect(generateBatch(model, [[1, 2, 3], [4]], { greedy: true, maxTokens: 8, signal: mid.signal })).rejects.toSatisfy(isAbort);
    } finally {
      delete (model as { forward?: unknown }).forward;
    }
    expect(live()).toBe(before);
  });

  it('after thrown errors: the consumer\'s, and the forward\'s in the middle of decoding', async () => {
    const lm = await warm();
    const model = lm.model;
    const before = live();
    const boom = new Error('consumer failed');
    const consume = async () => {
      for await (const c of generateText(model, lm.tokenizer!, 'w1 w2', { greedy: true, maxTokens: 6 })) if (c.token >= 0) throw boom;
    };
    await expect(consume()).rejects.toBe(boom);
    const orig = model.forward.bind(model);
    for (const failAt of [1, 2, 4]) {
      let calls = 0;
      model.forward = (inp) => { if (++calls === failAt) throw new KilnError('backend', 'test', `forward ${failAt} fails`); return orig(inp); };
      try {
        await expect((async () => { for await (const _ of generateTokens(model, [1, 2], { greedy: true, maxTokens: 6 })); })()).rejects.toThrow(`forward ${failAt} fails`);
        calls = 0;
        await expect(generateBatch(model, [[1, 2, 3], [4]], { greedy: true, maxTokens: 6 })).rejects.toThrow(`forward ${failAt} fails`);
        calls = 0;
        await expect(chatCompletion(lm, { messages: [{ role: 'user', content: 'w1' }], max_tokens: 6 })).rejects.toThrow(`forward ${failAt} fails`);
      } finally {
        delete (model as { forward?: unknown }).forward;
      }
    }
    expect(live()).toBe(before);
  });

  it('a session: dispose is idempotent, and a disposed or finished session refuses to step', async () => {
    const { model } = await warm();
    const before = live();
    const s = new DecodingSession(model, { greedy: true, maxTokens: 2 });
    await expect(s.step()).rejects.toThrow(/step\(\) before prefill\(\)/);
    s.prefill([[1, 2]]);
    expect((await s.step()).tokens.length).toBe(1);
    expect((await s.step()).tokens.length).toBe(1);
    expect(s.done).toBe(true);
    expect(s.finish).toEqual(['length']);
    await expect(s.step()).rejects.toThrow(/every row has finished/);
    s.dispose();
    s.dispose();
    expect(live()).toBe(before);
    expect(() => s.prefill([[1]])).toThrow(/prefill\(\) runs once/);
    const bad = new DecodingSession(model, {});
    expect(() => bad.prefill([[1], [2, 40]])).toThrow(/DecodingSession: prompts\[1\]: token 1 \(40\) is outside the vocab \(size 40\)/);
    expect(() => bad.prefill([])).toThrow(/non-empty array of prompts/);
    bad.dispose();
    expect(live()).toBe(before);
  });
});

describeBackends('one decoding session for a batch', (ctx) => {
  it('rows of different lengths: each equals PyTorch\'s greedy continuation and the row generated alone', async () => {
    for (const arch of ['llama', 'gpt2', 'mistral']) { // RoPE, learned positions, a sliding window: padding shifts none
      const { model } = await loadModel(join(dir, arch));
      const g = golden(arch);
      const prompt = g.ids.data as number[];
      const want = (g.greedy.data as number[]).slice(prompt.length);
      const prompts = [prompt, [7, 3], [...prompt, 9, 1, 4].slice(0, Math.min(prompt.length + 3, 20))];
      const batch = await generateBatch(model, prompts, { greedy: true, maxTokens: want.length });
      expect(batch[0].tokens, arch).toEqual(want);
      for (let i = 1; i < prompts.length; i++) {
        const alone: number[] = [];
        for await (const s of generateTokens(model, prompts[i], { greedy: true, maxTokens: want.length })) alone.push(s.token);
        expect(batch[i].tokens, `${arch} row ${i}`).toEqual(alone);
      }
    }
  });

  it('seeded sampling draws what generateTokens and generateBatch drew before the session (recorded at 99b46e7)', async () => {
    // row b of a batch draws from seed + b; the same tokens on both backends then and now
    const BEFORE: Record<string, [number[], number[][]]> = {
      llama: [[14, 6, 28, 5, 24, 4, 4, 28, 9, 39], [[14, 6, 28, 5, 24, 4, 4, 28, 9, 39], [31, 6, 38, 35, 9, 29, 35, 10, 33, 26], [22, 10, 18, 33, 39, 2, 22, 32, 22, 3]]],
      qwen2: [[34, 15, 39, 18, 26, 25, 8, 37, 37, 39], [[34, 15, 39, 18, 26, 25, 8, 37, 37, 39], [34, 15, 25, 25, 0, 25, 25, 8, 25, 25], [1, 1, 1, 33, 37, 15, 17, 39, 37, 4]]],
    };
    for (const [arch, [alone, batch]] of Object.entries(BEFORE)) {
      const { model } = await loadModel(join(dir, arch));
      const opts = { seed: 7, temperature: 0.8, topK: 20, repetitionPenalty: 1.1, maxTokens: 10 };
      const got: number[] = [];
      for await (const s of generateTokens(model, [1, 5, 12], opts)) got.push(s.token);
      expect(got, arch).toEqual(alone);
      expect((await generateBatch(model, [[1, 5, 12], [3, 3, 9, 2], [20]], opts)).map((r) => r.tokens), arch).toEqual(batch);
    }
  });

  it('the padding mask is uploaded once: the bytes written per step do not grow with the sequence', async () => {
    const { model } = await loadModel(join(dir, 'llama'));
    const be = ctx.backend;
    let written = 0;
    const write = be.write.bind(be);
    be.write = (s, data, off) => { written += data.byteLength; write(s, data, off); };
    const perStep: number[] = [];
    const s = new DecodingSession(model, { greedy: true, maxTokens: 12 });
    try {
      s.prefill([[1, 2, 3, 4, 5], [6], [7, 8]]);
      while (!s.done) {
        const w0 = written;
        const r = await s.step();
        expect(r.tokens.every((t) => t !== null)).toBe(true);
        perStep.push(written - w0);
      }
    } finally {
      s.dispose();
      delete (be as { write?: unknown }).write;
    }
    expect(perStep.length).toBe(12);
    // every step that records the next one writes the same bytes (draws, positions, uniforms)
    expect(new Set(perStep.slice(0, -1)).size, perStep.join(' ')).toBe(1);
  });

  it('WebGPU: a batch decodes one step ahead too: one submit and 8 bytes per row read back per step', async () => {
    if (ctx.name !== 'webgpu') return void expect(ctx.name).toBe('wasm'); // the counters are WebGPU's
    const be = ctx.backend as k.WebGPUBackend;
    const { model } = await loadModel(join(dir, 'llama'));
    const s = new DecodingSession(model, { temperature: 0.8, topK: 20, seed: 3, maxTokens: 8 });
    const at: [number, number][] = [];
    try {
      s.prefill([[1, 2, 3, 4], [5], [6, 7]]);
      while (!s.done) {
        await s.step();
        at.push([be.submits, be.readBytes]);
      }
    } finally {
      s.dispose();
    }
    const diffs = at.slice(1).map((x, i) => [x[0] - at[i][0], x[1] - at[i][1]]);
    expect(diffs).toEqual([...Array(6).fill([1, 24]), [0, 0]]);
  });

  it('rows stop on their own; a stopped row yields null and the batch ends when all have', async () => {
    const { model } = await loadModel(join(dir, 'qwen2'));
    const prompts = [[1, 5, 12], [3, 3, 9, 2, 11, 7]];
    const free = await generateBatch(model, prompts, { greedy: true, maxTokens: 6 });
    const stop = free[0].tokens[1];
    const s = new DecodingSession(model, { greedy: true, maxTokens: 6, stopTokenIds: [stop] });
    const rows: (number | null)[][] = [];
    try {
      s.prefill(prompts);
      while (!s.done) rows.push((await s.step()).tokens);
    } finally {
      s.dispose();
    }
    const col = (b: number) => rows.map((r) => r[b]);
    const cut = (t: number[]) => { const i = t.indexOf(stop); return i < 0 ? t : t.slice(0, i + 1); };
    expect(col(0).filter((t) => t !== null)).toEqual(cut(free[0].tokens));
    expect(col(1).filter((t) => t !== null)).toEqual(cut(free[1].tokens));
    expect(s.finish[0]).toBe('stop');
    expect(col(0).slice(cut(free[0].tokens).length).every((t) => t === null)).toBe(true);
  });
});

describeBackends('generation options', () => {
  // [options, the option the error must name]; every entry point rejects each the same way
  const BAD: [Record<string, unknown>, string][] = [
    [{ seed: '7' }, 'seed'], [{ seed: null }, 'seed'], [{ seed: {} }, 'seed'], [{ seed: 2 ** 64 }, 'seed'], [{ seed: 1.5 }, 'seed'], [{ seed: -1 }, 'seed'],
    [{ temperature: '0.5' }, 'temperature'], [{ temperature: -1 }, 'temperature'], [{ temperature: Infinity }, 'temperature'], [{ temperature: NaN }, 'temperature'],
    [{ topP: 0 }, 'topP'], [{ topP: 1.5 }, 'topP'], [{ topK: 2.5 }, 'topK'], [{ topK: -1 }, 'topK'], [{ topK: 2 ** 64 }, 'topK'], [{ maxTokens: 2 ** 60 }, 'maxTokens'], [{ minP: 2 }, 'minP'],
    [{ repetitionPenalty: 0 }, 'repetitionPenalty'], [{ frequencyPenalty: NaN }, 'frequencyPenalty'], [{ presencePenalty: Infinity }, 'presencePenalty'],
    [{ logitBias: { 40: 1 } }, 'logitBias'], [{ logitBias: { '-1': 1 } }, 'logitBias'], [{ logitBias: { 3: NaN } }, 'logitBias'], [{ logitBias: { 'x': 1 } }, 'logitBias'], [{ logitBias: [1] }, 'logitBias'],
    [{ stop: [null] }, 'stop'], [{ stop: [''] }, 'stop'], [{ stop: 5 }, 'stop'], [{ stop: ['a', 3] }, 'stop'],
    [{ maxTokens: '3' }, 'maxTokens'], [{ maxTokens: 0 }, 'maxTokens'], [{ maxTokens: 1.5 }, 'maxTokens'],
    [{ stopTokenIds: [40] }, 'stopTokenIds'], [{ stopTokenIds: 3 }, 'stopTokenIds'], [{ greedy: 1 }, 'greedy'], [{ truncatePrompt: 'yes' }, 'truncatePrompt'],
    [{ signal: {} }, 'signal'], [{ top_p: 0.5 }, 'top_p'],
  ];
  // chatCompletion takes OpenAI's names: the error names the field the caller wrote
  const FIELD: Record<string, string> = { topP: 'top_p', topK: 'top_k', minP: 'min_p', maxTokens: 'max_completion_tokens', repetitionPenalty: 'repetition_penalty', frequencyPenalty: 'frequency_penalty', presencePenalty: 'presence_penalty', logitBias: 'logit_bias' };

  it('every bad option is a KilnError naming it, at every entry point', async () => {
    const lm = withTokenizer(await loadModel(join(dir, 'llama')));
    const expectBad = async (p: Promise<unknown>, name: string, what: string) => {
      const e = await p.then(() => null, (x) => x);
      expect(e, `${what}: no error`).toBeInstanceOf(KilnError);
      expect((e as KilnError).code, what).toBe('argument');
      expect((e as KilnError).message, what).toContain(`${name}:`);
    };
    for (const [o, name] of BAD) {
      const what = JSON.stringify(o) ?? String(o);
      const opts = o as GenerateOptions;
      await expectBad(generateTokens(lm.model, [1, 2], opts).next(), name, `generateTokens ${what}`);
      await expectBad(generateText(lm.model, lm.tokenizer!, 'w1', opts).next(), name, `generateText ${what}`);
      await expectBad(generateBatch(lm.model, [[1], [2, 3]], opts), name, `generateBatch ${what}`);
      if ((name in FIELD || ['seed', 'temperature', 'stop'].includes(name)) && o[name] !== null) { // OpenAI's null is unset
        const field = FIELD[name] ?? name;
        await expectBad(chatCompletion(lm, { messages: [{ role: 'user', content: 'w1' }], [field]: o[name] } as never), field, `chatCompletion ${field}`);
      }
    }
    // the good values at the edges of each domain all run
    const good: GenerateOptions = { seed: Number.MAX_SAFE_INTEGER, temperature: 0, topP: 1, topK: 0, minP: 0, frequencyPenalty: -2, presencePenalty: 2, logitBias: { 0: -100, 39: 5 }, stop: 'w3', stopTokenIds: [39], maxTokens: 1, truncatePrompt: false, signal: new AbortController().signal };
    const out = await generateBatch(lm.model, [[1], [2, 3]], good);
    expect(out.map((r) => r.tokens.length)).toEqual([1, 1]);
    expect(out.some((r) => r.tokens[0] === 0)).toBe(false); // banned by the bias
  });

  it('chat requests: messages, stream, model, and a missing tokenizer', async () => {
    const lm = withTokenizer(await loadModel(join(dir, 'llama')));
    const ask = (messages: unknown, extra: object = {}) => chatCompletion(lm, { messages, max_tokens: 3, temperature: 0, ...extra } as never);
    for (const [messages, where] of [
      [[{ role: 'user', content: null }], 'messages[0].content'], [[{ role: 'user', content: 5 }], 'messages[0].content'], [[{ role: 'user', content: { text: 'w1' } }], 'messages[0].content'],
      [[{ role: 'user' }], 'messages[0].content'], [[{ content: 'w1' }], 'messages[0]'], [[{ role: 'user', content: [{ type: 'image_url' }] }], 'messages[0].content[0]'], ['w1', 'messages'],
    ] as const) {
      await expect(ask(messages), where).rejects.toThrow(new RegExp(`chatCompletion: ${where.replace(/[[\].]/g, '\\$&')}`));
    }
    await expect(ask([{ role: 'user', content: 'w1' }], { stream: true })).rejects.toThrow(/stream: true .* chatCompletionStream/);
    await expect(ask([{ role: 'user', content: 'w1' }], { n: 2 })).rejects.toThrow(/n: must be 1/);
    // text parts are the same conversation as the string; the requested model name comes back
    const plain = await ask([{ role: 'user', content: 'w1 w5' }], { model: 'my-adapter' });
    const parts = await ask([{ role: 'user', content: [{ type: 'text', text: 'w1' }, { type: 'text', text: 'w5' }] }]);
    expect(plain.model).toBe('my-adapter');
    expect(parts.choices[0].message.content).toBe(plain.choices[0].message.content);
    expect(parts.usage.prompt_tokens).toBe(2);
    // OpenAI's nullable fields read as unset
    const nulls = await ask([{ role: 'user', content: 'w1 w5' }], { seed: null, top_p: null, stop: null });
    expect(nulls.choices[0].message.content).toBe(plain.choices[0].message.content);
    const noTok = generateText(lm.model, null as never, 'w1', {});
    await expect(noTok.next()).rejects.toThrow(/generateText: a tokenizer is needed/);
    await expect(generateTokens(lm as never, [1]).next()).rejects.toThrow(/generateTokens: model must be a DecoderLM .*, got an object \(Object\)/);
    await expect(generateBatch(undefined as never, [[1]])).rejects.toThrow(/generateBatch: model must be a DecoderLM .*, got undefined/);
    await expect(chatCompletion(null as never, { messages: [] })).rejects.toThrow(/chatCompletion: model must be a DecoderLM/);
  });

  it('the seed: distinct seeds never alias, and the generator takes 64 bits', () => {
    const draw = (s: number | bigint) => { const r = new Rng(s); return [r.next(), r.next(), r.next()]; };
    expect(draw(2 ** 32)).not.toEqual(draw(0));
    expect(draw(2 ** 32 + 5)).not.toEqual(draw(5));
    expect(draw(5n)).toEqual(draw(5));
    expect(draw(2n ** 64n - 1n)).not.toEqual(draw(2n ** 63n - 1n));
    for (const bad of [1.5, -1, 2 ** 53, 2n ** 64n, -1n]) expect(() => new Rng(bad), String(bad)).toThrow(/Rng: seed must be an integer in \[0, 2\^64\)/);
  });
});

describe('the context window', () => {
  it('a sequence longer than the context is a typed error from the forward, with or without a cache', async () => {
    k.use(await k.createBackend('wasm'));
    for (const arch of ['llama', 'gpt2']) {
      const { model } = await loadModel(join(dir, arch));
      const ids = (n: number) => k.tensor([Array.from({ length: n }, (_, i) => i % 40)], { dtype: 'i32' });
      expect(() => model.call({ inputIds: ids(33) }), arch).toThrow(/DecoderLM: the sequence has 33 tokens \(inputIds\); the context window \(max_position_embeddings\) holds 32/);
      const full = k.noGrad(() => model.call({ inputIds: ids(32) }) as { logits: k.Tensor; cache: k.nn.KVCache[] });
      expect(full.logits.shape).toEqual([1, 32, 40]);
      expect(() => k.noGrad(() => model.call({ inputIds: ids(1), past: full.cache })), arch).toThrow(/the sequence has 33 tokens \(32 cached \+ 1 new\)/);
    }
  });
});
