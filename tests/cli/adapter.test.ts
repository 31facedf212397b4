// The adapter CLI as a user meets it (child processes of bin/kiln.mjs): --adapter on logits gives
// the PyTorch golden logits (tests/golden/peft/generate.py); --adapter-weights equals one adapter
// whose lora_B is scaled by hand; kiln merge writes a Hugging Face folder whose tensors are
// W + s·B·A computed here and whose logits equal --adapter's and PyTorch's merged ones; kiln
// adapter info reports the config and the parameters counted from the safetensors header; bad
// adapter folders are one-line errors.
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('../..', import.meta.url).pathname;
const tmp = join(root, '.cache', 'cli-adapter');
rmSync(tmp, { recursive: true, force: true });
mkdirSync(tmp, { recursive: true });
const peftDir = join(root, 'tests/golden/peft');
const ckpt = (arch: string) => join(root, 'tests/golden/checkpoints', arch);

const kiln = (args: string[]) => {
  const r = spawnSync(process.execPath, [join(root, 'bin/kiln.mjs'), ...args], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr.split('\n').filter((l) => l && !l.includes('XDG_RUNTIME_DIR')).join('\n') };
};
/** The error: exactly one line with one 'kiln:' prefix. */
const oneLine = (err: string): string => {
  expect(err.includes('\n'), `one line: ${JSON.stringify(err)}`).toBe(false);
  expect(err.startsWith('kiln: ') && !err.slice(6).includes('kiln:'), `one prefix: ${err}`).toBe(true);
  return err.slice(6);
};

/** A safetensors file read here (8-byte header length, JSON header, little-endian F32 data). */
function readST(path: string): Map<string, { shape: number[]; data: Float32Array }> {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8'));
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [k, v] of Object.entries(header) as [string, { dtype: string; shape: number[]; data_offsets: [number, number] }][]) {
    if (k === '__metadata__') continue;
    expect(v.dtype, k).toBe('F32');
    const bytes = b.subarray(8 + n + v.data_offsets[0], 8 + n + v.data_offsets[1]);
    out.set(k, { shape: v.shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) });
  }
  return out;
}
function writeST(path: string, tensors: Map<string, { shape: number[]; data: Float32Array }>): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const [k, t] of tensors) {
    header[k] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let h = Buffer.from(JSON.stringify(header));
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(path, Buffer.concat([len, h, ...[...tensors.values()].map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))]));
}

const golden = (name: string) => JSON.parse(readFileSync(join(peftDir, name, 'golden.json'), 'utf8')) as { ids: { data: number[] }; logits: { data: number[] }; mergedLogits: { data: number[] } };
const logits = (args: string[]): number[] => {
  const r = kiln(['logits', '--backend', 'wasm', '--json', ...args]);
  expect(r.err, r.err).toBe('');
  expect(r.code).toBe(0);
  return (JSON.parse(r.out).logits as number[][]).flat();
};
/** max |a − b| within rel · max |b| */
const expectClose = (a: number[], b: number[], rel: number, what: string) => {
  expect(a.length, what).toBe(b.length);
  const scale = Math.max(...b.map(Math.abs));
  const err = Math.max(...a.map((x, i) => Math.abs(x - b[i])));
  expect(err, `${what}: max error ${err} vs scale ${scale}`).toBeLessThanOrEqual(rel * scale);
};

describe('kiln logits --adapter', () => {
  for (const [arch, method] of [['llama', 'lora'], ['qwen2', 'dora'], ['llama', 'rslora']]) {
    it(`${arch} ${method}: the PyTorch golden logits`, () => {
      const g = golden(`${arch}-${method}`);
      const got = logits(['--model', ckpt(arch), '--adapter', join(peftDir, `${arch}-${method}`), '--tokens', g.ids.data.join(',')]);
      expectClose(got, g.logits.data, 1e-4, 'logits');
    });
  }

  it('webgpu: llama lora, the PyTorch golden logits', () => {
    const g = golden('llama-lora');
    const r = kiln(['logits', '--backend', 'webgpu', '--json', '--model', ckpt('llama'), '--adapter', join(peftDir, 'llama-lora'), '--tokens', g.ids.data.join(',')]);
    expect(r.code, r.err).toBe(0);
    expectClose((JSON.parse(r.out).logits as number[][]).flat(), g.logits.data, 1e-3, 'webgpu logits');
  });

  it('--adapter A,B --adapter-weights equals one adapter holding both, lora_B scaled by weight × scaling by hand', () => {
    // llama-lora (q, v, down; alpha/r = 2) and llama-rslora (k, o, up; alpha/√r: k 8/2, o 16/2, up r=2: 8/√2) target disjoint layers
    const w = [0.7, -0.4];
    const scale: Record<string, number> = { q_proj: 2, v_proj: 2, down_proj: 2, k_proj: 4, o_proj: 8, up_proj: 8 / Math.SQRT2 };
    const union = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [i, name] of ['llama-lora', 'llama-rslora'].entries()) {
      for (const [k, t] of readST(join(peftDir, name, 'adapter_model.safetensors'))) {
        const s = k.includes('.lora_B.') ? w[i] * scale[k.split('.').at(-3)!] : 1;
        union.set(k, { shape: t.shape, data: t.data.map((x) => x * s) });
      }
    }
    const dir = join(tmp, 'union');
    mkdirSync(dir, { recursive: true });
    const conf = JSON.parse(readFileSync(join(peftDir, 'llama-lora', 'adapter_config.json'), 'utf8'));
    // scaling 1 everywhere: alpha = r
    Object.assign(conf, { target_modules: Object.keys(scale), r: 4, lora_alpha: 4, rank_pattern: { up_proj: 2 }, alpha_pattern: { up_proj: 2 }, use_rslora: false });
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(conf));
    writeST(join(dir, 'adapter_model.safetensors'), union);
    const ids = '1,5,12,0,7,33,21';
    const want = logits(['--model', ckpt('llama'), '--adapter', dir, '--tokens', ids]);
    const both = `${join(peftDir, 'llama-lora')},${join(peftDir, 'llama-rslora')}`;
    expectClose(logits(['--model', ckpt('llama'), '--adapter', both, '--adapter-weights', w.join(','), '--tokens', ids]), want, 1e-5, 'weighted');
    // and the weights matter: unweighted is another answer
    const plain = logits(['--model', ckpt('llama'), '--adapter', both, '--tokens', ids]);
    expect(Math.max(...plain.map((x, i) => Math.abs(x - want[i])))).toBeGreaterThan(1e-2);
  });

  it('adapters on the same layers add up: the golden adapter twice, weights 0.25 and 0.75, is the golden adapter (logits and merge)', () => {
    const g = golden('llama-lora');
    const twice = `${join(peftDir, 'llama-lora')},${join(peftDir, 'llama-lora')}`;
    const ids = g.ids.data.join(',');
    expectClose(logits(['--model', ckpt('llama'), '--adapter', twice, '--adapter-weights', '0.25,0.75', '--tokens', ids]), g.logits.data, 1e-4, 'logits');
    const out = join(tmp, 'merged-twice');
    const r = kiln(['merge', '--model', ckpt('llama'), '--adapter', twice, '--adapter-weights', '0.25,0.75', '--out', out, '--backend', 'wasm']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('merged 2 adapters');
    expectClose(logits(['--model', out, '--tokens', ids]), g.mergedLogits.data, 1e-4, 'merged');
  });

  it('flags: --adapter-weights checked against --adapter before the model loads; DoRA refuses weights', () => {
    const m = ckpt('llama');
    const lora = join(peftDir, 'llama-lora');
    expect(oneLine(kiln(['logits', '--model', m, '--adapter', lora, '--adapter-weights', '0.5,1', '--tokens', '1']).err)).toBe('--adapter-weights has 2 weights for 1 adapters (one per --adapter folder)');
    expect(oneLine(kiln(['logits', '--model', m, '--adapter-weights', '0.5', '--tokens', '1']).err)).toBe('--adapter-weights needs --adapter');
    expect(oneLine(kiln(['logits', '--model', m, '--adapter', lora, '--adapter-weights', '0.5,x', '--tokens', '1']).err)).toBe('--adapter-weights: entry 1 of "0.5,x" is "x", not a number');
    expect(oneLine(kiln(['logits', '--model', m, '--adapter', `${lora},`, '--tokens', '1']).err)).toContain('--adapter: an empty folder name');
    expect(oneLine(kiln(['logits', '--model', m, '--adapter', `${join(peftDir, 'llama-dora')},${lora}`, '--adapter-weights', '0.5,1', '--tokens', '1']).err)).toContain('llama-dora is a DoRA adapter');
    expect(oneLine(kiln(['generate', '--model', m, '--prompt', 'x', '--adaptr', lora]).err)).toContain('did you mean --adapter?');
    for (const c of ['logits', 'generate', 'chat', 'perplexity', 'merge']) expect(kiln([c, '--help']).out).toContain('--adapter DIR[,DIR...]');
    expect(kiln(['--help']).out).toContain('kiln adapter info DIR');
  });
});

describe('kiln merge', () => {
  it('a Hugging Face folder: W + s·B·A by hand, its logits = --adapter logits (1e-5) = PyTorch merged logits, tokenizer files copied', () => {
    const base = join(tmp, 'llama');
    cpSync(ckpt('llama'), base, { recursive: true });
    writeFileSync(join(base, 'tokenizer.json'), JSON.stringify({ model: { type: 'WordLevel', vocab: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`w${i}`, i])), unk_token: 'w0' }, pre_tokenizer: { type: 'WhitespaceSplit' } }));
    writeFileSync(join(base, 'generation_config.json'), JSON.stringify({ eos_token_id: 2 }));
    const adapter = join(peftDir, 'llama-lora');
    const out = join(tmp, 'merged');
    const r = kiln(['merge', '--model', base, '--adapter', adapter, '--out', out, '--backend', 'wasm']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json']);
    for (const f of ['tokenizer.json', 'generation_config.json']) expect(readFileSync(join(out, f), 'utf8')).toBe(readFileSync(join(base, f), 'utf8'));
    const conf = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    const orig = JSON.parse(readFileSync(join(base, 'config.json'), 'utf8'));
    for (const k of ['model_type', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'vocab_size', 'intermediate_size']) expect(conf[k], k).toEqual(orig[k]);

    // the tensors: the base's names; targets W + 2·B·A (alpha/r = 8/4), the rest bit for bit
    const W = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const f of readdirSync(base).filter((f) => f.endsWith('.safetensors'))) for (const [k, t] of readST(join(base, f))) W.set(k, t);
    const merged = readST(join(out, 'model.safetensors'));
    expect([...merged.keys()].sort()).toEqual([...W.keys()].sort());
    const ad = readST(join(adapter, 'adapter_model.safetensors'));
    let targets = 0;
    for (const [k, t] of W) {
      const A = ad.get(`base_model.model.${k.replace(/\.weight$/, '')}.lora_A.weight`);
      const B = ad.get(`base_model.model.${k.replace(/\.weight$/, '')}.lora_B.weight`);
      const got = merged.get(k)!;
      expect(got.shape, k).toEqual(t.shape);
      if (!A || !B) {
        expect(got.data, k).toEqual(t.data);
        continue;
      }
      targets++;
      const [o, i] = t.shape;
      const r = A.shape[0];
      const want = t.data.map((w, x) => {
        let s = 0;
        for (let j = 0; j < r; j++) s += B.data[Math.floor(x / i) * r + j] * A.data[j * i + (x % i)];
        return w + 2 * s;
      });
      expectClose([...got.data], [...want], 1e-6, k);
      expect(o).toBe(B.shape[0]);
    }
    expect(targets).toBe(6); // q, v, down in 2 layers

    const g = golden('llama-lora');
    const ids = g.ids.data.join(',');
    const viaMerged = logits(['--model', out, '--tokens', ids]);
    expectClose(viaMerged, logits(['--model', base, '--adapter', adapter, '--tokens', ids]), 1e-5, 'merged vs --adapter');
    expectClose(viaMerged, g.mergedLogits.data, 1e-4, 'merged vs PyTorch');
    // generate and perplexity with --adapter: the merged folder's answers (the base's differ)
    const text = join(tmp, 'text.txt');
    writeFileSync(text, 'w1 w5 w12 w0 w7 w33 w21 w3 w9 w14');
    const run = (args: string[]) => {
      const x = kiln(args);
      expect(x.code, x.err).toBe(0);
      return x.out;
    };
    const gen = (m: string, extra: string[] = []) => run(['generate', '--model', m, '--prompt', 'w1 w5 w12', '--max-tokens', '8', '--backend', 'wasm', ...extra]);
    expect(gen(base, ['--adapter', adapter])).toBe(gen(out));
    const ppl = (m: string, extra: string[] = []) => JSON.parse(run(['perplexity', '--model', m, '--file', text, '--backend', 'wasm', ...extra])).perplexity as number;
    const p = ppl(out);
    expect(Math.abs(ppl(base, ['--adapter', adapter]) - p)).toBeLessThan(1e-5 * p);
    expect(Math.abs(ppl(base) - p)).toBeGreaterThan(1e-3 * p);

    // a non-empty --out is refused (one line), --force writes over it
    const again = kiln(['merge', '--model', base, '--adapter', adapter, '--out', out]);
    expect(again.code).toBe(1);
    expect(oneLine(again.err)).toBe(`--out ${out}: already exists and is not empty (EEXIST); --force writes over it`);
    writeFileSync(join(out, 'model-00002-of-00002.safetensors'), 'stale');
    const forced = kiln(['merge', '--model', base, '--adapter', join(peftDir, 'llama-rslora'), '--out', out, '--force', '--backend', 'wasm']);
    expect(forced.code, forced.err).toBe(0);
    expect(readdirSync(out)).not.toContain('model-00002-of-00002.safetensors');
    const rs = golden('llama-rslora');
    expectClose(logits(['--model', out, '--tokens', rs.ids.data.join(',')]), rs.mergedLogits.data, 1e-4, 'forced rslora merge vs PyTorch');
    expect(oneLine(kiln(['merge', '--model', base, '--adapter', adapter, '--out', base, '--force']).err)).toContain('is the --model folder');
  });
});

describe('kiln adapter info', () => {
  /** Parameters counted from the header, independently of kiln. */
  const count = (dir: string) => [...readST(join(dir, 'adapter_model.safetensors')).values()].reduce((a, t) => a + t.data.length, 0);

  it('method, rank, alpha, targets, trainable parameters and base model of each adapter in the folder (subfolders too)', () => {
    const dir = join(tmp, 'multi');
    cpSync(join(peftDir, 'llama-lora'), dir, { recursive: true });
    cpSync(join(peftDir, 'llama-rslora'), join(dir, 'style'), { recursive: true });
    cpSync(join(peftDir, 'llama-dora'), join(dir, 'dora'), { recursive: true });
    const r = kiln(['adapter', 'info', dir, '--json']);
    expect(r.code, r.err).toBe(0);
    const infos = JSON.parse(r.out).adapters as Record<string, unknown>[];
    expect(infos.map((a) => a.name)).toEqual(['default', 'dora', 'style']);
    for (const [a, src] of [[infos[0], 'llama-lora'], [infos[1], 'llama-dora'], [infos[2], 'llama-rslora']] as const) {
      const c = JSON.parse(readFileSync(join(peftDir, src, 'adapter_config.json'), 'utf8'));
      for (const k of ['peft_type', 'use_dora', 'use_rslora', 'r', 'rank_pattern', 'lora_alpha', 'alpha_pattern', 'target_modules', 'base_model_name_or_path']) expect(a[k], `${src} ${k}`).toEqual(c[k]);
      expect(a.trainable_parameters, src).toBe(count(join(peftDir, src)));
    }
    expect(infos.map((a) => a.method)).toEqual(['LoRA', 'DoRA', 'rsLoRA']);
    expect(infos[2].scaling).toBe(4); // 8 / √4

    const text = kiln(['adapter', 'info', join(peftDir, 'llama-rslora')]);
    expect(text.code).toBe(0);
    expect(text.out).toContain('method: rsLoRA (peft_type LORA, use_dora false, use_rslora true)');
    expect(text.out).toContain('rank: 4 (pattern {"up_proj":2})');
    expect(text.out).toContain('alpha: 8 (pattern {"o_proj":16})');
    expect(text.out).toContain('targets: k_proj, o_proj, up_proj; bias: none');
    expect(text.out).toContain(`trainable parameters: ${count(join(peftDir, 'llama-rslora')).toLocaleString('en-US')} (`);
    expect(text.out).toContain('base model: tests/golden/checkpoints/llama');
  });
});

describe('bad adapter folders are one-line errors (exit 1)', () => {
  const bad = (name: string, edit: (dir: string) => void): string => {
    const dir = join(tmp, 'bad', name);
    cpSync(join(peftDir, 'llama-lora'), dir, { recursive: true });
    edit(dir);
    return dir;
  };
  const conf = (dir: string, f: (c: Record<string, unknown>) => void) => {
    const c = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    f(c);
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(c));
  };
  const cases: [string, string, RegExp][] = [
    ['missing', join(tmp, 'no-such-adapter'), /no-such-adapter: no such folder/],
    ['not an adapter folder', ckpt('llama'), /has no adapter_config\.json/],
    ['a file', join(peftDir, 'llama-lora', 'adapter_config.json'), /a file, not an adapter folder/],
    ['unknown peft_type', bad('ia3', (d) => conf(d, (c) => (c.peft_type = 'IA3'))), /adapter_config\.json: peft_type: "IA3" is not supported/],
    ['bad JSON', bad('json', (d) => writeFileSync(join(d, 'adapter_config.json'), '{"r": 4,')), /adapter_config\.json: not valid JSON/],
    ['bad rank', bad('rank', (d) => conf(d, (c) => (c.r = 0))), /adapter_config\.json: r:/],
    ['no weights', bad('noweights', (d) => rmSync(join(d, 'adapter_model.safetensors'))), /has no adapter_model\.safetensors/],
    ['truncated weights', bad('trunc', (d) => writeFileSync(join(d, 'adapter_model.safetensors'), Buffer.alloc(4))), /adapter_model\.safetensors: truncated/],
  ];
  for (const [what, dir, re] of cases) {
    it(what, () => {
      for (const args of [['adapter', 'info', dir], ['logits', '--model', ckpt('llama'), '--adapter', dir, '--tokens', '1,2']]) {
        const r = kiln(args);
        expect(r.code, `${args[0]}: ${r.err}`).toBe(1);
        expect(r.out).toBe('');
        expect(oneLine(r.err), args[0]).toMatch(re);
      }
    });
  }

  it('a rank that disagrees with the weights: logits and merge name the tensor; merge writes nothing', () => {
    const dir = bad('shape', (d) => conf(d, (c) => (c.r = 8)));
    const out = join(tmp, 'bad-merge-out');
    for (const args of [['logits', '--model', ckpt('llama'), '--adapter', dir, '--tokens', '1'], ['merge', '--model', ckpt('llama'), '--adapter', dir, '--out', out]]) {
      const r = kiln(args);
      expect(r.code).toBe(1);
      expect(oneLine(r.err)).toMatch(/adapter_model\.safetensors: base_model\.model\.model\.layers\.\d\.[a-z_.]+\.lora_[AB]\.weight is \[\d+, ?\d+\], .* need \[\d+, ?\d+\]/);
    }
    expect(() => readdirSync(out)).toThrow();
    expect(oneLine(kiln(['adapter', 'info', '--json']).err)).toBe('DIR is required: the adapter folder (adapter_config.json, adapter_model.safetensors) (kiln adapter info --help)');
  });
});
