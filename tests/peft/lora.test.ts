// LoRA core: LoraConfig's fields and checks, target matching as PEFT's, the LoraLinear forward
// against host arithmetic, QLoRA on a quantized base against the same base in floats, DoRA's
// magnitude init, merge / safe merge / mergeAndUnload, PEFT's parameter counts, module surgery,
// and bad adapter files (nothing half-applied).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { KilnError } from '../../src/core/errors.js';
import { loadModel } from '../../src/models/load.js';
import { Linear } from '../../src/nn/layers.js';
import { qWeight, quantizeQ8 } from '../../src/nn/quant.js';
import { loraConfig } from '../../src/peft/config.js';
import { LoraLinear } from '../../src/peft/lora.js';
import { getPeftModel, isTarget, PeftModel } from '../../src/peft/model.js';
import { loadAdapter, savePretrained } from '../../src/peft/io.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';

const ckpt = new URL('../golden/checkpoints/', import.meta.url).pathname;
const peftDir = new URL('../golden/peft/', import.meta.url).pathname;
const tiny = () => new k.models.DecoderLM({ vocabSize: 20, hiddenSize: 8, numLayers: 2, numHeads: 2, intermediateSize: 12, maxPositionEmbeddings: 16 }, { generator: new k.Generator(1) });
const ids = () => k.tensor([[1, 4, 7, 2, 9]], { dtype: 'i32' });
const logitsOf = async (m: k.nn.Module) => (m.call({ inputIds: ids() }) as { logits: Tensor }).logits.toArray();
const fails = (f: () => unknown, re: RegExp): void => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    expect((e as Error).message).toMatch(re);
    return;
  }
  expect.fail(`no error (wanted ${re})`);
};
const rejects = async (p: Promise<unknown>, re: RegExp): Promise<void> => {
  const e = await p.then(() => null, (x) => x);
  expect(e, `wanted ${re}`).toBeInstanceOf(KilnError);
  expect((e as Error).message).toMatch(re);
};
/** host (out, in) @ x rows */
const hostLinear = (x: ArrayLike<number>, w: ArrayLike<number>, M: number, N: number, K: number): Float64Array => {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) for (let kk = 0; kk < K; kk++) y[m * N + n] += x[m * K + kk] * w[n * K + kk];
  return y;
};

describe('LoraConfig', () => {
  it("has PEFT's defaults and refuses unknown fields, bad values and features kiln lacks, naming the field", () => {
    const c = loraConfig({});
    expect([c.r, c.lora_alpha, c.lora_dropout, c.bias, c.use_rslora, c.use_dora, c.init_lora_weights, c.target_modules]).toEqual([8, 8, 0, 'none', false, false, true, null]);
    fails(() => loraConfig({ rank: 4 } as never), /rank: unknown LoraConfig field/);
    fails(() => loraConfig({ r: 0 }), /r: must be a positive integer/);
    fails(() => loraConfig({ lora_dropout: 1 }), /lora_dropout: must be in \[0, 1\)/);
    fails(() => loraConfig({ bias: 'some' as never }), /bias: must be "none", "all" or "lora_only"/);
    fails(() => loraConfig({ target_modules: '(' }), /target_modules: "\(" is not a valid regex/);
    fails(() => loraConfig({ use_qalora: true } as never), /use_qalora: true is not supported by kiln/);
    fails(() => loraConfig({ target_modules: 'q_proj', layers_to_transform: [0] }), /layers_to_transform: cannot be used when target_modules is a regex/);
    fails(() => loraConfig({ rank_pattern: { q_proj: 0 } }), /rank_pattern.q_proj: must be a positive integer/);
    fails(() => loraConfig({ peft_type: 'IA3' as never }), /peft_type: "IA3" is not "LORA"/);
    // PEFT's informational and default-valued fields are accepted as a file has them
    expect(loraConfig({ peft_version: '0.18.0', megatron_core: 'megatron.core', loftq_config: {}, runtime_config: { ephemeral_gpu_offload: false } } as never).r).toBe(8);
  });

  it("matches targets as PEFT's check_target_module_exists", () => {
    const c = (o: object) => loraConfig(o);
    const key = 'model.layers.1.self_attn.q_proj';
    expect(isTarget(c({ target_modules: ['q_proj'] }), key)).toBe(true);
    expect(isTarget(c({ target_modules: ['self_attn.q_proj'] }), key)).toBe(true);
    expect(isTarget(c({ target_modules: ['_proj'] }), key)).toBe(false); // a suffix at a dot, not any suffix
    expect(isTarget(c({ target_modules: '.*\\.q_proj' }), key)).toBe(true);
    expect(isTarget(c({ target_modules: 'q_proj' }), key)).toBe(false); // a regex matches the whole name
    expect(isTarget(c({ target_modules: ['q_proj'], layers_to_transform: [0] }), key)).toBe(false);
    expect(isTarget(c({ target_modules: ['q_proj'], layers_to_transform: 1, layers_pattern: 'layers' }), key)).toBe(true);
    expect(isTarget(c({ target_modules: ['q_proj'], exclude_modules: ['layers.1.self_attn.q_proj'] }), key)).toBe(false);
  });
});

describe('module surgery', () => {
  it('getSubmodule / setSubmodule by dotted path; a missing path names the first missing segment', () => {
    const m = tiny();
    const q = m.getSubmodule('model.layers.1.self_attn.q_proj');
    expect(q).toBeInstanceOf(Linear);
    fails(() => m.getSubmodule('model.layers.7.self_attn'), /'model.layers' \(ModuleList\) has no child '7'/);
    fails(() => m.getSubmodule('model.nope'), /'model' \(Container\) has no child 'nope'/);
    const rep = new Linear(8, 8, { bias: false });
    expect(m.setSubmodule('model.layers.1.self_attn.q_proj', rep)).toBe(q);
    expect(m.getSubmodule('model.layers.1.self_attn.q_proj')).toBe(rep);
    fails(() => m.setSubmodule('model.layers.1.self_attn.x_proj', rep), /has no child 'x_proj'/);
  });
});

describeBackends('LoRA', ({ name }) => {
  it("getPeftModel: freezes the base, wraps the targets, counts parameters as PEFT's print_trainable_parameters", async () => {
    const m = tiny();
    const before = await logitsOf(m);
    const total = m.parameters().reduce((a, p) => a + p.size, 0);
    const peft = getPeftModel(m, { r: 2, target_modules: ['q_proj', 'v_proj'] });
    // B = 0 at init: the model's function is unchanged
    assertClose(await logitsOf(peft), before, { atol: 1e-6, rtol: 0 }, 'at init');
    const paths = peft.loraLayers().map(([p]) => p);
    expect(paths).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
    // r (in + out) per target: q (8 -> 8), v (8 -> 8 with 2 kv heads = numHeads here)
    const trainable = 4 * 2 * (8 + 8);
    expect(peft.nbTrainableParameters()).toEqual([trainable, total + trainable]);
    expect(peft.trainableParametersLine()).toBe(`trainable params: ${trainable} || all params: ${(total + trainable).toLocaleString('en-US')} || trainable%: ${((100 * trainable) / (total + trainable)).toFixed(4)}`);
    const names = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n);
    expect(names[0]).toBe('base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight');
    expect(names.every((n) => /lora_[AB]\.default\.weight$/.test(n))).toBe(true);
    // all-linear: every Linear but lm_head
    const all = getPeftModel(tiny(), { r: 2, target_modules: 'all-linear' });
    expect(all.loraLayers().length).toBe(2 * 7);
    expect(all.loraLayers().some(([p]) => p === 'lm_head')).toBe(false);
    expect(all.peftConfig.get('default')!.target_modules).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    // a target that matches nothing, or no Linear, is an error and the model is left as it was
    const m2 = tiny();
    fails(() => getPeftModel(m2, { target_modules: ['qkv_proj'] }), /target_modules \["qkv_proj"\] matches no Linear/);
    fails(() => getPeftModel(m2, { target_modules: ['mlp'] }), /matches 'model.layers.0.mlp', a GatedMLP; LoRA targets must be Linear/);
    expect([...m2.namedModules()].some(([, x]) => x instanceof LoraLinear)).toBe(false);
    expect(m2.trainableParameters().length).toBe(m2.parameters().length);
  });

  it('LoraLinear: x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ (rsLoRA: s = alpha/√r) against host arithmetic, with gradients to A and B only', async () => {
    const g = new k.Generator(3);
    const base = new Linear(6, 5, { generator: g });
    const l = new LoraLinear(base);
    base.freeze();
    l.addAdapter('a', { r: 3, alpha: 6, scaling: 6 / Math.sqrt(3), dropout: 0, useDora: false }, false, g); // init false: A and B random
    const x = k.randn([2, 4, 6], { generator: g });
    const y = l.call(x) as Tensor;
    const [xv, wv, bv, av, bBv] = await Promise.all([x.toArray(), base.weight.toArray(), base.bias!.toArray(), l.A('a').weight.toArray(), l.B('a').weight.toArray()]);
    const s = 6 / Math.sqrt(3);
    const xa = hostLinear(xv, av, 8, 3, 6);
    const lora = hostLinear(xa, bBv, 8, 5, 3);
    const want = hostLinear(xv, wv, 8, 5, 6).map((v, i) => v + bv[i % 5] + s * lora[i]);
    assertClose(await y.toArray(), want, { atol: 1e-5, rtol: 1e-5 }, 'forward');
    y.sum().backward();
    expect(base.weight.grad).toBeNull();
    // d(sum y)/dB = s · colsum(x·Aᵀ) per row of B
    const colA = [0, 1, 2].map((j) => Array.from({ length: 8 }, (_, m) => xa[m * 3 + j]).reduce((a, b) => a + b, 0));
    assertClose(await l.B('a').weight.grad!.toArray(), Array.from({ length: 15 }, (_, i) => s * colA[i % 3]), { atol: 1e-4, rtol: 1e-4 }, 'dB');
  });

  it('QLoRA: on a Q8_0 base the forward and the adapter gradients equal the same adapter on the dequantized floats', async () => {
    const N = 8;
    const K = 32;
    const w = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.7));
    const q = quantizeQ8(w, N, K);
    const bytes = new Int8Array(q.qs.buffer);
    const deq = Float32Array.from({ length: N * K }, (_, i) => bytes[i] * q.scales[Math.floor(i / 32)]);
    const run = async (quantized: boolean, dora: boolean) => {
      const g = new k.Generator(5);
      const base = new Linear(K, N, { bias: false, generator: g });
      if (quantized) base.setQuantized(qWeight(q, N, K));
      else base.setParameter('weight', k.tensor(deq, { shape: [N, K] }));
      base.freeze();
      const l = new LoraLinear(base);
      l.addAdapter('q', { r: 2, alpha: 4, scaling: 2, dropout: 0, useDora: dora }, false, g);
      const x = k.tensor(Array.from({ length: 3 * K }, (_, i) => Math.cos(i * 0.3)), { shape: [3, K] });
      const y = l.call(x) as Tensor;
      y.mul(y).sum().backward();
      const mag = l.magnitude('q');
      return { y: await y.toArray(), dA: await l.A('q').weight.grad!.toArray(), dB: await l.B('q').weight.grad!.toArray(), m: mag ? await mag.weight.toArray() : null, dm: mag ? await mag.weight.grad!.toArray() : null };
    };
    for (const dora of [false, true]) {
      const a = await run(true, dora);
      const b = await run(false, dora);
      // DoRA's m and its norm come from the dequantized weight: equal to the float base's
      for (const f of ['y', 'dA', 'dB', 'm', 'dm'] as const) if (dora || (f !== 'm' && f !== 'dm')) assertClose(a[f]!, b[f]!, { atol: 1e-4, rtol: 1e-4 }, `${dora ? 'DoRA' : 'LoRA'} ${f}`);
    }
  });

  it('DoRA: the magnitude starts at the row norms of W + s·B·A; merge / unmerge / safe merge / mergeAndUnload', async () => {
    const m = tiny();
    const peft = getPeftModel(m, { r: 2, lora_alpha: 4, target_modules: ['o_proj'], use_dora: true, init_lora_weights: false }, 'default', { generator: new k.Generator(9) });
    const [path, l] = peft.loraLayers()[0];
    expect(path).toBe('model.layers.0.self_attn.o_proj');
    const [w, a, b] = await Promise.all([l.base.weight.toArray(), l.A('default').weight.toArray(), l.B('default').weight.toArray()]);
    const norms = Array.from({ length: 8 }, (_, o) => {
      let s2 = 0;
      for (let i = 0; i < 8; i++) {
        let d = 0;
        for (let j = 0; j < 2; j++) d += b[o * 2 + j] * a[j * 8 + i];
        s2 += (w[o * 8 + i] + 2 * d) ** 2;
      }
      return Math.sqrt(s2);
    });
    assertClose(await l.magnitude('default')!.weight.toArray(), norms, { atol: 1e-5, rtol: 1e-5 }, 'magnitude');
    // a magnitude away from the norms makes DoRA differ from LoRA; merged = unmerged
    k.noGrad(() => l.magnitude('default')!.weight.assign(k.mul(l.magnitude('default')!.weight, 1.3)));
    const unmerged = await logitsOf(peft);
    await peft.merge();
    assertClose(await logitsOf(peft), unmerged, { atol: 1e-5, rtol: 1e-4 }, 'merged');
    peft.unmerge();
    assertClose(await l.base.weight.toArray(), w, { atol: 1e-5, rtol: 1e-5 }, 'unmerged weight');
    // safe merge refuses a broken adapter and leaves every weight as it was
    const other = peft.loraLayers()[1][1];
    const keepB = await other.B('default').weight.toArray();
    k.noGrad(() => other.B('default').weight.assign(k.full([8, 2], NaN)));
    await expect(peft.merge({ safeMerge: true })).rejects.toThrow(/model.layers.1.self_attn.o_proj: NaNs or infinities in the merged weight/);
    assertClose(await l.base.weight.toArray(), w, { atol: 1e-5, rtol: 1e-5 }, 'nothing half-merged');
    k.noGrad(() => other.B('default').weight.assign(k.tensor(keepB, { shape: [8, 2] })));
    const plain = await peft.mergeAndUnload({ safeMerge: true });
    expect(plain).toBe(m);
    expect([...m.namedModules()].some(([, x]) => x instanceof LoraLinear)).toBe(false);
    assertClose(await logitsOf(m), unmerged, { atol: 1e-5, rtol: 1e-4 }, 'merged and unloaded');
    void name;
  });

  it('trains: AdamW on the adapter lowers the loss on a fixed batch; the base weights stay bit for bit', async () => {
    const m = tiny();
    const baseW = await Promise.all(m.parameters().map((p) => p.toArray()));
    const peft = getPeftModel(m, { r: 4, lora_alpha: 8, target_modules: 'all-linear' }, 'default', { generator: new k.Generator(12) });
    peft.train();
    const opt = new k.AdamW(peft.trainableParameters(), { lr: 3e-2, weightDecay: 0 });
    const x = k.keep(k.tensor([[1, 4, 7, 2, 9, 3], [5, 5, 8, 1, 0, 2]], { dtype: 'i32' }));
    const y = k.keep(k.tensor([4, 7, 2, 9, 3, 6, 5, 8, 1, 0, 2, 11], { dtype: 'i32' }));
    const losses: number[] = [];
    for (let step = 0; step < 6; step++) {
      const l = k.tidy(() => {
        const { logits } = peft.call({ inputIds: x }) as { logits: Tensor };
        const loss = k.crossEntropy(k.reshape(logits, [-1, 20]), y);
        loss.backward();
        opt.step();
        opt.zeroGrad();
        return loss;
      });
      losses.push(await l.item());
    }
    expect(losses[5]).toBeLessThan(losses[0] - 0.05);
    const after = await Promise.all(m.parameters().filter((p) => !p.requiresGrad).map((p) => p.toArray()));
    expect(after.length).toBe(baseW.length);
    after.forEach((a, i) => expect(Array.from(a)).toEqual(Array.from(baseW[i])));
  });

  it('several named adapters: setAdapter switches, null disables; a non-default adapter saves in its subfolder and loads back', async () => {
    const m = tiny();
    const base = await logitsOf(m);
    const peft = getPeftModel(m, { r: 2, target_modules: ['q_proj'], init_lora_weights: false }, 'one', { generator: new k.Generator(2) });
    peft.addAdapter('two', { r: 3, target_modules: ['v_proj'], init_lora_weights: false }, { generator: new k.Generator(4) });
    const one = await logitsOf(peft);
    peft.setAdapter('two');
    const two = await logitsOf(peft);
    expect(peft.trainableParameters().length).toBe(4); // two's A and B in two layers
    peft.setAdapter(null);
    assertClose(await logitsOf(peft), base, { atol: 1e-6, rtol: 0 }, 'disabled');
    expect(Math.max(...one.map((v, i) => Math.abs(v - two[i])))).toBeGreaterThan(1e-4);
    fails(() => peft.setAdapter('three'), /no adapter named 'three' \(adapters: one, two\)/);
    const files = await savePretrained(peft, 'files');
    expect(Object.keys(files).sort()).toEqual(['one/adapter_config.json', 'one/adapter_model.safetensors', 'two/adapter_config.json', 'two/adapter_model.safetensors']);
    // onto a fresh copy of the base (same seed), adapter "two" from its files
    const again = await loadAdapter(tiny(), { 'adapter_config.json': files['two/adapter_config.json'], 'adapter_model.safetensors': files['two/adapter_model.safetensors'] }, 'two');
    assertClose(await logitsOf(again), two, { atol: 1e-6, rtol: 0 }, 'reloaded');
    expect(again.trainableParameters().length).toBe(0); // loaded for inference unless isTrainable
  });
});

describe('bad adapter files', () => {
  const dir = join(peftDir, 'llama-lora');
  const cfg = () => JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
  const weights = (): Uint8Array => readFileSync(join(dir, 'adapter_model.safetensors'));
  const files = (c: object, w: Uint8Array = weights()) => ({ 'adapter_config.json': new TextEncoder().encode(JSON.stringify(c)), 'adapter_model.safetensors': w });
  const untouched = (m: k.nn.Module) => expect([...m.namedModules()].some(([, x]) => x instanceof LoraLinear)).toBe(false);

  it('unknown peft_type, unknown field, rank or targets that disagree with the base, another architecture: typed errors, nothing applied', async () => {
    const loaded = await loadModel(join(ckpt, 'llama'));
    const m = loaded.model;
    await rejects(loadAdapter(loaded, files({ ...cfg(), peft_type: 'IA3' })), /files\/adapter_config.json: peft_type: "IA3" is not supported/);
    await rejects(loadAdapter(loaded, files({ ...cfg(), lora_rank: 4 })), /files\/adapter_config.json: lora_rank: unknown LoraConfig field/);
    await rejects(loadAdapter(loaded, files({ ...cfg(), r: 8 })), /adapter_model.safetensors: base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight is \[4, 16\], the model and .* need \[8, 16\]/);
    await rejects(loadAdapter(loaded, files({ ...cfg(), target_modules: ['q_proj', 'v_proj', 'down_proj', 'up_proj'] })), /missing key base_model.model.model.layers.0.mlp.up_proj.lora_A.weight/);
    await rejects(loadAdapter(loaded, files({ ...cfg(), target_modules: ['q_proj', 'v_proj'] })), /unexpected key base_model.model.model.layers.0.mlp.down_proj.lora_A.weight/);
    await rejects(loadAdapter(loaded, files({ ...cfg(), target_modules: ['qkv_proj'] })), /matches no Linear/);
    await rejects(loadAdapter({ model: m, modelType: 'phi3' }, files(cfg())), /auto_mapping\.base_model_class: the adapter was trained on LlamaForCausalLM, but the model is Phi3ForCausalLM/);
    await rejects(loadAdapter({ model: m, modelType: 'phi3' }, files({ ...cfg(), auto_mapping: null })), /unexpected key base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight .*another model or architecture/);
    await rejects(loadAdapter(loaded, { 'adapter_config.json': files(cfg())['adapter_config.json'] }), /files has no adapter_model.safetensors/);
    // shapes that happen to fit, but the adapter names the class it was trained on
    await rejects(loadAdapter(loaded, files({ ...cfg(), task_type: null, auto_mapping: { base_model_class: 'Qwen2ForCausalLM', parent_library: 'transformers.models.qwen2.modeling_qwen2' } })), /auto_mapping\.base_model_class: the adapter was trained on Qwen2ForCausalLM, but the model is LlamaForCausalLM \(model_type 'llama'\)/);
    untouched(m);
    // and a good one loads
    const ok = await loadAdapter(loaded, files(cfg()));
    expect(ok).toBeInstanceOf(PeftModel);
    expect(ok.loraLayers().length).toBe(6);
  });

  it('savePretrained through the name map refuses what it does not translate: biases, modules_to_save, a GGUF Llama without its model_type', async () => {
    const loaded = await loadModel(join(ckpt, 'gpt2'));
    await rejects(savePretrained(getPeftModel(loaded, { target_modules: ['q_proj'], bias: 'all' }), 'files'), /adapter 'default': bias 'all' is not supported for a gpt2 model/);
    await rejects(savePretrained(getPeftModel(await loadModel(join(ckpt, 'gpt2')), { target_modules: ['q_proj'], modules_to_save: ['input_layernorm'] }), 'files'), /modules_to_save is not supported for a gpt2 model/);
    const gguf = await loadModel(join(ckpt, 'gguf', 'tiny-llama.gguf'));
    await rejects(savePretrained(getPeftModel(gguf.model, { target_modules: ['q_proj'] }), 'files'), /permuted q_proj\/k_proj rows .* pass modelType/);
  });
});

describeBackends('PEFT files round trip', ({ name }) => {
  const tmp = new URL(`../../.cache/peft-test-${name}/`, import.meta.url).pathname;

  it('bias lora_only and modules_to_save: trained, saved under their PEFT keys to a folder, loaded back from the path', async () => {
    const loaded = await loadModel(join(ckpt, 'qwen2'));
    const peft = getPeftModel(loaded, { r: 2, target_modules: ['q_proj', 'k_proj'], bias: 'lora_only', modules_to_save: ['norm'], init_lora_weights: false }, 'default', { generator: new k.Generator(7) });
    const trainable = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n.replace('base_model.model.', ''));
    expect(trainable.filter((n) => !n.includes('lora_'))).toEqual([
      'model.layers.0.self_attn.q_proj.base_layer.bias', 'model.layers.0.self_attn.k_proj.base_layer.bias',
      'model.layers.1.self_attn.q_proj.base_layer.bias', 'model.layers.1.self_attn.k_proj.base_layer.bias', 'model.norm.weight',
    ]);
    // "training": move the biases and the norm
    k.noGrad(() => {
      for (const [n, p] of peft.namedParameters()) if (p.requiresGrad && !n.includes('lora_')) p.assign(k.add(p, 0.25));
    });
    const want = await logitsOf(peft);
    const files = await savePretrained(peft, tmp);
    const st = JSON.parse(new TextDecoder().decode(files['adapter_model.safetensors'].subarray(8, 8 + Number(new DataView(files['adapter_model.safetensors'].buffer).getBigUint64(0, true)))));
    expect(Object.keys(st).filter((n) => n !== '__metadata__' && !n.includes('lora_')).sort()).toEqual([
      'base_model.model.model.layers.0.self_attn.k_proj.base_layer.bias', 'base_model.model.model.layers.0.self_attn.q_proj.base_layer.bias',
      'base_model.model.model.layers.1.self_attn.k_proj.base_layer.bias', 'base_model.model.model.layers.1.self_attn.q_proj.base_layer.bias', 'base_model.model.model.norm.weight',
    ]);
    expect(readFileSync(join(tmp, 'adapter_config.json'), 'utf8')).toBe(new TextDecoder().decode(files['adapter_config.json']));
    const fresh = await loadModel(join(ckpt, 'qwen2'));
    const again = await loadAdapter(fresh, tmp);
    assertClose(await logitsOf(again), want, { atol: 1e-5, rtol: 1e-5 }, 'reloaded from the folder');
    // bias 'all' saves every bias, a wrapped layer's under base_layer
    const all = getPeftModel(await loadModel(join(ckpt, 'qwen2')), { r: 2, target_modules: ['q_proj'], bias: 'all' });
    const keys = [...(await import('../../src/peft/io.js')).adapterTensors(all, 'default').keys()].filter((n) => n.endsWith('bias'));
    expect(keys).toContain('base_model.model.model.layers.0.self_attn.q_proj.base_layer.bias');
    expect(keys).toContain('base_model.model.model.layers.1.self_attn.v_proj.bias');
    expect(keys.length).toBe(6);
  });

  it('QLoRA from a file: an adapter on the attention of a GGUF base kept quantized (Q4_K, Q6_K, Q8_0, Q4_0) saves and loads back onto it, and equals the same adapter on the dequantized base', async () => {
    const gguf = join(ckpt, 'gguf', 'tiny-qwen2.gguf');
    const q = await loadModel(gguf);
    const types = ['q_proj', 'k_proj', 'v_proj', 'o_proj'].map((n) => (q.model.getSubmodule(`model.layers.0.self_attn.${n}`) as Linear).quantized?.type);
    expect(types).toEqual(['q4_k', 'q6_k', 'q8_0', 'q4_0']);
    const peft = getPeftModel(q, { r: 4, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], init_lora_weights: false }, 'default', { generator: new k.Generator(3) });
    const want = await logitsOf(peft);
    const files = await savePretrained(peft, 'files');
    const again = await loadAdapter(await loadModel(gguf), files, 'default', { isTrainable: true });
    assertClose(await logitsOf(again), want, { atol: 1e-5, rtol: 1e-5 }, 'reloaded on the quantized base');
    const float = await loadAdapter(await loadModel(gguf, { quantize: 'none' }), files);
    const scale = Math.max(...want.map(Math.abs));
    assertClose(await logitsOf(float), want, { atol: (name === 'wasm' ? 1e-4 : 1e-3) * scale, rtol: 0 }, 'on the dequantized base');
    const out = (again.call({ inputIds: ids() }) as { logits: Tensor }).logits;
    out.sum().backward();
    const [, l] = again.loraLayers()[0];
    expect(l.base.quantized).not.toBeNull();
    expect(l.A('default').weight.grad).not.toBeNull();
    await expect(again.merge()).rejects.toThrow(/quantized \(q4_k\); merging needs float weights/);
  });

  it("init_lora_weights 'gaussian': A ~ N(0, 1/r), B = 0", async () => {
    const peft = getPeftModel(tiny(), { r: 4, target_modules: 'all-linear', init_lora_weights: 'gaussian' }, 'default', { generator: new k.Generator(11) });
    const as: number[] = [];
    for (const [, l] of peft.loraLayers()) {
      as.push(...(await l.A('default').weight.toArray()));
      expect(Math.max(...(await l.B('default').weight.toArray()).map(Math.abs))).toBe(0);
    }
    const mean = as.reduce((a, b) => a + b, 0) / as.length;
    const std = Math.sqrt(as.reduce((a, b) => a + (b - mean) ** 2, 0) / as.length);
    expect(as.length).toBe(480);
    expect(Math.abs(mean)).toBeLessThan(0.04); // 3.5 standard errors
    expect(std).toBeGreaterThan(0.22);
    expect(std).toBeLessThan(0.28);
  });
});
