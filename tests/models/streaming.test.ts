// Loading streams tensors one by one: on a ~330 MB F16 checkpoint written here, the loader's
// host memory (JS heap plus ArrayBuffers, after a collection, at every read) stays well under
// the file's size, near the largest tensor (its bytes, converted and uploaded a chunk at a
// time); the weights themselves go to the WebGPU device.
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';
import { fileSource, type ByteSource } from '../../src/models/sources.js';

describe('streamed loading', () => {
  it('peak host memory while loading a ~330 MB checkpoint stays near the largest tensor, far from the file size', { timeout: 300_000 }, async () => {
    const cfg = { model_type: 'llama', vocab_size: 32000, hidden_size: 1024, num_hidden_layers: 8, num_attention_heads: 16, num_key_value_heads: 16, intermediate_size: 2816, max_position_embeddings: 64, rms_norm_eps: 1e-6, tie_word_embeddings: false };
    const H = cfg.hidden_size;
    const I = cfg.intermediate_size;
    const shapes: [string, number[]][] = [['model.embed_tokens.weight', [cfg.vocab_size, H]], ['model.norm.weight', [H]], ['lm_head.weight', [cfg.vocab_size, H]]];
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      const p = `model.layers.${l}.`;
      shapes.push([`${p}input_layernorm.weight`, [H]], [`${p}post_attention_layernorm.weight`, [H]]);
      for (const n of ['q', 'k', 'v', 'o']) shapes.push([`${p}self_attn.${n}_proj.weight`, [H, H]]);
      shapes.push([`${p}mlp.gate_proj.weight`, [I, H]], [`${p}mlp.up_proj.weight`, [I, H]], [`${p}mlp.down_proj.weight`, [H, I]]);
    }
    // write the file piece by piece (the test itself never holds it whole)
    const dir = new URL('../../.cache/big-checkpoint/', import.meta.url).pathname;
    mkdirSync(dir, { recursive: true });
    const header: Record<string, unknown> = {};
    let off = 0;
    for (const [n, s] of shapes) {
      const bytes = s.reduce((a, b) => a * b, 1) * 2;
      header[n] = { dtype: 'F16', shape: s, data_offsets: [off, off + bytes] };
      off += bytes;
    }
    const h = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    const path = join(dir, 'model.safetensors');
    const fd = openSync(path, 'w');
    writeSync(fd, len);
    writeSync(fd, h);
    const chunk = Buffer.alloc(1 << 22);
    for (let i = 0; i < chunk.length; i += 2) chunk.writeUInt16LE(0x2c00 + ((i >> 1) % 512), i); // small halves
    for (let left = off; left > 0; left -= chunk.length) writeSync(fd, left >= chunk.length ? chunk : chunk.subarray(0, left));
    closeSync(fd);
    const fileBytes = 8 + h.length + off;
    const largest = Math.max(...shapes.map(([, s]) => s.reduce((a, b) => a * b, 1) * 2));

    const backend = await k.createBackend('webgpu');
    k.use(backend);
    const host = (): number => {
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(gc).toBeTypeOf('function'); // vitest.config.ts runs the forks with --expose-gc
    gc!();
    const base = host();
    let peak = base;
    const inner = await fileSource(path);
    const sampled: ByteSource = {
      name: inner.name,
      size: inner.size,
      read: async (o, n) => {
        gc?.(); // what the loader holds, not garbage awaiting the collector
        peak = Math.max(peak, host());
        const b = await inner.read(o, n);
        peak = Math.max(peak, host());
        return b;
      },
      close: () => inner.close!(),
    };
    const lm = await k.loadModel({ 'config.json': new TextEncoder().encode(JSON.stringify(cfg)), 'model.safetensors': sampled }, { backend });
    peak = Math.max(peak, host());
    const used = peak - base;
    console.log(`[streaming] file ${(fileBytes / 2 ** 20).toFixed(0)} MiB, largest tensor ${(largest / 2 ** 20).toFixed(0)} MiB (F16), peak host memory while loading +${(used / 2 ** 20).toFixed(0)} MiB (${(used / largest).toFixed(2)}x the largest tensor)`);
    expect(fileBytes).toBeGreaterThan(300 * 2 ** 20);
    expect(used).toBeLessThan(fileBytes * 0.75);
    expect(used).toBeLessThan(largest * 1.5);
    expect([...lm.model.namedParameters()].length).toBe(shapes.length);
    rmSync(dir, { recursive: true, force: true });
  });
});
