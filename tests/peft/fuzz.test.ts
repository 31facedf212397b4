// Bad adapter files, systematically: every adapter_config.json field set to every adversarial JSON
// value (tests/fuzz/values.mjs), and seeded bit flips, key renames, shape edits and truncations of
// adapter_model.safetensors. Each load must end in a KilnError (the model untouched) or in an
// adapter that runs to finite logits; nothing may throw anything else.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { KilnError } from '../../src/core/errors.js';
import { loadModel } from '../../src/models/load.js';
import { LoraLinear } from '../../src/peft/lora.js';
import { JSON_VALUES, describe as show, flipBits, setField } from '../fuzz/values.mjs';
import { Rng } from '../fuzz/rng.mjs';

const ckpt = new URL('../golden/checkpoints/', import.meta.url).pathname;
const dir = new URL('../golden/peft/qwen2-dora/', import.meta.url).pathname;
const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
const weights = new Uint8Array(readFileSync(join(dir, 'adapter_model.safetensors')));
const enc = (j: unknown) => new TextEncoder().encode(JSON.stringify(j));

describe('bad adapter files (systematic)', () => {
  it('every config field x every adversarial value, and mutated safetensors: a KilnError with the model untouched, or a working adapter', { timeout: 120_000 }, async () => {
    k.use(await k.createBackend('wasm'));
    const lm = await loadModel(join(ckpt, 'qwen2'));
    const nParams = lm.model.parameters().length;
    const ids = k.keep(k.tensor([[1, 5, 12, 0, 7]], { dtype: 'i32' }));
    const outcomes = { ok: 0, refused: 0 };
    const attempt = async (files: Record<string, Uint8Array>, what: string) => {
      let peft: k.peft.PeftModel | null = null;
      try {
        peft = await k.peft.loadAdapter(lm, files);
      } catch (e) {
        if (!(e instanceof KilnError)) throw new Error(`${what}: not a KilnError: ${(e as Error)?.stack ?? e}`);
        expect([...lm.model.namedModules()].some(([, m]) => m instanceof LoraLinear), `${what}: half-applied`).toBe(false);
        expect(lm.model.parameters().length, what).toBe(nParams);
        outcomes.refused++;
        return;
      }
      const v = await k.tidy(() => (peft!.call({ inputIds: ids }) as { logits: Tensor }).logits).toArray();
      expect(v.every(Number.isFinite), `${what}: finite logits`).toBe(true);
      await peft.mergeAndUnload({ merge: false }); // the base back as it was, for the next case
      outcomes.ok++;
    };
    for (const field of Object.keys(config)) {
      for (const [name, value] of JSON_VALUES) {
        const c = setField(structuredClone(config), field, value);
        await attempt({ 'adapter_config.json': enc(c), 'adapter_model.safetensors': weights }, `${field} = ${show(value)}`);
      }
    }
    const headerLen = Number(new DataView(weights.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(weights.subarray(8, 8 + headerLen)));
    const withHeader = (h: unknown): Uint8Array => {
      const body = weights.subarray(8 + headerLen);
      const hb = new TextEncoder().encode(JSON.stringify(h));
      const out = new Uint8Array(8 + hb.length + body.length);
      new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
      out.set(hb, 8);
      out.set(body, 8 + hb.length);
      return out;
    };
    const names = Object.keys(header).filter((n) => n !== '__metadata__');
    for (let i = 0; i < 60; i++) {
      const rng = new Rng('peft', 1, i);
      let w: Uint8Array;
      let what: string;
      switch (i % 4) {
        case 0: ({ bytes: w, at: what } = flipBits(rng, weights, rng.int(1, 4), 8, 8 + headerLen)); break;
        case 1: {
          const h = structuredClone(header);
          const n = rng.pick(names);
          h[n.replace(/lora_[AB]|layers\.\d/, rng.pick(['lora_C', 'layers.7', 'lora_A']))] = h[n];
          if (rng.chance(0.5)) delete h[n];
          w = withHeader(h);
          what = `renamed ${n}`;
          break;
        }
        case 2: {
          const h = structuredClone(header);
          const n = rng.pick(names);
          h[n].shape = [...h[n].shape].reverse();
          w = withHeader(h);
          what = `reversed shape of ${n}`;
          break;
        }
        default: w = weights.subarray(0, rng.int(0, weights.length)); what = `cut to ${w.length} bytes`;
      }
      await attempt({ 'adapter_config.json': enc(config), 'adapter_model.safetensors': w }, `safetensors ${what}`);
    }
    expect(outcomes.ok).toBeGreaterThan(10);
    expect(outcomes.refused).toBeGreaterThan(300);
  });
});
