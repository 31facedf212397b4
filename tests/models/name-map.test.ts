// The name tables themselves: every parameter of every architecture has a place in each format,
// fused bands tile their tensor; and the loaders' checks through the map: a fused or per-expert
// tensor of the wrong shape is refused naming the tensor, the file and the kiln
// parameters it holds; a GPT-2 file without the `transformer.` prefix (GPT2Model) still loads.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';
import { KilnError } from '../../src/core/errors.js';
import { exportStateDict, nameMapOf } from '../../src/models/export.js';
import { configFromHF, configToHF, type ModelType } from '../../src/models/hf.js';
import { loadModel } from '../../src/models/load.js';
import { writeSafetensors } from '../../src/models/loaders/safetensors.js';
import { buildNameMap, mapArchs, placementOf } from '../../src/models/name-map.js';
import { parameterShapes } from '../../src/models/weights.js';

const golden = new URL('../golden/checkpoints/', import.meta.url).pathname;
const tmp = new URL('../../.cache/name-map/', import.meta.url).pathname;
const configOf = (arch: string) => JSON.parse(readFileSync(join(golden, arch, 'config.json'), 'utf8'));

describe('name tables', () => {
  it('every parameter of every tiny architecture has a place in both formats; bands tile each fused tensor', () => {
    expect(mapArchs('hf').sort()).toEqual(['gemma', 'gpt2', 'llama', 'mistral', 'mixtral', 'phi3', 'qwen2']);
    for (const arch of mapArchs('hf'))
      for (const format of ['hf', 'gguf'] as const) {
        const cfg = configFromHF(configOf(arch));
        const shapes = parameterShapes(cfg);
        const map = buildNameMap(arch, format, cfg, shapes);
        expect([...map.params.keys()].sort(), `${arch} ${format}`).toEqual([...shapes.keys()].sort());
        for (const [name, t] of map.tensors) {
          const bands = t.parts.map(({ placement: p }) => p.rows ?? [0, (p.transpose ? t.shape[1] : t.shape[0])]).sort((a, b) => a[0] - b[0]);
          const rows = t.parts[0].placement.transpose ? t.shape[1] : t.shape[0];
          bands.forEach(([a], i) => expect(a, `${arch} ${format} ${name} band ${i}`).toBe(i ? bands[i - 1][1] : 0));
          expect(bands[bands.length - 1][1], `${arch} ${format} ${name}`).toBe(rows);
        }
      }
    // the lower-level view the adapter export uses
    const gpt2 = configFromHF(configOf('gpt2'));
    const { placements } = placementOf(buildNameMap('gpt2', 'hf', gpt2, parameterShapes(gpt2)), 'model.layers.1.self_attn.k_proj');
    expect(placements).toEqual([{ name: 'transformer.h.1.attn.c_attn.weight', rows: [16, 32], transpose: true }]);
  });
});

describe('config.json both ways', () => {
  it('configToHF writes what configFromHF reads back as the same config: every tiny checkpoint, and each RoPE scaling', () => {
    for (const arch of mapArchs('hf')) {
      const c = configFromHF(configOf(arch));
      expect(configFromHF(configToHF(c, arch as ModelType)), arch).toEqual(c);
    }
    const scalings = [
      { rope_type: 'linear', factor: 2 },
      { rope_type: 'dynamic', factor: 2, original_max_position_embeddings: 16 },
      { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 16, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 0.5 },
      { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
    ];
    for (const rope_scaling of scalings) {
      const c = configFromHF({ ...configOf('llama'), rope_scaling });
      expect(c.ropeScaling?.type).toBe(rope_scaling.rope_type);
      expect(configFromHF(configToHF(c, 'llama')), rope_scaling.rope_type).toEqual(c);
    }
    const withFactors = { ...configFromHF(configOf('llama')), ropeFreqFactors: [1, 2] };
    expect(() => configToHF(withFactors, 'llama')).toThrow(/ropeFreqFactors \(GGUF rope_freqs\) have no config\.json form/);
  });
});

describe('loading through the name map [wasm]', () => {
  beforeAll(async () => {
    k.use(await k.createBackend('wasm'));
  });

  async function variant(arch: string, name: string, edit: (t: Awaited<ReturnType<typeof exportStateDict>>) => void): Promise<string> {
    const { model } = await loadModel(join(golden, arch));
    const t = await exportStateDict(model, { arch });
    model.dispose();
    edit(t);
    const d = join(tmp, name);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'model.safetensors'), writeSafetensors(t));
    writeFileSync(join(d, 'config.json'), JSON.stringify(configOf(arch)));
    return d;
  }
  const refused = async (d: string): Promise<KilnError> => {
    const e = await loadModel(d).then(() => null, (x) => x);
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  };

  it("a fused tensor of the wrong shape names the tensor, its file and the kiln parameters it holds", async () => {
    const d = await variant('phi3', 'phi3-qkv', (t) => {
      const q = t['model.layers.0.self_attn.qkv_proj.weight'];
      t['model.layers.0.self_attn.qkv_proj.weight'] = { ...q, shape: [24, 16], data: q.data.slice(0, 24 * 16) };
    });
    const e = await refused(d);
    expect(e.code).toBe('shape');
    expect(e.message).toMatch(/phi3-qkv\/model\.safetensors: tensor 'model\.layers\.0\.self_attn\.qkv_proj\.weight' is \[24, 16\] but the config makes model\.layers\.0\.self_attn\.q_proj\.weight \+ model\.layers\.0\.self_attn\.k_proj\.weight \+ model\.layers\.0\.self_attn\.v_proj\.weight \[32, 16\] \(as stored\)/);
  });

  it('an expert tensor of the wrong shape names it and the expert of the stacked parameter it fills', async () => {
    const e = await refused(await variant('mixtral', 'mixtral-expert', (t) => {
      const w = t['model.layers.1.block_sparse_moe.experts.3.w2.weight'];
      t['model.layers.1.block_sparse_moe.experts.3.w2.weight'] = { ...w, shape: [16, 20], data: w.data.slice(0, 16 * 20) };
    }));
    expect(e.code).toBe('shape');
    expect(e.message).toMatch(/tensor 'model\.layers\.1\.block_sparse_moe\.experts\.3\.w2\.weight' is \[16, 20\] but the config makes model\.layers\.1\.mlp\.experts\.down_proj\[3\] \[16, 24\]$/);
  });

  it('a GPT-2 file without the transformer. prefix loads to the same parameters', async () => {
    const d = await variant('gpt2', 'gpt2-bare', (t) => {
      for (const n of Object.keys(t)) {
        t[n.replace(/^transformer\./, '')] = t[n];
        delete t[n];
      }
    });
    const [a, b] = [await loadModel(join(golden, 'gpt2')), await loadModel(d)];
    const pb = new Map(b.model.namedParameters());
    for (const [n, p] of a.model.namedParameters()) expect(Array.from(await pb.get(n)!.toArray()), n).toEqual(Array.from(await p.toArray()));
    a.model.dispose();
    b.model.dispose();
  });

  it("a quantized GGUF base (QLoRA) still maps its kept-quantized weights: phi3's q_proj is rows of attn_qkv, and of qkv_proj in HF names", async () => {
    const { model } = await loadModel(join(golden, 'gguf', 'tiny-phi3.gguf'));
    expect(new Map(model.namedParameters()).has('model.layers.0.self_attn.q_proj.weight')).toBe(false); // kept quantized
    const rows = model.config.numHeads * model.config.headDim;
    expect(placementOf(nameMapOf(model, 'phi3', 'gguf'), 'model.layers.0.self_attn.q_proj').placements).toEqual([{ name: 'blk.0.attn_qkv.weight', rows: [0, rows], transpose: false }]);
    expect(placementOf(nameMapOf(model, 'phi3'), 'model.layers.0.self_attn.q_proj').placements).toEqual([{ name: 'model.layers.0.self_attn.qkv_proj.weight', rows: [0, rows], transpose: false }]);
    model.dispose();
  });
});
