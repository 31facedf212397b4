// PEFT LoRAs in GPT-2's and Phi-3's own module names (c_attn, c_proj; qkv_proj, gate_up_proj,
// down_proj), one dense A shared by the fused parts as real PEFT makes them, written with PyTorch's
// logits, loss and the gradients of the PEFT tensors by tests/golden/peft/generate.py: kiln loads
// them onto its split modules and matches; kiln's per-part gradients mapped back (A: the parts'
// sum, B: their rows stacked) equal PyTorch's; and the file kiln saves holds the golden tensors.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { loadModel } from '../../src/models/load.js';
import { nameMapOf } from '../../src/models/export.js';
import type { DecoderLM } from '../../src/models/transformer.js';
import { SafetensorsFile } from '../../src/models/loaders/safetensors.js';
import { bytesSource, pathFolder } from '../../src/models/sources.js';
import { loadAdapter, savePretrained } from '../../src/peft/io.js';
import { patternKey } from '../../src/peft/config.js';
import type { LoraLinear } from '../../src/peft/lora.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';
import { ckpt, expected, i32, maxAbs, peftDir, type Golden } from './fixtures.js';

const P = 'base_model.model.';
const readSt = async (bytes: Uint8Array) => {
  const st = await SafetensorsFile.open(bytesSource('adapter_model.safetensors', bytes));
  return new Map(await Promise.all([...st.tensors].map(async ([n, t]) => [n, { shape: t.shape, dtype: t.dtype, data: await st.float32(n) }] as const)));
};

describeBackends('PEFT LoRAs on fused HF modules vs PyTorch', ({ name }) => {
  const rel = name === 'wasm' ? 1e-4 : 1e-3;
  for (const arch of ['gpt2', 'phi3']) {
    it(`${arch}: logits, loss, gradients of the PEFT tensors, merged logits, and the file kiln saves`, async () => {
      const dir = join(peftDir, `${arch}-lora`);
      const g: Golden = JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8'));
      const loaded = await loadModel(join(ckpt, arch));
      const peft = await loadAdapter(loaded, dir, 'default', { isTrainable: true });
      const logits = async () => (peft.call({ inputIds: i32(g.ids) }) as { logits: Tensor }).logits.toArray();
      assertClose(await logits(), g.logits.data, { atol: rel * maxAbs(g.logits.data), rtol: 0 }, 'logits');

      const out = (peft.call({ inputIds: i32(g.batch) }) as { logits: Tensor }).logits;
      const loss = k.crossEntropy(k.reshape(out, [-1, out.shape[2]]), k.reshape(i32(g.labels), [-1]));
      expect(await loss.item()).toBeCloseTo(g.loss, name === 'wasm' ? 5 : 3);
      loss.backward();
      // each PEFT tensor's gradient from kiln's parts: A is shared (its gradient sums the parts'), B's rows are the parts' bands
      const map = nameMapOf(loaded.model as DecoderLM, arch, 'hf');
      const wantKeys = Object.keys(g.grads);
      for (const key of wantKeys) {
        const [, mod, which] = /^base_model\.model\.(.*)\.lora_([AB])\.weight$/.exec(key)!;
        const want = g.grads[key];
        const got = new Float32Array(want.data.length);
        for (const { param, placement } of map.tensors.get(`${mod}.weight`)!.parts) {
          const l = peft.model.getSubmodule(param.replace(/\.weight$/, '')) as unknown as LoraLinear;
          const gr = Float32Array.from(await (which === 'A' ? l.A('default') : l.B('default')).weight.grad!.toArray());
          if (which === 'A') gr.forEach((v, i) => (got[i] += v));
          else got.set(gr, (placement.rows?.[0] ?? 0) * want.shape[1]);
        }
        assertClose(got, want.data, { atol: rel * Math.max(maxAbs(want.data), 1e-3), rtol: 0 }, key);
      }

      await peft.merge({ safeMerge: true });
      assertClose(await logits(), g.mergedLogits.data, { atol: rel * maxAbs(g.mergedLogits.data), rtol: 0 }, 'merged logits');
      peft.unmerge();

      // kiln's file: the golden's tensors (names, shapes, dtypes, values), HF target names, each module's r and alpha/r as PEFT resolves them
      const files = await savePretrained(peft, 'files');
      const want = expected[`${arch}-lora`];
      const conf = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
      expect(Object.keys(conf).sort()).toEqual(want.configKeys);
      for (const [f, v] of Object.entries(want.config)) if (f !== 'rank_pattern' && f !== 'alpha_pattern') expect(conf[f], f).toEqual(v);
      expect([...conf.target_modules].sort()).toEqual(want.targets);
      const mine = await readSt(files['adapter_model.safetensors']);
      const folder = await pathFolder(dir);
      const src = await folder.source('adapter_model.safetensors');
      const theirs = await readSt(new Uint8Array(await src.read(0, src.size)));
      expect(Object.fromEntries([...mine].map(([n, t]) => [n, { shape: t.shape, dtype: t.dtype }]))).toEqual(want.tensors);
      const gconf = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
      const rOf = (c: typeof conf, m: string) => { const p = patternKey(c.rank_pattern, m); return p ? c.rank_pattern[p] : c.r; };
      const aOf = (c: typeof conf, m: string) => { const p = patternKey(c.alpha_pattern, m); return p ? c.alpha_pattern[p] : c.lora_alpha; };
      for (const [key, t] of theirs) {
        assertClose(mine.get(key)!.data, t.data, { atol: 0, rtol: 0 }, key);
        if (!key.endsWith('lora_A.weight')) continue;
        const m = key.slice(P.length, -'.lora_A.weight'.length);
        expect([rOf(conf, m), aOf(conf, m) / rOf(conf, m)], m).toEqual([rOf(gconf, m), aOf(gconf, m) / rOf(gconf, m)]);
      }
    });
  }
});
