// A GGUF file onto the one decoder: metadata to config (gguf-config.ts), the tokenizer
// (gguf-tokenizer.ts), and llama.cpp's tensor names through the name map; quantized linear weights
// stay quantized block for block unless `quantize: 'none'`.
import { KilnError } from '../core/errors.js';
import { fromGGUF } from '../nn/quant.js';
import { checkConfigTensors, validateConfig } from './config.js';
import { configFromGGUF } from './gguf-config.js';
import { tokenizerFromGGUF } from './gguf-tokenizer.js';
import type { ModelType } from './hf.js';
import type { LoadedModel, LoadOptions } from './load.js';
import { GGUFFile } from './loaders/gguf.js';
import { buildNameMap, checkShapes } from './name-map.js';
import type { ByteSource } from './sources.js';
import { DecoderLM } from './transformer.js';
import { keptAs, parameterShapes, place, rawWritable, writeRaw } from './weights.js';

/** A GGUF model from a source (whose reads or download report progress already); closes it. */
export async function ggufModel(src: ByteSource, opts: LoadOptions): Promise<LoadedModel> {
  let model: DecoderLM | null = null;
  try {
    const g = await GGUFFile.open(src);
    const { cfg, arch, keys } = configFromGGUF(g.metadata, src.name);
    // Llama 3.1's scaling, as llama.cpp's converter stores it: a divisor per rotary frequency
    const freqs = g.tensors.get('rope_freqs.weight');
    if (freqs) {
      if (freqs.shape.length !== 1 || freqs.shape[0] > 1 << 16) throw new KilnError('config', 'loadGGUF', `${src.name}: rope_freqs.weight: must be a vector of rotary dim / 2 factors, got ${JSON.stringify(freqs.shape)}`);
      cfg.ropeFreqFactors = Array.from(await g.float32('rope_freqs.weight'));
    }
    validateConfig(cfg, src.name, keys);
    const shapes = new Map([...g.tensors].map(([n, t]) => [n, t.shape]));
    checkConfigTensors(cfg, src.name, keys, shapes, (n) => {
      const m = /^blk\.(\d+)\.(.+)$/.exec(n);
      return m ? [Number(m[1]), m[2]] : null;
    }, 'token_embd.weight');
    const tokenizer = tokenizerFromGGUF(g.metadata, src.name, cfg.vocabSize);
    if (!g.tensors.has('output.weight')) cfg.tieWordEmbeddings = true;
    if ([...g.tensors.keys()].some((n) => n.startsWith('rope_factors'))) {
      throw new KilnError('config', 'loadGGUF', `${src.name}: rope_factors tensors (LongRoPE scaling) are not supported`);
    }
    // check every parameter's tensor and shape (on a model that allocates nothing) before reading any data
    const map = buildNameMap(arch, 'gguf', cfg, parameterShapes(cfg));
    checkShapes(map, (n) => g.tensors.get(n)?.shape, () => src.name);
    model = new DecoderLM(cfg, { backend: opts.backend, skipInit: true, dtype: opts.dtype });
    const params = new Map(model.namedParameters());
    for (const [name, p] of params) {
      // kiln's layout is the file's (RoPE runs in llama.cpp's order): a parameter is a tensor or a band of its rows
      const [s, ...more] = map.params.get(name)!;
      if (more.length || s.transpose || s.permute || s.shift) throw new KilnError('config', 'loadGGUF', `${src.name}: ${name}: its layout in '${s.name}' is not one kiln reads from GGUF`);
      const info = g.tensors.get(s.name)!;
      const shape = [...p.shape];
      const type = keptAs(name, shape, opts, info.type);
      // the band of the tensor's bytes this parameter takes (rows are whole blocks: quantized rows split too)
      const rowBytes = (info.end - info.begin) / info.shape[0];
      const [r0, r1] = s.rows ?? [0, info.shape[0]];
      const bytes = () => src.read(info.begin + r0 * rowBytes, (r1 - r0) * rowBytes);
      if (!type && rawWritable(p, info.type)) {
        writeRaw(p, await bytes(), info.type, `${src.name}: tensor '${info.name}'`);
        continue;
      }
      // a tensor already in the kept type goes over block for block, without a second quantization
      const q = type && info.type === type.toUpperCase() ? fromGGUF(type, await bytes(), shape[0], shape[1]) : undefined;
      const values = q ? null : s.rows ? (await g.float32(info.name)).subarray(r0 * shape[1], r1 * shape[1]) : await g.float32(info.name);
      place(model!, p, name, shape, values, opts, type, q);
    }
    const loaded = { model: model.eval(), modelType: arch as ModelType, hfConfig: Object.fromEntries([...g.metadata].filter(([k]) => !k.startsWith('tokenizer.')).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v])), tokenizer, generationConfig: null };
    model = null;
    return loaded;
  } finally {
    model?.dispose(); // a load that failed after allocating gives its memory back
    await src.close?.();
  }
}
