// PEFT files for architectures whose kiln modules differ from their Hugging Face checkpoint's
// (GPT-2's Conv1D c_attn, Phi-3's qkv_proj / gate_up_proj, Mixtral's block_sparse_moe, a GGUF
// Llama's permuted q/k rows), through the name map. References: the base checkpoint with the
// adapter's ΔW merged into its Hugging Face tensor by hand (exportStateDict + B·A), and the HF
// Llama checkpoint the GGUF was converted from.
import { join } from 'node:path';
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { loadModel } from '../../src/models/load.js';
import { exportStateDict } from '../../src/models/export.js';
import { configToHF } from '../../src/models/hf.js';
import { writeSafetensors, SafetensorsFile } from '../../src/models/loaders/safetensors.js';
import { bytesSource } from '../../src/models/sources.js';
import type { DecoderLM } from '../../src/models/transformer.js';
import { getPeftModel } from '../../src/peft/model.js';
import { loadAdapter, savePretrained } from '../../src/peft/io.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';
import { readFileSync } from 'node:fs';

const ckpt = new URL('../golden/checkpoints/', import.meta.url).pathname;
const ids = () => k.tensor([[1, 5, 12, 0, 7, 33, 21]], { shape: [1, 7], dtype: 'i32' });
const logitsOf = async (m: unknown): Promise<Float32Array> => Float32Array.from(await (((m as k.nn.Module).call({ inputIds: ids() }) as { logits: Tensor }).logits.toArray()));
const maxAbs = (xs: ArrayLike<number>): number => Array.from(xs).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const readSt = async (bytes: Uint8Array) => {
  const st = await SafetensorsFile.open(bytesSource('adapter_model.safetensors', bytes));
  return new Map(await Promise.all([...st.tensors].map(async ([n, t]) => [n, { shape: t.shape, data: await st.float32(n) }] as const)));
};
/** A seeded normal-ish matrix. */
function rand(n: number, seed: number, scale: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5) * scale);
}

describeBackends('PEFT files through the name map', ({ name }) => {
  const tol = name === 'wasm' ? 1e-4 : 1e-3;

  const cases: [string, string[], string[]][] = [
    ['gpt2', ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'], ['c_attn', 'c_fc', 'c_proj']],
    ['phi3', ['self_attn.qkv_proj', 'self_attn.o_proj', 'mlp.gate_up_proj', 'mlp.down_proj'], ['down_proj', 'gate_up_proj', 'o_proj', 'qkv_proj']],
    ['mixtral', ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'block_sparse_moe.gate'], ['gate', 'k_proj', 'o_proj', 'q_proj', 'v_proj']],
  ];
  for (const [arch, modules, targets] of cases) {
    it(`${arch}: kiln's LoRAs saved in the HF modules (fused: A stacked, B block-diagonal, rank_pattern/alpha_pattern) load back to the same logits and bytes`, async () => {
      const loaded = await loadModel(join(ckpt, arch));
      const base = await logitsOf(loaded.model);
      const peft = getPeftModel(loaded, { r: 2, lora_alpha: 4, target_modules: 'all-linear', rank_pattern: { v_proj: 3, up_proj: 1 }, alpha_pattern: { k_proj: 6 }, init_lora_weights: false }, 'default', { generator: new k.Generator(5) });
      const want = await logitsOf(peft);
      expect(maxAbs(want.map((v, i) => v - base[i]))).toBeGreaterThan(1e-2 * maxAbs(base)); // the adapter matters
      const files = await savePretrained(peft, 'files');
      const conf = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
      expect(conf.target_modules).toEqual(targets);
      expect(conf.auto_mapping.base_model_class).toBe({ gpt2: 'GPT2LMHeadModel', phi3: 'Phi3ForCausalLM', mixtral: 'MixtralForCausalLM' }[arch]);
      expect(conf.fan_in_fan_out).toBe(arch === 'gpt2');
      const prefix = arch === 'gpt2' ? 'transformer.h' : 'model.layers';
      const st = await readSt(files['adapter_model.safetensors']);
      const keys = [0, 1].flatMap((i) => modules.flatMap((m) => ['A', 'B'].map((x) => `base_model.model.${prefix}.${i}.${m}.lora_${x}.weight`)));
      expect([...st.keys()].sort()).toEqual(keys.sort());
      // every module's r in the config is its tensors' (PEFT builds the layers from the config)
      for (const [key, t] of st) {
        if (!key.endsWith('lora_A.weight')) continue;
        const mod = key.slice('base_model.model.'.length, -'.lora_A.weight'.length);
        expect(conf.rank_pattern[mod] ?? conf.r, mod).toBe(t.shape[0]);
      }
      if (arch !== 'mixtral') {
        // fused q/k/v: r = 2 + 2 + 3; scaling alpha/r stays kiln's q_proj's 4/2 (k's 6/2 folded into its B)
        const qkv = arch === 'gpt2' ? 'transformer.h.0.attn.c_attn' : 'model.layers.0.self_attn.qkv_proj';
        expect([conf.rank_pattern[qkv], conf.alpha_pattern[qkv]]).toEqual([7, 14]);
      }
      const again = await loadAdapter(await loadModel(join(ckpt, arch)), files);
      assertClose(await logitsOf(again), want, { atol: tol * maxAbs(want), rtol: 0 }, 'reloaded logits');
      const st2 = await readSt((await savePretrained(again, 'files'))['adapter_model.safetensors']);
      for (const [key, t] of st) {
        expect(st2.get(key)!.shape, key).toEqual(t.shape);
        assertClose(st2.get(key)!.data, t.data, { atol: 1e-6 * maxAbs(t.data), rtol: 0 }, key);
      }
    });
  }

  for (const arch of ['gpt2', 'phi3']) {
    it(`${arch}: a PEFT LoRA with one dense A shared by the fused parts equals the checkpoint with W + s·B·A merged by hand`, async () => {
      const loaded = await loadModel(join(ckpt, arch));
      const sd = await exportStateDict(loaded.model as DecoderLM, { arch });
      const mods = arch === 'gpt2' ? ['transformer.h.0.attn.c_attn', 'transformer.h.1.mlp.c_fc'] : ['model.layers.0.self_attn.qkv_proj', 'model.layers.1.mlp.gate_up_proj'];
      const r = 3;
      const alpha = 5;
      const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
      const merged = { ...sd };
      mods.forEach((m, j) => {
        const w = sd[`${m}.weight`];
        const [out, inF] = arch === 'gpt2' ? [w.shape[1], w.shape[0]] : w.shape;
        const A = rand(r * inF, 11 + j, 0.6);
        const B = rand(out * r, 23 + j, 0.4);
        tensors[`base_model.model.${m}.lora_A.weight`] = { dtype: 'F32', shape: [r, inF], data: A };
        tensors[`base_model.model.${m}.lora_B.weight`] = { dtype: 'F32', shape: [out, r], data: B };
        const data = Float32Array.from(w.data);
        for (let o = 0; o < out; o++)
          for (let i = 0; i < inF; i++) {
            let d = 0;
            for (let q = 0; q < r; q++) d += B[o * r + q] * A[q * inF + i];
            data[arch === 'gpt2' ? i * out + o : o * inF + i] += (alpha / r) * d;
          }
        merged[`${m}.weight`] = { ...w, data };
      });
      const config = { peft_type: 'LORA', r, lora_alpha: alpha, target_modules: arch === 'gpt2' ? ['c_attn', 'c_fc'] : ['qkv_proj', 'gate_up_proj'], layers_to_transform: null, fan_in_fan_out: arch === 'gpt2' };
      // c_fc / gate_up_proj is matched in both layers by the config: layer 0's gets zero B in the file too
      const other = arch === 'gpt2' ? 'transformer.h.0.mlp.c_fc' : 'model.layers.0.mlp.gate_up_proj';
      const o = tensors[`base_model.model.${mods[1]}.lora_B.weight`];
      tensors[`base_model.model.${other}.lora_A.weight`] = { ...tensors[`base_model.model.${mods[1]}.lora_A.weight`] };
      tensors[`base_model.model.${other}.lora_B.weight`] = { dtype: 'F32', shape: o.shape, data: new Float32Array(o.data.length) };
      const otherC = arch === 'gpt2' ? 'transformer.h.1.attn.c_attn' : 'model.layers.1.self_attn.qkv_proj';
      const a0 = tensors[`base_model.model.${mods[0]}.lora_A.weight`];
      const b0 = tensors[`base_model.model.${mods[0]}.lora_B.weight`];
      tensors[`base_model.model.${otherC}.lora_A.weight`] = { ...a0 };
      tensors[`base_model.model.${otherC}.lora_B.weight`] = { ...b0, data: new Float32Array(b0.data.length) };
      const peft = await loadAdapter(loaded, { 'adapter_model.safetensors': writeSafetensors(tensors, { format: 'pt' }) }, 'default', { config });
      const got = await logitsOf(peft);
      const cfgJson = readFileSync(join(ckpt, arch, 'config.json'));
      const ref = await loadModel({ 'config.json': new Uint8Array(cfgJson), 'model.safetensors': writeSafetensors(merged, { format: 'pt' }) });
      const want = await logitsOf(ref.model);
      assertClose(got, want, { atol: tol * maxAbs(want), rtol: 0 }, 'logits vs merged checkpoint');
      // saved again while the parts still share A: the file's own tensors, dense, rank 3
      const st = await readSt((await savePretrained(peft, 'files'))['adapter_model.safetensors']);
      expect([...st.keys()].sort()).toEqual(Object.keys(tensors).sort());
      for (const [key, t] of Object.entries(tensors)) {
        expect(st.get(key)!.shape, key).toEqual(t.shape);
        assertClose(st.get(key)!.data, t.data, { atol: 0, rtol: 0 }, key);
      }
      // trained apart (q's A moved), the parts go out block-diagonal: rank 3 + 3 + 3, the same ΔW
      const q = peft.model.getSubmodule(arch === 'gpt2' ? 'model.layers.0.self_attn.q_proj' : 'model.layers.0.self_attn.q_proj') as unknown as { A: (n: string) => { weight: Tensor } };
      k.noGrad(() => q.A('default').weight.assign(k.mul(q.A('default').weight, 1.5)));
      const moved = await logitsOf(peft);
      const files = await savePretrained(peft, 'files');
      const st2 = await readSt(files['adapter_model.safetensors']);
      expect(st2.get(`base_model.model.${mods[0]}.lora_A.weight`)!.shape).toEqual([9, arch === 'gpt2' ? 16 : 16]);
      const back = await loadAdapter(await loadModel(join(ckpt, arch)), files);
      assertClose(await logitsOf(back), moved, { atol: tol * maxAbs(moved), rtol: 0 }, 'block-diagonal re-export');
    });
  }

  it('GGUF Llama base: an adapter trained on it, saved in HF names (q/k rows of B un-permuted), gives the HF Llama the same logits', async () => {
    const gguf = await loadModel(join(ckpt, 'gguf', 'tiny-llama.gguf'), { quantize: 'none' });
    // the same weights in a Hugging Face folder (tests/golden/checkpoints/llama is another, smaller model)
    const cfg = (gguf.model as DecoderLM).config;
    const hf = await loadModel({
      'config.json': new TextEncoder().encode(JSON.stringify(configToHF({ ...cfg, ropeLayout: 'half' }, 'llama'))),
      'model.safetensors': writeSafetensors(await exportStateDict(gguf.model as DecoderLM, { arch: 'llama' }), { format: 'pt' }),
    });
    expect((hf.model as DecoderLM).config.ropeLayout).toBe('half');
    const peft = getPeftModel(gguf, { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], init_lora_weights: false }, 'default', { generator: new k.Generator(8) });
    const files = await savePretrained(peft, 'files');
    const conf = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
    expect(conf.target_modules).toEqual(['k_proj', 'o_proj', 'q_proj', 'v_proj']);
    const onHf = await loadAdapter(hf, files);
    const [a, b] = [await logitsOf(peft), await logitsOf(onHf)];
    assertClose(b, a, { atol: tol * maxAbs(a), rtol: 0 }, 'HF llama + exported adapter vs GGUF llama + adapter');
    // and back onto a GGUF base: the same file bytes
    const back = await loadAdapter(await loadModel(join(ckpt, 'gguf', 'tiny-llama.gguf'), { quantize: 'none' }), files);
    const [s1, s2] = [await readSt(files['adapter_model.safetensors']), await readSt((await savePretrained(back, 'files'))['adapter_model.safetensors'])];
    for (const [key, t] of s1) assertClose(s2.get(key)!.data, t.data, { atol: 0, rtol: 0 }, key);
  });

  it('bad adapters for mapped architectures: typed errors naming the file, key or option, the model untouched', async () => {
    const loaded = await loadModel(join(ckpt, 'gpt2'));
    const A = { dtype: 'F32' as const, shape: [2, 16], data: new Float32Array(32) };
    const B = { dtype: 'F32' as const, shape: [48, 2], data: new Float32Array(96) };
    const good = { 'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight': A, 'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight': B };
    const config = { peft_type: 'LORA', r: 2, target_modules: ['c_attn'], layers_to_transform: [0] };
    const bytes = (t: object) => ({ 'adapter_model.safetensors': writeSafetensors(t as never, { format: 'pt' }) });
    const rejects = async (p: Promise<unknown>, re: RegExp) => { await expect(p).rejects.toBeInstanceOf(k.KilnError); await expect(p).rejects.toThrow(re); };
    await rejects(loadAdapter(loaded, bytes({ ...good, 'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight': { ...B, shape: [16, 2], data: new Float32Array(32) } }), 'default', { config }),
      /c_attn.lora_B.weight is \[16, 2\], the model .* need \[48, 2\]/);
    await rejects(loadAdapter(loaded, bytes(good), 'default', { config: { ...config, target_modules: ['q_proj'] } }), /target_modules \["q_proj"\] matches no linear module of the gpt2 checkpoint/);
    await rejects(loadAdapter(loaded, bytes(good), 'default', { config: { ...config, layers_to_transform: null } }), /missing key base_model.model.transformer.h.1.attn.c_attn.lora_A.weight/);
    await rejects(loadAdapter(loaded, bytes(good), 'default', { config: { ...config, bias: 'lora_only' } }), /bias 'lora_only' is not supported for a gpt2 model/);
    await rejects(loadAdapter(loaded, bytes(good), 'default', { config: { ...config, use_dora: true } }), /missing key base_model.model.transformer.h.0.attn.c_attn.lora_magnitude_vector/);
    const mixtral = await loadModel(join(ckpt, 'mixtral'));
    await rejects(loadAdapter(mixtral, bytes(good), 'default', { config: { ...config, target_modules: ['w1'] } }), /block_sparse_moe.experts.0.w1, one expert .* no per-expert LoRA module/);
    for (const m of [loaded.model, mixtral.model]) expect([...m.namedModules()].some(([n]) => n.endsWith('lora_A'))).toBe(false);
    // and the good one loads: q, k, v of layer 0 get the shared A
    const ok = await loadAdapter(loaded, bytes(good), 'default', { config });
    expect(ok.loraLayers().map(([n]) => n)).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.k_proj', 'model.layers.0.self_attn.v_proj']);
  });

  for (const arch of ['gpt2', 'phi3', 'gguf-llama']) {
    it(`${arch}: DoRA's magnitude goes out in the HF module's rows (fused parts stacked${arch === 'gguf-llama' ? ', q/k un-permuted' : ''}) and back`, async () => {
      const load = () => (arch === 'gguf-llama' ? loadModel(join(ckpt, 'gguf', 'tiny-llama.gguf'), { quantize: 'none' }) : loadModel(join(ckpt, arch)));
      const peft = getPeftModel(await load(), { r: 2, lora_alpha: 4, target_modules: arch === 'gpt2' ? ['q_proj', 'k_proj', 'v_proj', 'fc2'] : ['q_proj', 'k_proj', 'v_proj', 'o_proj'], use_dora: true, init_lora_weights: false }, 'default', { generator: new k.Generator(3) });
      // magnitudes unlike the row norms (as after training), so every row's place matters
      k.noGrad(() => peft.loraLayers().forEach(([, l], j) => { const m = l.magnitude('default')!.weight; m.assign(k.mul(m, k.tensor(rand(m.size, 40 + j, 1).map((x) => 1 + x), { shape: m.shape }))); }));
      const want = await logitsOf(peft);
      const files = await savePretrained(peft, 'files');
      const st = await readSt(files['adapter_model.safetensors']);
      const mod = arch === 'gpt2' ? 'transformer.h.0.attn.c_attn' : arch === 'phi3' ? 'model.layers.0.self_attn.qkv_proj' : 'model.layers.0.self_attn.q_proj';
      expect(st.get(`base_model.model.${mod}.lora_magnitude_vector`)!.shape).toEqual([st.get(`base_model.model.${mod}.lora_B.weight`)!.shape[0]]);
      let onto = await load();
      if (arch === 'gguf-llama') {
        // onto the same weights in Hugging Face's layout
        const g = onto.model as DecoderLM;
        onto = await loadModel({
          'config.json': new TextEncoder().encode(JSON.stringify(configToHF({ ...g.config, ropeLayout: 'half' }, 'llama'))),
          'model.safetensors': writeSafetensors(await exportStateDict(g, { arch: 'llama' }), { format: 'pt' }),
        });
      }
      const again = await loadAdapter(onto, files);
      assertClose(await logitsOf(again), want, { atol: tol * maxAbs(want), rtol: 0 }, 'DoRA logits after the round trip');
      const st2 = await readSt((await savePretrained(again, 'files'))['adapter_model.safetensors']);
      for (const [key, t] of st) assertClose(st2.get(key)!.data, t.data, { atol: 1e-6 * maxAbs(t.data), rtol: 0 }, key);
    });
  }
});
