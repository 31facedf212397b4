// Conformance: tiny random Hugging Face checkpoints (tests/golden/checkpoints.py writes them in
// each architecture's own names, layouts and dtypes) loaded by loadModel, against PyTorch
// references written from the Hugging Face modeling code: logits for batch 1 and for a
// left-padded batch, and the greedy continuation. Then the bad checkpoints.
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { KilnError } from '../../src/core/errors.js';
import { loadModel } from '../../src/models/load.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';

interface Enc { shape: number[]; dtype: 'f32' | 'i32'; data: number[] }
const dir = new URL('../golden/checkpoints/', import.meta.url).pathname;
const ARCHS = ['llama', 'mistral', 'qwen2', 'gemma', 'phi3', 'mixtral', 'gpt2'];
const golden = (a: string): Record<string, Enc> => JSON.parse(readFileSync(join(dir, a, 'golden.json'), 'utf8'));
const ids = (e: Enc) => k.tensor(e.data, { shape: e.shape, dtype: 'i32' });
const maxAbs = (xs: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < xs.length; i++) m = Math.max(m, Math.abs(xs[i]));
  return m;
};

describeBackends('Hugging Face checkpoints vs PyTorch', ({ name }) => {
  // logits within 1e-4 (wasm) / 1e-3 (WebGPU) of the largest logit
  const rel = name === 'wasm' ? 1e-4 : 1e-3;
  for (const arch of ARCHS) {
    it(`${arch}: logits (batch 1 and a left-padded batch) and the greedy continuation`, async () => {
      const g = golden(arch);
      const { model, modelType } = await loadModel(join(dir, arch));
      expect(modelType).toBe(arch);
      const { logits } = model.call({ inputIds: ids(g.ids) }) as { logits: Tensor };
      expect(logits.shape).toEqual(g.logits.shape);
      assertClose(await logits.toArray(), g.logits.data, { atol: rel * maxAbs(g.logits.data), rtol: 0 }, `${arch} logits`);

      const padded = model.call({ inputIds: ids(g.paddedIds), attentionMask: ids(g.paddedMask), positionIds: ids(g.paddedPositions) }) as { logits: Tensor };
      const got = await padded.logits.toArray();
      const [B, T, V] = g.paddedLogits.shape;
      const keepGot: number[] = [];
      const keepWant: number[] = [];
      for (let b = 0; b < B; b++)
        for (let t = 0; t < T; t++) {
          if (!g.paddedMask.data[b * T + t]) continue; // padding rows are not compared
          for (let v = 0; v < V; v++) {
            keepGot.push(got[(b * T + t) * V + v]);
            keepWant.push(g.paddedLogits.data[(b * T + t) * V + v]);
          }
        }
      assertClose(keepGot, keepWant, { atol: rel * maxAbs(keepWant), rtol: 0 }, `${arch} padded logits`);

      // greedy: full forwards, argmax of the last position
      let seq = [...g.ids.data];
      const want = g.greedy.data;
      while (seq.length < want.length) {
        const { logits: l } = model.call({ inputIds: k.tensor(seq, { shape: [1, seq.length], dtype: 'i32' }) }) as { logits: Tensor };
        const row = (await l.toArray()).slice((seq.length - 1) * V);
        seq.push(row.indexOf(Math.max(...row)));
      }
      expect(seq).toEqual(want);
    });
  }
});

describe('bad checkpoints', () => {
  const tmp = new URL('../../.cache/bad-checkpoints/', import.meta.url).pathname;
  const variant = (name: string, edit: (d: string) => void): string => {
    const d = join(tmp, name);
    mkdirSync(d, { recursive: true });
    for (const f of readdirSync(join(dir, 'mistral'))) copyFileSync(join(dir, 'mistral', f), join(d, f));
    edit(d);
    return d;
  };
  const fails = async (d: string): Promise<KilnError> => {
    try {
      await loadModel(d);
    } catch (e) {
      expect(e).toBeInstanceOf(KilnError);
      return e as KilnError;
    }
    throw new Error('expected loadModel to fail');
  };
  const st = (d: string): Buffer => readFileSync(join(d, 'model.safetensors'));

  it('a truncated file, a header that lies, a missing tensor, a wrong shape, an unknown model_type', async () => {
    const truncated = variant('truncated', (d) => writeFileSync(join(d, 'model.safetensors'), st(d).subarray(0, st(d).length - 100)));
    expect((await fails(truncated)).message).toMatch(/model\.safetensors: tensor '.*': data_offsets end at \d+, past the \d+ bytes of data/);

    const tiny = variant('tiny', (d) => writeFileSync(join(d, 'model.safetensors'), st(d).subarray(0, 5)));
    expect((await fails(tiny)).message).toMatch(/truncated: 5 bytes/);

    const lying = variant('lying', (d) => {
      const b = st(d);
      const n = Number(b.readBigUInt64LE(0));
      const h = JSON.parse(b.subarray(8, 8 + n).toString());
      const names = Object.keys(h).filter((x) => x !== '__metadata__');
      h[names[1]].data_offsets = h[names[0]].data_offsets; // two tensors on the same bytes
      let s = JSON.stringify(h);
      s += ' '.repeat(Math.max(0, n - s.length));
      const hb = Buffer.from(s);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(hb.length));
      writeFileSync(join(d, 'model.safetensors'), Buffer.concat([len, hb, b.subarray(8 + n)]));
    });
    expect((await fails(lying)).message).toMatch(/overlap at .*: the header lies about offsets|needs \d+ bytes but data_offsets span/);

    // the header length one byte short: the header still parses (its padding is spaces) but every
    // tensor would be read a byte early; the data no longer ends where the file does
    const shifted = variant('shifted', (d) => {
      const b = Buffer.from(st(d));
      const n = Number(b.readBigUInt64LE(0));
      expect(b[8 + n - 1]).toBe(0x20); // the writer pads its header with spaces
      b.writeBigUInt64LE(BigInt(n - 1), 0);
      writeFileSync(join(d, 'model.safetensors'), b);
    });
    expect((await fails(shifted)).message).toMatch(/the tensors end at byte \d+ of the data, but the file holds \d+/);

    const shape = variant('shape', (d) => {
      const c = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
      c.intermediate_size = 20;
      writeFileSync(join(d, 'config.json'), JSON.stringify(c));
    });
    expect((await fails(shape)).message).toMatch(/tensor 'model\.layers\.0\.mlp\.(gate|up|down)_proj\.weight' is \[.*\] but the config makes/);

    const missing = variant('missing', (d) => {
      const c = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
      c.num_hidden_layers = 3;
      writeFileSync(join(d, 'config.json'), JSON.stringify(c));
    });
    expect((await fails(missing)).message).toMatch(/num_hidden_layers: the config says 3 layers but the weights hold layers 0\.\.1/);

    const unknown = variant('unknown', (d) => {
      const c = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
      c.model_type = 'mamba';
      writeFileSync(join(d, 'config.json'), JSON.stringify(c));
    });
    expect((await fails(unknown)).message).toMatch(/unsupported model_type "mamba"; supported: llama, mistral, qwen2, gemma, gpt2, phi3, mixtral/);
  });
});

describeBackends('weights stored as f16 / bf16', (ctx) => {
  it('halve the weights\' device memory; logits stay within the storage rounding', async () => {
    const backend = ctx.backend;
    const g = golden('mistral');
    const before = backend.memory().liveBytes;
    const f32 = await loadModel(join(dir, 'mistral'));
    const f32Bytes = backend.memory().liveBytes - before;
    for (const dtype of ['f16', 'bf16'] as const) {
      const at = backend.memory().liveBytes;
      const { model } = await loadModel(join(dir, 'mistral'), { dtype });
      const bytes = backend.memory().liveBytes - at;
      expect(bytes / f32Bytes).toBeLessThan(0.55);
      for (const [, p] of model.namedParameters()) expect(p.dtype).toBe(dtype);
      const { logits } = model.call({ inputIds: ids(g.ids) }) as { logits: Tensor };
      assertClose(await logits.toArray(), g.logits.data, { atol: (dtype === 'f16' ? 5e-3 : 4e-2) * maxAbs(g.logits.data), rtol: 0 }, `${dtype} logits`);
    }
    void f32;
  });

  it('an F16 / BF16 file kept in its own dtype goes over byte for byte: the reference logits', async () => {
    for (const [arch, dtype] of [['qwen2', 'f16'], ['gemma', 'bf16']] as const) {
      const g = golden(arch);
      const { model } = await loadModel(join(dir, arch), { dtype });
      for (const [, p] of model.namedParameters()) expect(p.dtype).toBe(dtype);
      const { logits } = model.call({ inputIds: ids(g.ids) }) as { logits: Tensor };
      assertClose(await logits.toArray(), g.logits.data, { atol: (ctx.name === 'wasm' ? 1e-4 : 1e-3) * maxAbs(g.logits.data), rtol: 0 }, `${arch} as ${dtype}`);
    }
  });
});
