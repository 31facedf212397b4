// exportStateDict through the name map: every tiny Hugging Face checkpoint comes back out with the
// file's own names, shapes and values (byte for byte where the file is F32) and reloads to
// bit-identical parameters; GGUF files come back out with llama.cpp's names, and in Hugging Face
// names and layouts (q/k rows un-permuted, Gemma norms as w) they reload through the HF loader to
// the PyTorch reference logits.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { KilnError } from '../../src/core/errors.js';
import { loadModel } from '../../src/models/load.js';
import { exportStateDict } from '../../src/models/export.js';
import { configToHF, type ModelType } from '../../src/models/hf.js';
import { GGUFFile } from '../../src/models/loaders/gguf.js';
import { writeSafetensors } from '../../src/models/loaders/safetensors.js';
import { fileSource } from '../../src/models/sources.js';
import type { DecoderLM } from '../../src/models/transformer.js';
import { assertClose } from '../helpers/assert-close.js';

const golden = new URL('../golden/checkpoints/', import.meta.url).pathname;
const tmp = new URL('../../.cache/export/', import.meta.url).pathname;
const HF = ['llama', 'mistral', 'qwen2', 'gemma', 'phi3', 'mixtral', 'gpt2'];

/** A safetensors file's tensors, read here independently of the loader: name -> dtype, shape, raw bytes. */
function readRaw(file: string): Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }> {
  const b = readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8'));
  const out = new Map();
  for (const [name, t] of Object.entries<{ dtype: string; shape: number[]; data_offsets: [number, number] }>(header))
    if (name !== '__metadata__') out.set(name, { dtype: t.dtype, shape: t.shape, bytes: new Uint8Array(b.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1])) });
  return out;
}

/** F16 / BF16 / F32 bytes -> float32, by their definitions. */
function floats(dtype: string, b: Uint8Array): Float32Array {
  const u16 = () => new Uint16Array(b.slice().buffer);
  if (dtype === 'F32') return new Float32Array(b.slice().buffer);
  if (dtype === 'BF16') return new Float32Array(new Uint32Array(Array.from(u16(), (x) => x << 16)).buffer);
  return Float32Array.from(u16(), (h) => {
    const e = (h >> 10) & 31;
    const m = h & 1023;
    const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
    return h & 0x8000 ? -v : v;
  });
}

const bits = async (t: Tensor): Promise<Float32Array> => Float32Array.from(await t.toArray());

/** Bit-equal float arrays (toEqual walks typed arrays element by element: slow on embeddings); names the first difference. */
function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  const [x, y] = [new Uint32Array(a.buffer, a.byteOffset, a.length), new Uint32Array(b.buffer, b.byteOffset, b.length)];
  const i = x.length === y.length ? x.findIndex((v, j) => v !== y[j]) : 0;
  expect(i === -1 ? 'equal' : `${what}: lengths ${a.length}/${b.length}, element ${i}: ${a[i]} vs ${b[i]}`).toBe('equal');
}

async function sameParameters(a: DecoderLM, b: DecoderLM, what: string): Promise<void> {
  const pa = new Map(a.namedParameters());
  const pb = new Map(b.namedParameters());
  expect([...pb.keys()].sort(), what).toEqual([...pa.keys()].sort());
  for (const [n, t] of pa) sameBits(await bits(pb.get(n)!), await bits(t), `${what}: ${n}`);
}

function writeFolder(name: string, tensors: Parameters<typeof writeSafetensors>[0], config: object): string {
  const d = join(tmp, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'model.safetensors'), writeSafetensors(tensors));
  writeFileSync(join(d, 'config.json'), JSON.stringify(config));
  return d;
}

describe('exportStateDict [wasm]', () => {
  beforeAll(async () => {
    k.use(await k.createBackend('wasm'));
  });

  for (const arch of HF)
    it(`${arch}: the file's own tensors (bytes where F32), and a reload gives bit-identical parameters`, async () => {
      const dir = join(golden, arch);
      const { model, modelType } = await loadModel(dir);
      const out = await exportStateDict(model, { arch: modelType });
      const files = readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
      const orig = new Map(files.flatMap((f) => [...readRaw(join(dir, f))]));
      // every float tensor of the file, no more (GPT-2's U8 causal-mask buffers are no parameters)
      const floatNames = [...orig].filter(([, t]) => ['F32', 'F16', 'BF16'].includes(t.dtype)).map(([n]) => n);
      expect(Object.keys(out).sort()).toEqual(floatNames.sort());
      for (const [name, t] of Object.entries(out)) {
        const o = orig.get(name)!;
        expect(t.shape, name).toEqual(o.shape);
        if (o.dtype === 'F32') expect(Buffer.compare(new Uint8Array(t.data.buffer), o.bytes), name).toBe(0);
        else sameBits(t.data, floats(o.dtype, o.bytes), name);
      }
      const d = writeFolder(`hf-${arch}`, out, JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
      const back = await loadModel(d);
      await sameParameters(model, back.model, arch);
      model.dispose();
      back.model.dispose();
    });

  it('GGUF files: llama.cpp names and shapes back, each tensor bit for bit the values the file holds (dequantized)', async () => {
    for (const arch of ['llama', 'qwen2', 'gemma', 'phi3']) {
      const file = join(golden, 'gguf', `tiny-${arch}.gguf`);
      const { model } = await loadModel(file, { quantize: 'none' });
      const out = await exportStateDict(model, { arch, format: 'gguf' });
      const g = await GGUFFile.open(await fileSource(file, {}));
      const names = [...g.tensors.keys()].filter((n) => n !== 'rope_freqs.weight');
      expect(Object.keys(out).sort(), arch).toEqual(names.sort());
      for (const n of names) {
        expect(out[n].shape, `${arch} ${n}`).toEqual(g.tensors.get(n)!.shape);
        sameBits(out[n].data, await g.float32(n), `${arch} ${n}`);
      }
      await g.source.close?.();
      model.dispose();
    }
  });

  // the GGUF goldens' logits come from PyTorch running the Hugging Face layout on the dequantized weights
  it('GGUF files exported in Hugging Face names and layouts load through the HF loader to the PyTorch logits (q/k rows un-permuted, Gemma norms as w)', async () => {
    for (const arch of ['llama', 'qwen2', 'gemma', 'phi3']) {
      const gold = JSON.parse(readFileSync(join(golden, 'gguf', arch === 'llama' ? 'golden.json' : `golden-${arch}.json`), 'utf8'));
      const { model } = await loadModel(join(golden, 'gguf', `tiny-${arch}.gguf`), { quantize: 'none' });
      expect(model.config.ropeFreqFactors ?? null, arch).toBeNull();
      const out = await exportStateDict(model, { arch });
      expect(Object.keys(out), arch).toContain('model.layers.0.self_attn.' + (arch === 'phi3' ? 'qkv_proj.weight' : 'q_proj.weight'));
      const back = await loadModel(writeFolder(`gguf-hf-${arch}`, out, configToHF(model.config, arch as ModelType)));
      expect(back.model.config.ropeLayout ?? 'half').toBe('half');
      const ids = k.tensor(gold.ids.data, { shape: gold.ids.shape, dtype: 'i32' });
      const { logits } = back.model.call({ inputIds: ids }) as { logits: Tensor };
      const want = gold.logits.data as number[];
      assertClose(await logits.toArray(), want, { atol: 1e-4 * Math.max(...want.map(Math.abs)), rtol: 0 }, `${arch} HF-layout logits`);
      if (arch === 'llama') {
        // and back to llama.cpp's names: the permutation undone again, the file's values
        const again = await exportStateDict(back.model, { arch, format: 'gguf' });
        const first = await exportStateDict(model, { arch, format: 'gguf' });
        for (const n of Object.keys(first)) sameBits(again[n].data, first[n].data, n);
        expect(Buffer.compare(new Uint8Array(out['model.layers.0.self_attn.q_proj.weight'].data.buffer), new Uint8Array(first['blk.0.attn_q.weight'].data.buffer))).not.toBe(0); // the rows did move
      }
      model.dispose();
      back.model.dispose();
    }
  });

  it('a weight kept quantized, or an architecture without names, is refused with a typed error', async () => {
    const { model } = await loadModel(join(golden, 'gguf', 'tiny-phi3.gguf'));
    await expect(exportStateDict(model, { arch: 'phi3' })).rejects.toThrow(/model\.layers\.0\.self_attn\.[qkvo]_proj\.weight is kept quantized/);
    model.dispose();
    const { model: m } = await loadModel(join(golden, 'llama'));
    await expect(exportStateDict(m, { arch: 'mamba' })).rejects.toThrow(KilnError);
    await expect(exportStateDict(m, { arch: 'mamba' })).rejects.toThrow(/no Hugging Face names for architecture 'mamba'/);
    m.dispose();
  });
});
