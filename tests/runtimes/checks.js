// Runtime checks shared by the Chromium page and the Deno script: kiln kernels on the runtime's
// own WebGPU adapter and on the wasm backend, each against plain-JavaScript reference math.
// Returns rows { name, got, want } that the Node side asserts on (tests/runtimes/*.test.ts).

function refMatmul(a, b, M, K, N) {
  const c = new Array(M * N).fill(0);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) { let s = 0; for (let k = 0; k < K; k++) s += a[i * K + k] * b[k * N + j]; c[i * N + j] = s; }
  return c;
}
function refSoftmax(x, rows, R) {
  const out = [];
  for (let r = 0; r < rows; r++) {
    const row = x.slice(r * R, (r + 1) * R);
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    out.push(...e.map((v) => v / s));
  }
  return out;
}
const seq = (n, f) => Array.from({ length: n }, (_, i) => f(i));

export async function runChecks(kiln, opts = {}) {
  const rows = [];
  const probe = await kiln.probeBackends();
  const { backend, fallbackReason } = await kiln.init('webgpu'); // throws when no adapter: the check fails
  rows.push({ name: 'adapter', got: probe.webgpu.available ? 1 : 0, want: 1, info: probe.webgpu.adapter, fallbackReason });
  const wasm = await kiln.createBackend('wasm');
  rows.push({ name: 'wasm simd', got: probe.wasm.simd ? 1 : 0, want: 1 });
  for (const b of [backend, wasm]) {
    kiln.use(b);
    const tag = `[${b.name}]`;
    const M = 37, K = 70, N = 19;
    const av = seq(M * K, (i) => Math.sin(i * 0.37));
    const bv = seq(K * N, (i) => Math.cos(i * 0.11));
    const c = kiln.matmul(kiln.tensor(av, { shape: [M, K] }), kiln.tensor(bv, { shape: [K, N] }));
    rows.push({ name: `matmul ${tag}`, got: Array.from(await c.toArray()), want: refMatmul(av, bv, M, K, N), atol: 1e-4 });
    const xs = seq(3 * 300, (i) => Math.sin(i) * 4);
    const sm = kiln.softmax(kiln.tensor(xs, { shape: [3, 300] }), -1);
    rows.push({ name: `softmax ${tag}`, got: Array.from(await sm.toArray()), want: refSoftmax(xs, 3, 300), atol: 1e-6 });
    // autograd: d/dx sum(x^2 * w) = 2 x w
    const x = kiln.tensor([0.5, -1.5, 2], { requiresGrad: true });
    kiln.sum(kiln.mul(kiln.mul(x, x), kiln.tensor([1, 2, 3]))).backward();
    rows.push({ name: `grad ${tag}`, got: Array.from(await x.grad.toArray()), want: [1, -6, 12], atol: 1e-6 });
    // f16 storage: stored halves read back as the nearest half (host conversion is the reference)
    const hv = [0.1, -2.5, 65504, 1e-6, 3.14159, 70000];
    const h = kiln.cast(kiln.mul(kiln.tensor(hv), 1), 'f16');
    const want = Array.from(kiln.decode('f16', kiln.encode('f16', hv), hv.length));
    rows.push({ name: `f16 storage ${tag}`, got: Array.from(await h.toArray()), want, atol: 0 });
    rows.push({ name: `f16 compute ${tag}`, got: Array.from(await kiln.add(h, h).toArray()), want: want.map((v) => v * 2), atol: 0 });
  }
  rows.push({ name: 'shader-f16 path', got: backend.ctx.f16 ? 1 : 0, want: opts.expectF16 ? 1 : 0 });
  rows.push(...tokenizerChecks(kiln));
  if (opts.loadCheckpoint) {
    // a conformance checkpoint (tests/golden/checkpoints/llama) loaded the runtime's way: files
    // read as bytes (Node, Deno) or a URL with Cache Storage (browser); logits against PyTorch
    for (const b of [backend, wasm]) {
      kiln.use(b);
      const { lm, golden } = await opts.loadCheckpoint(kiln);
      const out = kiln.noGrad(() => lm.model.call({ inputIds: kiln.tensor(golden.ids.data, { shape: golden.ids.shape, dtype: 'i32' }) }));
      const m = golden.logits.data.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
      rows.push({ name: `checkpoint logits [${b.name}]`, got: Array.from(await out.logits.toArray()), want: golden.logits.data, atol: 1e-3 * m });
    }
  }
  return rows;
}

// A tiny byte-level BPE written here (GPT-2's byte alphabet, ids = byte values, then 5 merges),
// whose ids are worked out by hand: the tokenizer's wasm module, the chat template engine and
// the packer, on this runtime.
function tokenizerChecks(kiln) {
  const chars = [];
  const printable = (b) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let n = 0;
  for (let b = 0; b < 256; b++) chars[b] = printable(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  const vocab = {};
  chars.forEach((c, b) => (vocab[c] = b));
  const merges = [['h', 'e'], ['l', 'l'], ['he', 'll'], ['hell', 'o'], ['\u0120', 'hello']];
  merges.forEach(([a, b], i) => (vocab[a + b] = 256 + i));
  const bl = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tok = new kiln.Tokenizer(
    { model: { type: 'BPE', vocab, merges }, pre_tokenizer: bl, decoder: bl, added_tokens: [{ id: 261, content: '<|end|>', special: true }] },
    { chat_template: "{% for m in messages %}<{{ m.role }}>{{ m.content }}<|end|>{% endfor %}" },
  );
  const ids = tok.encodeIds('hello hello!<|end|>\u00e9', { addSpecialTokens: false });
  const text = tok.applyChatTemplate([{ role: 'user', content: 'hello' }]);
  const packed = kiln.packSequences([[1, 2, 3], [4, 5], [6]], { seqLen: 4, strategy: 'ffd', padId: 0 });
  return [
    { name: 'tokenizer ids', got: ids, want: [259, 260, 33, 261, 195, 169], atol: 0 },
    { name: 'tokenizer decode', got: tok.decode(ids) === 'hello hello!<|end|>\u00e9' ? 1 : 0, want: 1 },
    { name: 'chat template', got: text === '<user>hello<|end|>' ? 1 : 0, want: 1 },
    { name: 'packing', got: [...packed.inputIds, ...packed.labels], want: [1, 2, 3, 6, 4, 5, 0, 0, -100, 2, 3, -100, -100, 5, -100, -100], atol: 0 },
  ];
}
