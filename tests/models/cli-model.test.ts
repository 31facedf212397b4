// `kiln logits`, `kiln generate` and `kiln perplexity` (the built CLI) on a conformance
// checkpoint, against its PyTorch goldens.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertClose } from '../helpers/assert-close.js';

const root = new URL('../..', import.meta.url).pathname;
const src = join(root, 'tests/golden/checkpoints/llama');
const g = JSON.parse(readFileSync(join(src, 'golden.json'), 'utf8'));
const kiln = (...args: string[]) => {
  const r = spawnSync(process.execPath, [join(root, 'bin/kiln.mjs'), ...args], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } });
  return { code: r.status ?? 1, out: r.stdout, err: r.stderr };
};

// the checkpoint plus a word-level tokenizer over its 40 ids ("w0".."w39")
const dir = join(root, '.cache/cli-model');
mkdirSync(dir, { recursive: true });
for (const f of readdirSync(src)) copyFileSync(join(src, f), join(dir, f));
const vocab = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`w${i}`, i]));
writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'WordLevel', vocab, unk_token: 'w0' }, pre_tokenizer: { type: 'WhitespaceSplit' } }));
const words = (ids: number[]) => ids.map((i) => `w${i}`).join(' ');

describe('model commands', () => {
  it('logits --json prints one row per position, equal to PyTorch', () => {
    for (const backend of ['wasm', 'webgpu']) {
      const r = kiln('logits', '--model', dir, '--tokens', g.ids.data.join(','), '--backend', backend, '--json');
      expect(r.code, r.err).toBe(0);
      const { logits } = JSON.parse(r.out);
      expect(logits.length).toBe(g.ids.data.length);
      assertClose(logits.flat(), g.logits.data, { atol: backend === 'wasm' ? 1e-4 : 1e-3, rtol: 0 }, `logits ${backend}`);
    }
  });

  it('generate streams the greedy continuation and reports tokens/s', () => {
    const want = g.greedy.data.slice(g.ids.data.length);
    const r = kiln('generate', '--model', dir, '--prompt', words(g.ids.data), '--max-tokens', String(want.length));
    expect(r.code, r.err).toBe(0);
    expect(r.out.trim()).toBe(words(want));
    expect(r.err).toMatch(/\d+ tokens in [\d.]+ s; decode [\d.]+ tokens\/s; finish: length/);
  });

  it('perplexity equals exp(mean NLL) computed from the PyTorch logits', () => {
    const file = join(dir, 'text.txt');
    writeFileSync(file, words(g.ids.data));
    const r = kiln('perplexity', '--model', dir, '--file', file);
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out);
    const V = g.logits.shape[2];
    const T = g.ids.data.length;
    let nll = 0;
    for (let t = 0; t < T - 1; t++) {
      const row = g.logits.data.slice(t * V, (t + 1) * V) as number[];
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
      nll += lse - row[g.ids.data[t + 1]];
    }
    expect(out.scored).toBe(T - 1);
    assertClose([out.perplexity], [Math.exp(nll / (T - 1))], { atol: 1e-4, rtol: 1e-4 }, 'perplexity');
  });
});

describe('kiln chat', () => {
  it('answers each stdin line through the chat template, keeping the conversation', () => {
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: '{% for m in messages %}{{ m.content }} {% endfor %}' }));
    const r = spawnSync(process.execPath, [join(root, 'bin/kiln.mjs'), 'chat', '--model', dir, '--max-tokens', '3', '--temperature', '0'], { input: 'w1 w5 w12\nw3 w3\n', encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBe(2);
    // the first reply is the greedy continuation of the first line
    const want = g.greedy.data.slice(g.ids.data.length, g.ids.data.length + 3);
    const first = spawnSync(process.execPath, [join(root, 'bin/kiln.mjs'), 'generate', '--model', dir, '--prompt', 'w1 w5 w12', '--max-tokens', '3'], { encoding: 'utf8' });
    expect(lines[0].trim()).toBe(first.stdout.trim());
    expect(want.length).toBe(3);
  });
});

describe('kiln generate with quantized weights', () => {
  it('--quantize q8_0 streams what the library generates with the same options', async () => {
    const { loadModel } = await import('../../src/models/load.js');
    const { generateText } = await import('../../src/generation/generate.js');
    const file = join(root, 'tests/golden/checkpoints/gguf/tiny-llama.gguf');
    const r = kiln('generate', '--model', file, '--prompt', 'This License applies', '--max-tokens', '8', '--quantize', 'q8_0');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/8 tokens in/);
    const lm = await loadModel(file, { quantize: 'q8_0' });
    let text = '';
    for await (const c of generateText(lm.model, lm.tokenizer!, 'This License applies', { maxTokens: 8, temperature: 0 })) text += c.text;
    expect(r.out).toBe(text + '\n');
    expect(kiln('generate', '--model', file, '--prompt', 'x', '--quantize', 'q3').err).toMatch(/--quantize must be q8_0, q4_0 or none/);
  });
});
