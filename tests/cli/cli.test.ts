// The built CLI (bin/kiln.mjs -> dist/cli.js) as a user meets it: flags checked against each
// command's table (did-you-mean), one-line errors with exit codes, the input size cap, GGUF
// tokenizers, the default backend, and a chat longer than the model's context.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tokenizerFiles } from '../tokenizers/fixtures.js';

const root = new URL('../..', import.meta.url).pathname;
const tmp = join(root, '.cache', 'cli-errors');
mkdirSync(tmp, { recursive: true });
const kiln = (args: string[], o: { input?: string; env?: Record<string, string> } = {}) => {
  const r = spawnSync(process.execPath, [join(root, 'bin/kiln.mjs'), ...args], { encoding: 'utf8', input: o.input ?? '', env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', ...o.env } });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
};
/** The one line of stderr, checked to be exactly one line with one 'kiln:' prefix. */
const oneLine = (err: string): string => {
  expect(err.endsWith('\n') && err.indexOf('\n') === err.length - 1, `one line: ${JSON.stringify(err)}`).toBe(true);
  expect(err.startsWith('kiln: ') && !err.slice(6).includes('kiln:'), `one prefix: ${err}`).toBe(true);
  return err.slice(6, -1);
};

// the llama conformance checkpoint (context 32) with a word-level tokenizer over its 40 ids
const model = join(tmp, 'model');
mkdirSync(model, { recursive: true });
const ckpt = join(root, 'tests/golden/checkpoints/llama');
for (const f of readdirSync(ckpt)) copyFileSync(join(ckpt, f), join(model, f));
writeFileSync(join(model, 'tokenizer.json'), JSON.stringify({ model: { type: 'WordLevel', vocab: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`w${i}`, i])), unk_token: 'w0' }, pre_tokenizer: { type: 'WhitespaceSplit' } }));
writeFileSync(join(model, 'tokenizer_config.json'), JSON.stringify({ chat_template: '{% for m in messages %}{{ m.content }} {% endfor %}' }));
const words = (ids: number[]): string => ids.map((i) => `w${i}`).join(' ');

describe('flags', () => {
  it('an unknown flag or command is a usage error (exit 2) with a did-you-mean hint', () => {
    const r = kiln(['generate', '--model', model, '--prompt', 'w1', '--max-token', '3']);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(oneLine(r.err)).toBe('unknown flag --max-token; did you mean --max-tokens? (kiln generate --help lists its flags)');
    expect(oneLine(kiln(['tokenize', '--tokeniser', 'x', '--text', 'a']).err)).toContain('did you mean --tokenizer?');
    expect(oneLine(kiln(['pack', '--seqlen', '8']).err)).toContain('did you mean --seq-len?');
    // nothing near: no guess, still the list's pointer
    expect(oneLine(kiln(['logits', '--frobnicate']).err)).toBe('unknown flag --frobnicate (kiln logits --help lists its flags)');
    const c = kiln(['genrate', '--model', model]);
    expect(c.code).toBe(2);
    expect(oneLine(c.err)).toBe("unknown command 'genrate'; did you mean 'generate'? (kiln --help lists the commands)");
    expect(oneLine(kiln(['generate', '--prompt', 'x']).err)).toBe('--model is required (kiln generate --help)');
    expect(oneLine(kiln(['generate', '--model', model, '--prompt']).err)).toBe('--prompt needs a value (S)');
    expect(oneLine(kiln(['generate', '--model', model, 'stray']).err)).toContain('unexpected argument "stray"');
    expect(oneLine(kiln(['info', '--json', '--json']).err)).toBe('--json is given twice');
  });

  it('--tokens and integer flags take decimal integers only', () => {
    const bad: [string, string][] = [
      ['0x10', 'entry 0 of "0x10" is "0x10"'],
      ['1e3', 'entry 0 of "1e3" is "1e3"'],
      ['1,,2', 'entry 1 of "1,,2" is ""'],
      ['1,2,', 'entry 2 of "1,2," is ""'],
      ['-1', 'entry 0 of "-1" is "-1"'],
      ['1.5', 'entry 0 of "1.5" is "1.5"'],
    ];
    for (const [v, want] of bad) {
      const r = kiln(['logits', '--model', model, `--tokens=${v}`]);
      expect(r.code, v).toBe(2);
      expect(oneLine(r.err)).toBe(`--tokens: ${want}, not a token id (a decimal integer)`);
    }
    expect(oneLine(kiln(['logits', '--model', model, '--tokens', ' ']).err)).toBe('--tokens is empty, got " "');
    for (const v of ['0x10', '1e3', '', '-3', '2.0', '+4']) expect(oneLine(kiln(['generate', '--model', model, '--prompt', 'w1', `--max-tokens=${v}`]).err)).toBe(`--max-tokens must be a decimal integer >= 0, got ${JSON.stringify(v)}`);
    expect(oneLine(kiln(['generate', '--model', model, '--prompt', 'w1', '--backend', 'cuda']).err)).toBe('--backend must be auto, wasm or webgpu, got "cuda"');
    expect(oneLine(kiln(['generate', '--model', model, '--prompt', 'w1', '--temperature', 'hot']).err)).toBe('--temperature must be a number, got "hot"');
  });

  it('--help documents each command from its table, GGUF paths included', () => {
    const top = kiln(['--help']);
    expect(top.code).toBe(0);
    for (const c of ['info', 'demo', 'tokenize', 'detokenize', 'train-tokenizer', 'pack', 'generate', 'chat', 'logits', 'perplexity']) expect(top.out).toContain(`kiln ${c} `);
    expect(top.out).toContain('--model takes a Hugging Face folder, a .gguf file (told by its magic bytes), a URL of either, or a\nHugging Face repo id ORG/NAME');
    const g = kiln(['generate', '--help']);
    expect(g.code).toBe(0);
    expect(g.out).toMatch(/^usage: kiln generate --model DIR\|FILE\.gguf --prompt S \[flags\]/);
    for (const f of ['--max-tokens N', '--temperature T', '--top-p P', '--top-k K', '--seed N', '--chat', '--backend auto|wasm|webgpu', '--quantize q8_0|q4_0|none', '--dtype f32|f16|bf16']) expect(g.out).toContain(f);
    expect(kiln(['help', 'tokenize']).out).toContain('--tokenizer FILE|DIR|FILE.gguf');
    expect(kiln(['pack', '-h']).out).toContain('--max-file-size BYTES');
    expect(kiln([]).code).toBe(2);
  });
});

describe('errors are one line', () => {
  it('filesystem errors name the path (ENOENT, EISDIR, EEXIST), exit 1', () => {
    const tok = tokenizerFiles('gpt2').json;
    const text = join(tmp, 'text.txt');
    writeFileSync(text, 'hello world\n');
    const a = kiln(['tokenize', '--tokenizer', tok, '--file', join(tmp, 'missing.txt')]);
    expect(a.code).toBe(1);
    expect(oneLine(a.err)).toBe(`${join(tmp, 'missing.txt')}: no such file or folder (stat)`);
    expect(oneLine(kiln(['tokenize', '--tokenizer', tok, '--file', tmp]).err)).toBe(`${tmp}: is a folder, not a file`);
    const dir = join(tmp, 'a-folder');
    mkdirSync(dir, { recursive: true });
    const b = kiln(['train-tokenizer', '--files', text, '--vocab-size', '300', '--out', dir]);
    expect(b.code).toBe(1);
    expect(oneLine(b.err)).toBe(`${dir}: is a folder, not a file (open)`);
    const c = kiln(['pack', '--tokenizer', tok, '--file', text, '--seq-len', '8', '--out', text]);
    expect(c.code).toBe(1);
    expect(oneLine(c.err)).toBe(`${text}: already exists (mkdir)`);
    expect(oneLine(kiln(['train-tokenizer', '--files', text, '--vocab-size', '300', '--out', join(tmp, 'no/such/dir/t.json')]).err)).toBe(`${join(tmp, 'no/such/dir/t.json')}: no such file or folder (open)`);
  });

  it("a library error keeps its op but not a second 'kiln' prefix: pack --seq-len 1000000000", () => {
    const text = join(tmp, 'docs.txt');
    writeFileSync(text, 'one document\n\nanother one\n');
    const r = kiln(['pack', '--tokenizer', tokenizerFiles('gpt2').json, '--file', text, '--seq-len', '1000000000', '--out', join(tmp, 'packed')]);
    expect(r.code).toBe(1);
    expect(oneLine(r.err)).toMatch(/^packSequences: packing 2 documents \(\d+ tokens\) into rows of 1000000000 needs 3\.73 GiB of packer memory, over its 2\.00 GiB limit/);
  });

  it('input files over the size cap are refused; --max-file-size or KILN_MAX_FILE_SIZE raises it', () => {
    const tok = model; // its word-level tokenizer.json is small
    const text = join(tmp, 'big.txt');
    writeFileSync(text, 'word '.repeat(400)); // 2000 bytes
    const r = kiln(['tokenize', '--tokenizer', tok, '--file', text, '--max-file-size', '1K']);
    expect(r.code).toBe(1);
    expect(oneLine(r.err)).toBe(`${text} is 2000 bytes, over the input cap of 1024 bytes (raise it with --max-file-size or KILN_MAX_FILE_SIZE)`);
    expect(oneLine(kiln(['tokenize', '--tokenizer', tok, '--file', text], { env: { KILN_MAX_FILE_SIZE: '1999' } }).err)).toContain('is 2000 bytes, over the input cap of 1999 bytes');
    // the tokenizer.json itself is under the cap too
    expect(oneLine(kiln(['tokenize', '--tokenizer', tokenizerFiles('gpt2').json, '--text', 'x', '--max-file-size', '64K']).err)).toMatch(/gpt2\.json is [\d.]+ MiB, over the input cap of 65536 bytes/);
    const ok = kiln(['tokenize', '--tokenizer', tok, '--file', text, '--max-file-size', '2000', '--json']);
    expect(ok.code, ok.err).toBe(0);
    expect(JSON.parse(ok.out).length).toBe(400);
    expect(kiln(['tokenize', '--tokenizer', tok, '--file', text, '--json'], { env: { KILN_MAX_FILE_SIZE: '2M' } }).code).toBe(0);
    expect(oneLine(kiln(['tokenize', '--tokenizer', tok, '--file', text, '--max-file-size', 'lots']).err)).toBe('--max-file-size must be a byte count such as 1048576, 512M or 4G, got "lots"');
  });
});

describe('GGUF tokenizer and model commands', () => {
  it('tokenize reads the tokenizer in a GGUF file: the Rust library gives the same ids from its vocab and merges', async () => {
    const g = JSON.parse((await import('node:fs')).readFileSync(join(root, 'tests/golden/checkpoints/gguf/golden.json'), 'utf8'));
    const tk = createRequire(import.meta.url)('@anush008/tokenizers');
    const bl = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
    const vocab = Object.fromEntries((g.tokens as string[]).map((t, i) => [t, i]));
    const nat = tk.Tokenizer.fromString(JSON.stringify({ version: '1.0', added_tokens: [], normalizer: null, pre_tokenizer: bl, post_processor: null, decoder: bl, model: { type: 'BPE', vocab, merges: g.merges } }));
    const lines = ['This License applies to any program', 'naïve 😀 42'];
    const file = join(tmp, 'gguf-lines.txt');
    writeFileSync(file, lines.join('\n') + '\n');
    const r = kiln(['tokenize', '--tokenizer', join(root, 'tests/golden/checkpoints/gguf/tiny-llama.gguf'), '--file', file, '--lines', '--json']);
    expect(r.code, r.err).toBe(0);
    const want = await Promise.all(lines.map(async (l) => (await nat.encode(l, null, { addSpecialTokens: false })).getIds()));
    expect(r.out.trim().split('\n').map((l) => JSON.parse(l))).toEqual(want);
  });

  it('generate runs on the backend kiln info reports for auto, unless --backend says otherwise', { timeout: 60_000 }, () => {
    const probe = JSON.parse(kiln(['info', '--json']).out);
    const auto = probe.webgpu.available ? 'webgpu' : 'wasm';
    const r = kiln(['generate', '--model', model, '--prompt', 'w1 w5 w12', '--max-tokens', '2']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(new RegExp(`finish: length; backend ${auto}\\]`));
    const w = kiln(['generate', '--model', model, '--prompt', 'w1 w5 w12', '--max-tokens', '2', '--backend', 'wasm']);
    expect(w.err).toMatch(/backend wasm\]/);
    expect(w.out).toBe(r.out); // greedy: the same words on either backend
  });

  it('chat keeps going past the context: the oldest turns are dropped, a message too long alone is skipped', { timeout: 60_000 }, () => {
    // context 32, 3-token replies: three short turns, then 24 words that only fit alone
    const long = words(Array.from({ length: 24 }, (_, i) => (i * 7) % 40));
    const tooLong = words(Array.from({ length: 40 }, (_, i) => i));
    const input = ['w1 w5 w12', 'w3 w3', 'w2 w4 w6', long, tooLong, 'w9 w9'].join('\n') + '\n';
    const r = kiln(['chat', '--model', model, '--max-tokens', '3', '--temperature', '0', '--backend', 'wasm'], { input });
    expect(r.code, r.err).toBe(0);
    const replies = r.out.trim().split('\n');
    expect(replies.length).toBe(5); // every line but the one that cannot fit
    expect(r.err).toContain('[dropped the oldest 3 turns to fit the 32-token context]');
    expect(r.err).toContain('kiln: that message takes 40 tokens with the template; the context holds 32: not sent');
    // with every earlier turn gone, the reply to the long line is the plain continuation of it
    const alone = kiln(['generate', '--model', model, '--prompt', long, '--max-tokens', '3', '--backend', 'wasm']);
    expect(replies[3]).toBe(alone.out.trim());
  });

  it('chat in a terminal echoes what the user types', { timeout: 60_000 }, () => {
    // script(1) gives the command a pseudo-terminal; the typed line must show up in what it prints
    const cmd = `${process.execPath} ${join(root, 'bin/kiln.mjs')} chat --model ${model} --max-tokens 2 --temperature 0 --backend wasm`;
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', input: 'w1 w5 w12\n\x04', env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' }, timeout: 50_000 });
    // readline redraws the prompt and the line (cursor moves stripped); without echo only the reply follows '> '
    expect(r.stdout.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')).toContain('> w1 w5 w12');
  });
});
