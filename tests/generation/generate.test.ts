// Generation: greedy decoding through the KV cache against PyTorch's greedy continuation (full
// forwards) for every architecture, sampling determinism (per seed, across backends), the logits
// processors against values worked out here, the device sampler against them, stop tokens and
// strings, and the context window.
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';
import { KilnError } from '../../src/core/errors.js';
import { DeviceSampler, generateText, generateTokens, pickToken, processLogits, Rng, type SamplingOptions } from '../../src/generation/index.js';
import { logSoftmax } from '../../src/generation/sampling.js';
import { loadModel } from '../../src/models/load.js';
import { describeBackends } from '../helpers/backends.js';

const dir = new URL('../golden/checkpoints/', import.meta.url).pathname;
const golden = (a: string) => JSON.parse(readFileSync(join(dir, a, 'golden.json'), 'utf8'));
const collect = async <T, R>(g: AsyncGenerator<T, R>): Promise<{ items: T[]; ret: R }> => {
  const items: T[] = [];
  for (;;) {
    const r = await g.next();
    if (r.done) return { items, ret: r.value };
    items.push(r.value);
  }
};

describeBackends('generateTokens', () => {
  for (const arch of ['llama', 'mistral', 'qwen2', 'gemma', 'phi3', 'mixtral', 'gpt2']) {
    it(`${arch}: greedy through the KV cache equals PyTorch's greedy continuation`, async () => {
      const g = golden(arch);
      const { model } = await loadModel(join(dir, arch));
      const prompt = g.ids.data as number[];
      const { items, ret } = await collect(generateTokens(model, prompt, { greedy: true, maxTokens: g.greedy.data.length - prompt.length }));
      expect([...prompt, ...items.map((s) => s.token)]).toEqual(g.greedy.data);
      expect(ret).toBe('length');
      for (const s of items) expect(s.logprob).toBeLessThanOrEqual(0);
    });
  }
});

describe('sampling', () => {
  it('the same seed gives the same tokens, on wasm and on WebGPU', async () => {
    const runs: number[][] = [];
    for (const b of ['wasm', 'webgpu'] as const) {
      k.use(await k.createBackend(b));
      const { model } = await loadModel(join(dir, 'llama'));
      for (const seed of [7, 7, 8]) {
        const { items } = await collect(generateTokens(model, [1, 2, 3], { seed, temperature: 0.8, topK: 20, maxTokens: 12 }));
        runs.push(items.map((s) => s.token));
      }
    }
    expect(runs[1]).toEqual(runs[0]);
    expect(runs[2]).not.toEqual(runs[0]);
    expect(runs[3]).toEqual(runs[0]); // webgpu, seed 7
    expect(runs[5]).toEqual(runs[2]);
  });

  it('processors: penalties, bias, temperature, top-k, top-p and min-p as defined', () => {
    const logits = [2, 1, 0, -1, 3];
    // repetition penalty 2 on tokens 0 and 3: 2 -> 1, -1 -> -2; frequency 0.5 x2 and presence 1 on token 4
    const s = processLogits(logits, { repetitionPenalty: 2, frequencyPenalty: 0.5, presencePenalty: 1, logitBias: { 1: 10 }, greedy: true }, [0, 3], [4, 4]);
    expect(Array.from(s)).toEqual([1, 11, 0, -2, 3 - 1 - 1]);
    const topK = processLogits(logits, { topK: 2 }, [], []);
    expect(Array.from(topK).map((v) => v === -Infinity)).toEqual([false, true, true, true, false]);
    // probs of [2,1,0,-1,3]: 3 -> .636, 2 -> .234, 1 -> .086: top-p .8 keeps the first two
    const topP = processLogits(logits, { topP: 0.8 }, [], []);
    expect(Array.from(topP).map((v) => v === -Infinity)).toEqual([false, true, true, true, false]);
    const minP = processLogits(logits, { minP: 0.2 }, [], []); // keep p >= 0.2 * .636
    expect(Array.from(minP).map((v) => v === -Infinity)).toEqual([false, true, true, true, false]);
    const t = processLogits(logits, { temperature: 2 }, [], []);
    expect(Array.from(t)).toEqual([1, 0.5, 0, -0.5, 1.5]);
    expect(pickToken(processLogits(logits, { greedy: true }, [], []), { greedy: true }, new Rng(1))).toBe(4);
    // a draw follows the distribution: 20k draws of softmax([0, log 3]) give about 75% token 1
    const rng = new Rng(5);
    let ones = 0;
    for (let i = 0; i < 20000; i++) ones += pickToken(Float64Array.from([0, Math.log(3)]), {}, rng);
    expect(ones / 20000).toBeGreaterThan(0.735);
    expect(ones / 20000).toBeLessThan(0.765);
  });
});

// The device sampler (kernels/sample.ts and its AssemblyScript twin) against the host reference
// above (processLogits + pickToken in float64), step by step with the same seeded draws: a vocab
// of 3,000 with tied scores, every processor alone and together, and a batch of rows.
describeBackends('the device sampler', (ctx) => {
  const V = 3000;
  const logitsAt = (step: number, row: number): Float32Array =>
    Float32Array.from({ length: V }, (_, i) => Math.round(4 * Math.sin(i * 0.37 + step * 1.3 + row) * Math.cos(i * 0.011)) / 2 + (i % 97 === 0 ? 3 : 0));
  const CASES: [string, SamplingOptions][] = [
    ['greedy', { greedy: true }],
    ['temperature 0 with penalties and bias', { temperature: 0, repetitionPenalty: 1.3, frequencyPenalty: 0.4, presencePenalty: 0.7, logitBias: { 5: 4, 97: -100 } }],
    ['plain draw', { seed: 3 }],
    ['temperature 0.7', { temperature: 0.7, seed: 4 }],
    ['top-k 40 (ties at the k-th)', { topK: 40, seed: 5 }],
    ['top-p 0.9', { topP: 0.9, seed: 6 }],
    ['min-p 0.05', { minP: 0.05, seed: 7 }],
    ['everything', { temperature: 1.3, topK: 200, topP: 0.8, minP: 0.02, repetitionPenalty: 1.2, frequencyPenalty: 0.3, presencePenalty: 0.5, logitBias: { 11: 2.5 }, seed: 8 }],
  ];
  // The device sums f32 exponentials, the reference float64 ones: a draw that falls within 1e-5 of
  // the boundary between two tokens may land on either side; anything else must be the same token.
  const sameDraw = (got: number, scores: Float64Array, want: number, u: number): boolean => {
    if (got === want) return true;
    const p = logSoftmax(scores);
    let before = 0;
    for (let i = 0; i < got; i++) if (p[i] !== -Infinity) before += Math.exp(p[i]);
    return p[got] !== -Infinity && u > before - 1e-5 && u < before + Math.exp(p[got]) + 1e-5;
  };
  for (const [name, opts] of CASES) {
    it(`${name}: the same tokens and log-probabilities as the host reference`, async () => {
      const prompts = [[1, 5, 97, 194], [2, 2, 300]];
      const sampler = new DeviceSampler(ctx.backend, prompts, V, opts);
      const rngs = prompts.map((_, r) => new Rng((opts.seed ?? 0) + r));
      const draws = prompts.map((_, r) => new Rng((opts.seed ?? 0) + r)); // the same sequence, to see each u
      const generated: number[][] = prompts.map(() => []);
      let exact = 0;
      try {
        for (let step = 0; step < 12; step++) {
          const rows = prompts.map((_, r) => logitsAt(step, r));
          const lg = k.tensor(Float32Array.from(rows.flatMap((r) => [...r])), { shape: [prompts.length, 1, V] });
          const got = await sampler.sample(lg).toArray();
          prompts.forEach((p, r) => {
            const scores = processLogits(rows[r], opts, [...p, ...generated[r]], generated[r]);
            const want = pickToken(scores, opts, rngs[r]);
            const u = opts.greedy || opts.temperature === 0 ? 0 : draws[r].uniform();
            expect(sameDraw(got[2 * r], scores, want, u), `step ${step} row ${r}: ${got[2 * r]} for ${want}`).toBe(true);
            exact += +(got[2 * r] === want);
            expect(got[2 * r + 1]).toBeCloseTo(logSoftmax(rows[r])[got[2 * r]], 4);
            generated[r].push(got[2 * r]); // both follow the device's choice
          });
        }
      } finally {
        sampler.dispose();
      }
      expect(exact).toBeGreaterThanOrEqual(22); // of 24 draws
    });
  }

  it('logits that are not its rows of the vocab are a typed error naming the shapes', () => {
    const sampler = new DeviceSampler(ctx.backend, [[1], [2]], V, {});
    try {
      expect(() => sampler.sample(k.zeros([1, 1, V]))).toThrow(/sample: logits \[1, 1, 3000\] are not 2 contiguous rows of 3000/);
    } finally {
      sampler.dispose();
    }
  });
});

describe('generateText', () => {
  // a word-level tokenizer over the tiny checkpoints' 40 ids: "w0" .. "w39"
  const vocab = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`w${i}`, i]));
  const tok = new k.Tokenizer({ model: { type: 'WordLevel', vocab, unk_token: 'w0' }, pre_tokenizer: { type: 'WhitespaceSplit' } });

  it('streams the text, stops on a stop token or before a stop string, and checks the context', async () => {
    k.use(await k.createBackend('wasm'));
    const { model } = await loadModel(join(dir, 'llama'));
    const g = golden('llama');
    const prompt = (g.ids.data as number[]).map((i) => `w${i}`).join(' ');
    const want = (g.greedy.data as number[]).slice(g.ids.data.length);
    const all = await collect(generateText(model, tok, prompt, { greedy: true, maxTokens: want.length }));
    expect(all.items.map((c) => c.token)).toEqual(want);
    expect(all.items.map((c) => c.text).join('')).toBe(tok.decode(want));

    const stopTok = await collect(generateText(model, tok, prompt, { greedy: true, maxTokens: 20, stopTokenIds: [want[2]] }));
    expect(stopTok.items.map((c) => c.token)).toEqual(want.slice(0, 3));
    expect(stopTok.ret).toBe('stop');

    const stopAt = tok.decode(want.slice(2, 4));
    const stopStr = await collect(generateText(model, tok, prompt, { greedy: true, maxTokens: 20, stop: [stopAt] }));
    const text = stopStr.items.map((c) => c.text).join('');
    expect(stopStr.ret).toBe('stop');
    expect(text).not.toContain(stopAt);
    expect(tok.decode(want).startsWith(text)).toBe(true);

    const long = Array.from({ length: 40 }, () => 3);
    await expect(collect(generateTokens(model, long, { maxTokens: 2 }))).rejects.toThrow(/context window holds 32/);
    const cut = await collect(generateTokens(model, long, { maxTokens: 2, truncatePrompt: true, greedy: true }));
    expect(cut.items.length).toBe(2);
    await expect(collect(generateTokens(model, [1, 99], {}))).rejects.toThrow(KilnError);
  });
});

describe('batched generation and the OpenAI shapes', () => {
  const vocab = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`w${i}`, i]));
  const tokJson = { model: { type: 'WordLevel', vocab, unk_token: 'w0' }, pre_tokenizer: { type: 'WhitespaceSplit' } };

  it('a left-padded batch gives each prompt the tokens it gets alone', async () => {
    for (const b of ['wasm', 'webgpu'] as const) {
      k.use(await k.createBackend(b));
      const { model } = await loadModel(join(dir, 'qwen2'));
      const prompts = [[1, 5, 12], [3, 3, 9, 2, 11, 7], [20]];
      const batch = await k.generateBatch(model, prompts, { greedy: true, maxTokens: 5 });
      for (let i = 0; i < prompts.length; i++) {
        const alone = await collect(generateTokens(model, prompts[i], { greedy: true, maxTokens: 5 }));
        expect(batch[i].tokens, `${b} prompt ${i}`).toEqual(alone.items.map((s) => s.token));
      }
      const stopped = await k.generateBatch(model, prompts, { greedy: true, maxTokens: 5, stopTokenIds: [batch[1].tokens[1]] });
      expect(stopped[1].tokens).toEqual(batch[1].tokens.slice(0, 2));
      expect(stopped[1].finish).toBe('stop');
    }
  });

  it('chatCompletion and chatCompletionStream have the OpenAI shapes and agree', async () => {
    k.use(await k.createBackend('wasm'));
    const lm = await loadModel(join(dir, 'llama'));
    lm.tokenizer = new k.Tokenizer(tokJson, { chat_template: '{% for m in messages %}{{ m.content }} {% endfor %}' });
    const req = { messages: [{ role: 'user', content: 'w1 w5 w12' }], max_tokens: 4, temperature: 0, logprobs: true };
    const done = await k.chatCompletion(lm, req);
    expect(done.object).toBe('chat.completion');
    expect(done.choices[0].message.role).toBe('assistant');
    expect(done.choices[0].finish_reason).toBe('length');
    expect(done.usage).toEqual({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
    expect(done.choices[0].logprobs!.content.length).toBe(4);
    const chunks: k.ChatCompletionChunk[] = [];
    for await (const c of k.chatCompletionStream(lm, req)) chunks.push(c);
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe('length');
    expect(chunks.map((c) => c.choices[0].delta.content ?? '').join('')).toBe(done.choices[0].message.content);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id)).toBe(true);
    await expect(k.chatCompletion(lm, { messages: [] })).rejects.toThrow(KilnError);
  });
});

describeBackends('the KV cache', (ctx) => {
  it('is allocated once and written in place: live buffers stay flat while decoding', async () => {
    const { model } = await loadModel(join(dir, 'llama'));
    const counts: number[] = [];
    for await (const _ of generateTokens(model, [1, 5, 12], { greedy: true, maxTokens: 12 })) counts.push(ctx.backend.memory().liveBuffers);
    // decoding runs one step ahead: every yield but the last holds the next step's pick too
    expect(new Set(counts.slice(1, -1)).size).toBe(1);
    expect(counts[counts.length - 1]).toBe(counts[1] - 1);
    // and gives what the concatenating cache gives
    const g = golden('llama');
    const grown = model.call({ inputIds: k.tensor([g.ids.data], { dtype: 'i32' }) }) as { logits: k.Tensor; cache: k.nn.KVCache[] };
    const pre = model.allocateCache(1, 16);
    const first = k.noGrad(() => model.call({ inputIds: k.tensor([g.ids.data.slice(0, 4)], { dtype: 'i32' }), past: pre }) as { logits: k.Tensor; cache: k.nn.KVCache[] });
    const second = k.noGrad(() => model.call({ inputIds: k.tensor([g.ids.data.slice(4)], { dtype: 'i32' }), past: first.cache }) as { logits: k.Tensor });
    expect(first.cache[0].length).toBe(4);
    const stitched = await k.concat([first.logits, second.logits], 1).toArray();
    const full = await grown.logits.toArray();
    for (let i = 0; i < full.length; i++) expect(Math.abs(stitched[i] - full[i])).toBeLessThan(1e-4);
  });

  it('WebGPU: each sampled token is one submit and reads back 8 bytes (token and log-probability), one step ahead', async () => {
    if (ctx.name !== 'webgpu') return void expect(ctx.name).toBe('wasm'); // the counters are WebGPU's
    const be = ctx.backend as k.WebGPUBackend;
    const { model } = await loadModel(join(dir, 'llama'));
    const opts = { temperature: 0.9, topK: 30, topP: 0.9, minP: 0.01, repetitionPenalty: 1.1, frequencyPenalty: 0.2, presencePenalty: 0.1, logitBias: { 3: 1 }, seed: 2, maxTokens: 10 };
    const steps: [number, number][] = [];
    for await (const _ of generateTokens(model, [1, 5, 12], opts)) steps.push([be.submits, be.readBytes]);
    expect(steps.length).toBe(10);
    // each yield comes after the next step was submitted (one step ahead): the last needs none
    const diffs = steps.slice(1).map((s, i) => [s[0] - steps[i][0], s[1] - steps[i][1]]);
    expect(diffs).toEqual([...Array(8).fill([1, 8]), [0, 0]]);
  });
});
