// The tokenizer commands of the built CLI (dist/cli.js), against the Rust reference.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tokenizerFiles } from './fixtures.js';

const tk = createRequire(import.meta.url)('@anush008/tokenizers');
const root = new URL('../..', import.meta.url).pathname;
const tmp = join(root, '.cache', 'cli-test');
mkdirSync(tmp, { recursive: true });
const kiln = (...args: string[]): { code: number; out: string; err: string } => {
  const r = spawnSync(process.execPath, [join(root, 'bin/kiln.mjs'), ...args], { encoding: 'utf8' });
  return { code: r.status ?? 1, out: r.stdout, err: r.stderr };
};

describe('kiln tokenize / detokenize / train-tokenizer / pack', () => {
  it('tokenize --lines --json prints the reference ids for each line; detokenize inverts it', async () => {
    const lines = ['Hello world', '  leading spaces and 😀 emoji', 'naïve café — 東京', ''];
    const file = join(tmp, 'lines.txt');
    writeFileSync(file, lines.join('\n') + '\n');
    const { json } = tokenizerFiles('llama3');
    const r = kiln('tokenize', '--tokenizer', json, '--file', file, '--lines', '--json');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const got = r.out.trim().split('\n').map((l) => JSON.parse(l));
    const nat = tk.Tokenizer.fromFile(json);
    const want = await Promise.all(lines.map(async (l) => (await nat.encode(l, null, { addSpecialTokens: false })).getIds()));
    expect(got).toEqual(want);
    const d = kiln('detokenize', '--tokenizer', json, '--ids', got[1].join(','));
    expect(d.out).toBe(lines[1] + '\n');
    const special = kiln('tokenize', '--tokenizer', tokenizerFiles('bert').json, '--text', 'hi', '--json');
    expect(JSON.parse(special.out)).toEqual((await tk.Tokenizer.fromFile(tokenizerFiles('bert').json).encode('hi', null, { addSpecialTokens: true })).getIds());
  });

  it('train-tokenizer writes a tokenizer.json the reference loads; pack reports its efficiency', async () => {
    const out = join(tmp, 'trained.json');
    const r = kiln('train-tokenizer', '--files', '/usr/share/common-licenses/GPL-3', '/usr/share/common-licenses/Apache-2.0', '--vocab-size', '1500', '--special-tokens', '<|endoftext|>', '--out', out);
    expect(r.code).toBe(0);
    const nat = tk.Tokenizer.fromFile(out);
    expect(nat.getVocabSize(true)).toBe(1500);
    const ids = JSON.parse(kiln('tokenize', '--tokenizer', out, '--text', 'the GNU General Public License<|endoftext|>', '--json').out);
    expect(ids).toEqual((await nat.encode('the GNU General Public License<|endoftext|>', null)).getIds());

    const data = join(tmp, 'data.jsonl');
    writeFileSync(data, Array.from({ length: 60 }, (_, i) => JSON.stringify({ text: `Document ${i}: ` + 'words '.repeat(5 + ((i * 37) % 90)) })).join('\n'));
    const dir = join(tmp, 'packed');
    const p = kiln('pack', '--tokenizer', out, '--file', data, '--seq-len', '128', '--out', dir, '--validation', '0.1');
    expect(p.code).toBe(0);
    expect(p.out).toMatch(/train: 54 documents, \d+ tokens -> \d+ rows of 128; packing efficiency \d+\.\d+%/);
    const report = JSON.parse(readFileSync(join(dir, 'packing.json'), 'utf8'));
    expect(report.train.efficiency).toBeGreaterThan(0.9);
    // safetensors: header length, then the four (rows, 128) int32 tensors
    const st = readFileSync(join(dir, 'train.safetensors'));
    const n = Number(st.readBigUInt64LE(0));
    const header = JSON.parse(st.subarray(8, 8 + n).toString('utf8'));
    expect(Object.keys(header).sort()).toEqual(['__metadata__', 'document_ids', 'input_ids', 'labels', 'position_ids']);
    expect(header.input_ids.shape).toEqual([report.train.rows, 128]);
    expect(st.length).toBe(8 + n + 4 * 4 * report.train.rows * 128);
  });

  it('bad input is one line naming the problem, exit code 1 (2 for a usage error)', () => {
    const r = kiln('tokenize', '--tokenizer', '/nonexistent', '--text', 'x');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/--tokenizer \/nonexistent: no such file/);
    const bad = join(tmp, 'bad.json');
    writeFileSync(bad, JSON.stringify({ model: { type: 'BPE', vocab: { a: 0 }, merges: ['a b'] } }));
    const b = kiln('tokenize', '--tokenizer', bad, '--text', 'x');
    expect(b.code).toBe(1);
    expect(b.err).toContain('model.merges[0]');
    const d = kiln('detokenize', '--tokenizer', tokenizerFiles('gpt2').json, '--ids', '1,x');
    expect(d.code).toBe(2);
    expect(d.err).toBe('kiln: --ids: entry 1 of "1,x" is "x", not a token id (a decimal integer)\n');
  });
});
