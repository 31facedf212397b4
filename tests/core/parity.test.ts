// Cross-backend parity: every kernel's WGSL version against its AssemblyScript twin on the same
// random inputs, at sizes and layouts the fixtures do not reach (K up to 4096, primes, tiles
// plus one, non-contiguous views, packed halves).
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Backend, Tensor } from '../../src/index.js';
import { assertClose, type Tol } from '../helpers/assert-close.js';

let wasm: Backend;
let gpu: Backend;
/** WebGPU with the GPU schedules forced (this adapter may be a CPU one, which gets other schedules) */
let gpuSchedules: Backend;
beforeAll(async () => {
  wasm = await k.createBackend('wasm');
  gpu = await k.createBackend('webgpu');
  gpuSchedules = await k.createBackend('webgpu', { schedule: 'gpu' });
});

/** Runs fn on both backends with the same seeded inputs and compares every output. */
async function parity(inputs: (b: Backend, g: k.Generator) => Tensor[], fn: (...xs: Tensor[]) => Tensor | Tensor[], tol: Tol = {}, other = () => gpu): Promise<void> {
  const run = async (b: Backend) => {
    k.use(b);
    const xs = inputs(b, new k.Generator(99));
    const out = fn(...xs);
    const outs = Array.isArray(out) ? out : [out];
    const res = [];
    for (const o of outs) res.push({ shape: o.shape, dtype: o.dtype, data: Array.from(await o.toArray()) });
    return res;
  };
  const a = await run(wasm);
  const b = await run(other());
  expect(b.map((x) => [x.shape, x.dtype])).toEqual(a.map((x) => [x.shape, x.dtype]));
  a.forEach((x, i) => assertClose(b[i].data, x.data, tol, `output ${i}`));
}

const rn = (shape: number[]) => (b: Backend, g: k.Generator) => [k.randn(shape, { backend: b, generator: g })];
const two = (s1: number[], s2: number[]) => (b: Backend, g: k.Generator) => [k.randn(s1, { backend: b, generator: g }), k.randn(s2, { backend: b, generator: g })];

describe('parity wasm vs webgpu', () => {
  const mm: [number, number, number][] = [[1, 1, 1], [1, 2048, 2048], [3, 4096, 5], [67, 131, 61], [64, 64, 64], [65, 65, 65], [128, 256, 129], [2, 1, 300]];
  for (const [M, K, N] of mm) {
    it(`matmul ${M}x${K}x${N}`, async () => {
      await parity(two([M, K], [K, N]), k.matmul, { atol: 2e-4 * Math.sqrt(K), rtol: 1e-4 });
    });
  }
  it('x @ W^T with one to four rows (the decode GEMV that shares each weight row across threads)', async () => {
    for (const [M, K, N] of [[1, 640, 1727], [2, 37, 5], [3, 1000, 4], [4, 129, 9], [1, 4096, 3]]) {
      await parity(two([M, K], [N, K]), (x, w) => k.linear(x, w), { atol: 2e-4 * Math.sqrt(K), rtol: 1e-4 });
    }
    // batched, with an offset view of the weights
    await parity(two([3, 2, 50], [3, 9, 50]), (x, w) => k.matmul(x, k.transpose(k.slice(w, 1, 2, 9))), { atol: 1e-4 });
  });
  it('siluMul (SwiGLU) equals silu(a) * b on each backend, and across them', async () => {
    await parity(two([3, 700], [3, 700]), k.siluMul, { atol: 1e-5 });
    for (const b of [wasm, gpu]) {
      const [x, y] = two([3, 700], [3, 700])(b, new k.Generator(5));
      assertClose(await k.siluMul(x, y).toArray(), await k.mul(k.silu(x), y).toArray(), { atol: 1e-5 }, b.name);
    }
  });
  it('matmul with both operands transposed and a broadcast batch', async () => {
    await parity(two([3, 1, 37, 19], [4, 23, 37]), (a, b) => k.matmul(k.transpose(a), k.transpose(b)), { atol: 1e-4 });
  });
  it('matmul on a sliced, strided view', async () => {
    await parity(two([40, 50], [25, 30]), (a, b) => k.matmul(k.slice(k.slice(a, 0, 1, 39, 2), 1, 0, 50, 2), b), { atol: 1e-4 });
  });
  it('pointwise over 8-D broadcast views and 1M elements', async () => {
    await parity(two([2, 1, 3, 1, 2, 1, 3, 2], [5, 1, 2, 1, 3, 1]), (a, b) => k.silu(k.mul(k.permute(a, [7, 6, 5, 4, 3, 2, 1, 0]), b)).sum([0, 3]));
    await parity((b, g) => [k.randn([1000, 1000], { backend: b, generator: g })], (a) => k.gelu(k.transpose(a), 'tanh').sum(0), { atol: 1e-3 });
  });
  it('reductions over long and odd rows', async () => {
    for (const R of [1, 7, 255, 256, 257, 4099]) {
      await parity(rn([3, R]), (x) => [k.sum(x, 1), k.max(x, 1), k.min(x, 1), k.argmax(x, 1), k.argmin(x, 1), k.logsumexp(x, 1), k.softmax(x, 1), k.logSoftmax(x, 1)], { atol: 1e-4 * Math.sqrt(R) });
    }
  });
  it('reductions over leading axes of a 4-D tensor', async () => {
    await parity(rn([5, 6, 7, 8]), (x) => [k.sum(x, [0, 2]), k.mean(x, [1, 3], { keepdim: true }), k.variance(x, [0, 1, 2])], { atol: 1e-4 });
  });
  it('f16 and bf16 storage: packed loads and stores agree with the wasm twin', async () => {
    await parity(rn([7, 9]), (x) => {
      const h = k.cast(k.mul(x, 100), 'f16');
      const bf = k.cast(k.mul(x, 1e4), 'bf16');
      return [h, bf, k.add(h, bf), k.cast(k.transpose(h), 'f32'), k.concat([h, h], 1), k.matmul(h, k.transpose(bf))];
    }, { atol: 1e-2, rtol: 1e-3 });
  });
  it('gather, scatter and embedding at vocab size', async () => {
    await parity((b, g) => [k.randn([1000, 64], { backend: b, generator: g }), k.randint(0, 1000, [300], { backend: b, generator: g })], (w, ids) => {
      const e = k.embedding(k.reshape(ids, [3, 100]), w);
      const back = k.indexSelect(k.transpose(w), 1, ids);
      return [e, back];
    });
  });
  it('cross-entropy at vocab size with ignored rows, and its gradient', async () => {
    await parity((b, g) => [k.mul(k.randn([33, 5003], { backend: b, generator: g }), 3), k.tensor(Int32Array.from({ length: 33 }, (_, i) => (i % 5 === 0 ? -100 : (i * 977) % 5003)), { backend: b })], (x, t) => {
      x.requiresGrad = true;
      const loss = k.crossEntropy(x, t, { labelSmoothing: 0.05 });
      loss.backward();
      return [loss, x.grad!];
    }, { atol: 1e-5 });
  });
});

describe('parity wasm vs the GPU schedules of WebGPU', () => {
  it('x @ W^T with one to four rows: the GEMV whose threads share each weight row', async () => {
    for (const [M, K, N] of [[1, 640, 1727], [2, 37, 5], [3, 1000, 4], [4, 129, 9]]) {
      await parity(two([M, K], [N, K]), (x, w) => k.linear(x, w), { atol: 2e-4 * Math.sqrt(K), rtol: 1e-4 }, () => gpuSchedules);
    }
    await parity(two([3, 2, 50], [3, 9, 50]), (x, w) => k.matmul(x, k.transpose(k.slice(w, 1, 2, 9))), { atol: 1e-4 }, () => gpuSchedules);
  });
  it('the 64x64 matmul tiles', async () => {
    await parity(two([67, 131], [131, 61]), k.matmul, { atol: 3e-3, rtol: 1e-4 }, () => gpuSchedules);
  });
  it('x @ W^T through the tiles: vec4 loads along W\'s rows (K a multiple of 4), else strided', async () => {
    for (const [M, K, N] of [[67, 132, 61], [70, 64, 130], [33, 131, 17]]) {
      await parity(two([M, K], [N, K]), (x, w) => k.linear(x, w), { atol: 3e-3, rtol: 1e-4 }, () => gpuSchedules);
      await parity(two([M, K], [N, K]), (x, w) => k.linear(x, w), { atol: 3e-3, rtol: 1e-4 });
    }
    await parity(two([2, 40, 64], [2, 12, 64]), (x, w) => k.matmul(x, k.transpose(k.slice(w, 1, 4, 12))), { atol: 1e-4 }, () => gpuSchedules);
  });
});
