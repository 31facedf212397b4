// Config and GGUF hyperparameters are checked before anything is allocated: each bad field of the
// tiny Llama checkpoint's config.json (and of the tiny GGUF's header and tokenizer metadata) is a
// typed error naming the file and key, and the backend's live memory is what it was before.
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { KilnError } from '../../src/core/errors.js';
import { loadGGUF, loadModel } from '../../src/models/load.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';

const golden = new URL('../golden/checkpoints/', import.meta.url).pathname;
const llama = join(golden, 'llama');
const g = JSON.parse(readFileSync(join(llama, 'golden.json'), 'utf8'));
const tmp = new URL('../../.cache/validation/', import.meta.url).pathname;
rmSync(tmp, { recursive: true, force: true });

/** The llama checkpoint with its config.json edited. */
function variant(name: string, edit: (c: Record<string, unknown>) => void, from = llama): string {
  const d = join(tmp, name);
  mkdirSync(d, { recursive: true });
  for (const f of readdirSync(from)) copyFileSync(join(from, f), join(d, f));
  const c = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
  edit(c);
  writeFileSync(join(d, 'config.json'), JSON.stringify(c));
  return d;
}

/** The typed error a load raises; the backend's live bytes must be unchanged by it. */
async function refused(load: () => Promise<unknown>, backend: k.Backend): Promise<KilnError> {
  const before = backend.memory().liveBytes;
  const t0 = performance.now();
  const e = await load().then(() => null, (x: unknown) => x);
  expect(e, 'expected the load to fail').toBeInstanceOf(KilnError);
  expect(backend.memory().liveBytes, 'live bytes after the refused load').toBe(before);
  expect(performance.now() - t0, 'refused quickly').toBeLessThan(1000);
  return e as KilnError;
}

const BAD_CONFIGS: [string, (c: Record<string, unknown>) => void, RegExp][] = [
  ['layers 0', (c) => (c.num_hidden_layers = 0), /num_hidden_layers: must be an integer in 1\.\.\d+, got 0/],
  ['layers -1', (c) => (c.num_hidden_layers = -1), /num_hidden_layers: must be an integer in 1\.\.\d+, got -1/],
  ['layers 1.5', (c) => (c.num_hidden_layers = 1.5), /num_hidden_layers: must be an integer in 1\.\.\d+, got 1\.5/],
  ['layers 2^32', (c) => (c.num_hidden_layers = 2 ** 32), /num_hidden_layers: must be an integer in 1\.\.\d+, got 4294967296/],
  ['layers 1e9', (c) => (c.num_hidden_layers = 1e9), /num_hidden_layers: the config says 1000000000 layers but the weights hold layers 0\.\.1/],
  ['layers 1 of 2', (c) => (c.num_hidden_layers = 1), /num_hidden_layers: the config says 1 layers but the weights hold layers 0\.\.1/],
  ['layers "2"', (c) => (c.num_hidden_layers = '2'), /num_hidden_layers: expected a number, got "2"/],
  ['positions 2^31', (c) => (c.max_position_embeddings = 2 ** 31), /max_position_embeddings: must be an integer in 1\.\.134217728, got 2147483648/],
  ['theta 0', (c) => (c.rope_theta = 0), /rope_theta: must be > 0.*got 0/],
  ['theta -1', (c) => (c.rope_theta = -1), /rope_theta: must be > 0.*got -1/],
  ['eps -1', (c) => (c.rms_norm_eps = -1), /rms_norm_eps: must be in 0\.\.1.*got -1/],
  ['eps 1e300', (c) => (c.rms_norm_eps = 1e300), /rms_norm_eps: must be in 0\.\.1.*got 1e\+300/],
  ['linear scaling without factor', (c) => (c.rope_scaling = { rope_type: 'linear' }), /rope_scaling\.factor: a linear scaling needs a factor > 0, got undefined/],
  ['llama3 scaling without low_freq_factor', (c) => (c.rope_scaling = { rope_type: 'llama3', factor: 8, high_freq_factor: 4, original_max_position_embeddings: 16 }), /rope_scaling\.low_freq_factor: llama3 scaling needs low_freq_factor > 0/],
  ['llama3 scaling with high <= low', (c) => (c.rope_scaling = { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 4, original_max_position_embeddings: 16 }), /rope_scaling\.high_freq_factor: .*got 4/],
  ['llama3 scaling without original positions', (c) => (c.rope_scaling = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 }), /rope_scaling\.original_max_position_embeddings: llama3 scaling needs/],
  ['head_dim 1e9', (c) => (c.head_dim = 1e9), /head_dim: must be an integer in 1\.\.32768, got 1000000000/],
  ['kv heads not dividing', (c) => (c.num_key_value_heads = 3), /num_key_value_heads: must divide the \d+ attention heads, got 3/],
  ['vocab off by one', (c) => (c.vocab_size = (c.vocab_size as number) + 1), /vocab_size: \d+, but 'model\.embed_tokens\.weight' has \d+ rows/],
];

describeBackends('config.json checked before allocation', (ctx) => {
  it("a router weight that is not a number (Mixtral's router_aux_loss_coef \"1\") is a config error", async () => {
    for (const v of ['1', -1]) {
      const d = variant(`router-${String(v)}`, (c) => (c.router_aux_loss_coef = v), join(golden, 'mixtral'));
      const e = await refused(() => loadModel(d, { backend: ctx.backend }), ctx.backend);
      expect(e.message).toMatch(/router_aux_loss_coef: must be a finite number >= 0, got/);
    }
  });

  it('each bad field is a config error naming config.json and its key; live memory unchanged', async () => {
    const backend = ctx.backend;
    for (const [name, edit, msg] of BAD_CONFIGS) {
      const d = variant(name.replace(/\W+/g, '-'), edit);
      const e = await refused(() => loadModel(d, { backend }), backend);
      expect(e.code, name).toBe('config');
      expect(e.message, name).toContain(`${d}/config.json: `);
      expect(e.message, name).toMatch(msg);
    }
  });

  it('learned positions are bounded by their table: GPT-2 n_positions 2^26 is refused before allocation', async () => {
    const backend = ctx.backend;
    const d = join(tmp, 'gpt2-positions');
    mkdirSync(d, { recursive: true });
    copyFileSync(join(golden, 'gpt2', 'model.safetensors'), join(d, 'model.safetensors'));
    writeFileSync(join(d, 'config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(golden, 'gpt2', 'config.json'), 'utf8')), n_positions: 2 ** 26 }));
    const e = await refused(() => loadModel(d, { backend }), backend);
    expect(e.message).toMatch(/tensor '(transformer\.)?wpe\.weight' is \[\d+, \d+\] but the config makes model\.embed_positions\.weight \[67108864, \d+\]/);
  });

  it('a shape the config makes that the tensors do not have (intermediate_size 1e9) is refused before allocation', async () => {
    const backend = ctx.backend;
    const d = variant('intermediate-1e9', (c) => (c.intermediate_size = 1e9));
    const e = await refused(() => loadModel(d, { backend }), backend);
    expect(e.message).toMatch(/model\.layers\.0\.mlp\.(gate|up|down)_proj\.weight.*but the config makes .*1000000000/);
  });

  it('max_position_embeddings 2^26 loads without a table that long: the same logits, under 1 MB more device memory than 64 positions', async () => {
    const backend = ctx.backend;
    const before = backend.memory().liveBytes;
    const big = await loadModel(variant('positions-2e26', (c) => (c.max_position_embeddings = 2 ** 26)), { backend });
    const ids = k.tensor(g.ids.data, { shape: g.ids.shape, dtype: 'i32', backend });
    const { logits } = big.model.call({ inputIds: ids }) as { logits: Tensor };
    const grew = backend.memory().liveBytes - before;
    expect(grew).toBeLessThan(2 ** 20); // a 2^26-position table would be 2^26 * rd * 8 bytes
    assertClose(await logits.toArray(), g.logits.data, { atol: 1e-3, rtol: 1e-3 }, 'logits at 2^26 positions');
    expect(big.model.config.maxPositionEmbeddings).toBe(2 ** 26);
    big.model.dispose();
  });
});

// ---------------------------------------------------------------- GGUF

const ggufDir = join(golden, 'gguf');
const gguf = readFileSync(join(ggufDir, 'tiny-llama.gguf'));

/** A copy of the tiny GGUF with `patch` applied. */
function patched(patch: (b: Buffer) => void): Buffer {
  const b = Buffer.from(gguf);
  patch(b);
  return b;
}
/** The byte after a metadata key's name and its u32 value type. */
const valueAt = (b: Buffer, key: string): number => b.indexOf(Buffer.from(key)) + key.length + 4;

describeBackends('GGUF header and tokenizer checked before allocation', (ctx) => {
  it('a tensor count or alignment that disagrees with the data is a config error', async () => {
    const backend = ctx.backend;
    const cases: [string, Buffer, RegExp][] = [
      ['one tensor fewer', patched((b) => b.writeBigUInt64LE(b.readBigUInt64LE(8) - 1n, 8)), /bytes after the last tensor belong to no tensor: the header's tensor count/],
      ['alignment 64', patched((b) => b.writeUInt32LE(64, valueAt(b, 'general.alignment'))), /align/],
      ['alignment 3', patched((b) => b.writeUInt32LE(3, valueAt(b, 'general.alignment'))), /general\.alignment: must be a power of two/],
    ];
    for (const [name, bytes, msg] of cases) {
      const e = await refused(() => loadModel(bytes, { backend }), backend);
      expect(e.code, name).toBe('config');
      expect(e.message, name).toMatch(msg);
    }
  });

  it('malformed tokenizer metadata is a config error, not a model without its tokenizer', async () => {
    const backend = ctx.backend;
    const cases: [string, Buffer, RegExp][] = [
      ['no tokenizer.ggml.model', patched((b) => b.write('tokenizer.ggml.modex', b.indexOf('tokenizer.ggml.model'))), /tokenizer\.ggml\.model: missing or not a string/],
      ['bos out of range', patched((b) => b.writeUInt32LE(999, valueAt(b, 'tokenizer.ggml.bos_token_id'))), /tokenizer\.ggml\.bos_token_id: must be a token id in 0\.\.300, got 999/],
      ['a merge without its space', patched((b) => b.write('x', b.indexOf(Buffer.from('Ġ t')) + 2)), /tokenizer\.ggml\.merges: entry 0 is "Ġxt", not a "left right" pair/],
      ['a token type 9', patched((b) => b.writeInt32LE(9, valueAt(b, 'tokenizer.ggml.token_type') + 12)), /tokenizer\.ggml\.token_type: entry 0 is "9", not token types 0\.\.6/],
    ];
    for (const [name, bytes, msg] of cases) {
      const e = await refused(() => loadGGUF(bytes, { backend }), backend);
      expect(e.code, name).toBe('config');
      expect(e.message, name).toMatch(msg);
    }
  });

  it('GGUF hyperparameters go through the same validation: block_count 0 and 2, rms eps -1', async () => {
    const backend = ctx.backend;
    const cases: [string, Buffer, RegExp][] = [
      ['block_count 0', patched((b) => b.writeUInt32LE(0, valueAt(b, 'llama.block_count'))), /llama\.block_count: must be an integer in 1\.\.\d+, got 0/],
      ['block_count 2', patched((b) => b.writeUInt32LE(2, valueAt(b, 'llama.block_count'))), /llama\.block_count: the config says 2 layers but the weights hold layers 0\.\.0/],
      ['eps -1', patched((b) => b.writeFloatLE(-1, valueAt(b, 'llama.attention.layer_norm_rms_epsilon'))), /llama\.attention\.layer_norm_rms_epsilon: must be in 0\.\.1.*got -1/],
      ['theta 0', patched((b) => b.writeFloatLE(0, valueAt(b, 'llama.rope.freq_base'))), /llama\.rope\.freq_base: must be > 0/],
    ];
    for (const [name, bytes, msg] of cases) {
      const e = await refused(() => loadGGUF(bytes, { backend }), backend);
      expect(e.code, name).toBe('config');
      expect(e.message, name).toMatch(msg);
    }
  });
});

describeBackends('RoPE tables grow to the positions used', (ctx) => {
  it('2^26 max positions: a table of 4096 first; position 5000 is an index error until reserved, then matches cos/sin by hand', async () => {
    const backend = ctx.backend;
    const rope = new k.nn.RotaryEmbedding({ headDim: 4, theta: 100, maxPositionEmbeddings: 2 ** 26 });
    const x = k.tensor([1, 2, 3, 4], { shape: [1, 1, 1, 4], backend });
    const at = (p: number) => k.tensor([p], { dtype: 'i32', backend });
    const before = backend.memory().liveBytes;
    await rope.apply(x, at(0)).toArray();
    expect(backend.memory().liveBytes - before).toBeLessThan(4096 * 4 * 8 + 4096); // cos + sin for 4096 positions, not 2^26
    await expect((async () => rope.apply(x, at(5000)).toArray())()).rejects.toThrow(/an index (is|was) out of range/);
    rope.reserve(5001);
    const got = await rope.apply(x, at(5000)).toArray();
    // rotate-half: pairs (x0, x2), (x1, x3) at frequencies 1 and 100^-0.5
    const want = [0, 1].flatMap((i) => {
      const a = 5000 * 100 ** -(i / 2);
      return [[i, i + 2, Math.cos(a), Math.sin(a)]];
    });
    const v = [1, 2, 3, 4];
    const ref = new Array(4);
    for (const [i, j, c, s] of want) {
      ref[i] = v[i] * c - v[j] * s;
      ref[j] = v[j] * c + v[i] * s;
    }
    assertClose(got, ref, { atol: 1e-3, rtol: 1e-3 }, 'rope at 5000');
    rope.dispose();
  });

  it('theta 0 and a scaling without its factor are errors when the embedding is built directly too', () => {
    expect(() => new k.nn.RotaryEmbedding({ headDim: 4, theta: 0 })).toThrow(/theta must be a finite number > 0, got 0/);
    expect(() => new k.nn.RotaryEmbedding({ headDim: 4, scaling: { type: 'linear' } as never })).toThrow(/linear scaling needs a finite factor > 0, got undefined/);
  });
});
