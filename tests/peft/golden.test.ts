// LoRA, rsLoRA and DoRA adapters in Hugging Face PEFT's files (tests/golden/peft/generate.py
// writes them, with PyTorch's unmerged and merged logits, loss and adapter gradients) loaded onto
// the tiny llama and qwen2 checkpoints; and the files kiln writes, against what the script's own
// reader found in its files (expected-files.json).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { loadModel } from '../../src/models/load.js';
import { loadAdapter, savePretrained, adapterTensors } from '../../src/peft/io.js';
import { SafetensorsFile } from '../../src/models/loaders/safetensors.js';
import { bytesSource } from '../../src/models/sources.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';
import { ckpt, expected, i32, maxAbs, peftDir, type Golden } from './fixtures.js';


describeBackends('PEFT adapters vs PyTorch', ({ name }) => {
  const rel = name === 'wasm' ? 1e-4 : 1e-3;
  for (const arch of ['llama', 'qwen2']) {
    for (const method of ['lora', 'rslora', 'dora']) {
      it(`${arch} ${method}: logits, loss, adapter gradients, merged = unmerged, and the files kiln writes`, async () => {
        const dir = join(peftDir, `${arch}-${method}`);
        const g: Golden = JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8'));
        const loaded = await loadModel(join(ckpt, arch));
        const peft = await loadAdapter(loaded, dir, 'default', { isTrainable: true });
        const logits = async () => (peft.call({ inputIds: i32(g.ids) }) as { logits: Tensor }).logits.toArray();
        assertClose(await logits(), g.logits.data, { atol: rel * maxAbs(g.logits.data), rtol: 0 }, 'logits');

        // loss and the gradient of every adapter tensor, by its PEFT key
        const out = (peft.call({ inputIds: i32(g.batch) }) as { logits: Tensor }).logits;
        const V = out.shape[2];
        const loss = k.crossEntropy(k.reshape(out, [-1, V]), k.reshape(i32(g.labels), [-1]));
        expect(await loss.item()).toBeCloseTo(g.loss, name === 'wasm' ? 5 : 3);
        loss.backward();
        const live = adapterTensors(peft, 'default');
        expect([...live.keys()].sort()).toEqual(Object.keys(g.grads).sort());
        for (const [key, want] of Object.entries(g.grads)) {
          const got = live.get(key)!.grad;
          expect(got, key).not.toBeNull();
          assertClose(await got!.toArray(), want.data, { atol: rel * Math.max(maxAbs(want.data), 1e-3), rtol: 0 }, key);
        }
        const trainable = peft.trainableParameters();
        expect(trainable.length).toBe(live.size); // the base is frozen: only the adapter trains

        // merged weights (PEFT's merge) equal PyTorch's merged logits and kiln's unmerged ones; unmerge restores
        await peft.merge({ safeMerge: true });
        assertClose(await logits(), g.mergedLogits.data, { atol: rel * maxAbs(g.mergedLogits.data), rtol: 0 }, 'merged logits');
        peft.unmerge();
        assertClose(await logits(), g.logits.data, { atol: rel * maxAbs(g.logits.data), rtol: 0 }, 'unmerged again');

        // the files kiln writes: what the golden script's reader found in PEFT-layout files
        const files = await savePretrained(peft, 'files');
        expect(Object.keys(files).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
        const want = expected[`${arch}-${method}`];
        const conf = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
        expect(Object.keys(conf).sort()).toEqual(want.configKeys);
        for (const [f, v] of Object.entries(want.config)) expect(conf[f], f).toEqual(v);
        expect([...conf.target_modules].sort()).toEqual(want.targets);
        const st = await SafetensorsFile.open(bytesSource('adapter_model.safetensors', files['adapter_model.safetensors']));
        expect(st.metadata).toEqual({ format: 'pt' });
        expect(Object.fromEntries([...st.tensors].map(([n, t]) => [n, { shape: t.shape, dtype: t.dtype }]))).toEqual(want.tensors);
        // and the values round-trip
        for (const [key, t] of live) assertClose(await st.float32(key), await t.toArray(), { atol: 0, rtol: 0 }, key);
      });
    }
  }
});
