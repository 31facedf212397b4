// Bad input gives a KilnError naming the op and the shapes or dtypes; nothing crashes.
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import { describeBackends } from '../helpers/backends.js';

function throwsKiln(fn: () => unknown, code: k.KilnErrorCode, pattern: RegExp): void {
  let err: unknown;
  try { fn(); } catch (e) { err = e; }
  expect(err, 'expected a KilnError').toBeInstanceOf(k.KilnError);
  expect((err as k.KilnError).code).toBe(code);
  expect((err as Error).message).toMatch(pattern);
}

describeBackends('errors', ({ name }) => {
  it('shape mismatches name the op and both shapes', () => {
    throwsKiln(() => k.matmul(k.zeros([2, 3]), k.zeros([4, 5])), 'shape', /^matmul: .*\[2, 3\] @ \[4, 5\]/);
    throwsKiln(() => k.add(k.zeros([2, 3]), k.zeros([4])), 'shape', /^add: .*\[2, 3\] and \[4\]/);
    throwsKiln(() => k.reshape(k.zeros([2, 3]), [4, 2]), 'shape', /^reshape: .*\[2, 3\].*\[4, 2\]/);
    throwsKiln(() => k.view(k.transpose(k.zeros([2, 3])), [6]), 'shape', /^view: .*use reshape/);
    throwsKiln(() => k.concat([k.zeros([2, 3]), k.zeros([3, 3])], 1), 'shape', /^concat:/);
    throwsKiln(() => k.linear(k.zeros([2, 3]), k.zeros([4, 5])), 'shape', /^linear: .*\[2, 3\].*\[4, 5\]/);
    throwsKiln(() => k.crossEntropy(k.zeros([2, 3]), k.tensor([0, 1, 2], { dtype: 'i32' })), 'shape', /^crossEntropy:/);
  });
  it('dtype errors name the dtype', () => {
    throwsKiln(() => k.indexSelect(k.zeros([3, 2]), 0, k.tensor([0, 1])), 'dtype', /indexSelect: index must be i32, got f32/);
    throwsKiln(() => k.crossEntropy(k.zeros([2, 3]), k.tensor([0, 1])), 'dtype', /crossEntropy: target must be i32/);
  });
  it('axis and index errors', () => {
    throwsKiln(() => k.sum(k.zeros([2, 3]), 2), 'index', /sum: axis 2 is out of range for a tensor of rank 2/);
    throwsKiln(() => k.select(k.zeros([2, 3]), 0, 5), 'index', /select: index 5/);
  });
  it('out-of-range indices are reported, never read out of bounds', async () => {
    const w = k.tensor([[1, 2], [3, 4]]);
    const ids = k.tensor([0, 7], { dtype: 'i32' });
    if (name === 'wasm') {
      throwsKiln(() => k.embedding(ids, w), 'index', /out of range/);
    } else {
      const e = k.embedding(ids, w); // recorded: the check surfaces at the next readback
      await expect(e.toArray()).rejects.toThrow(/out of range/);
      // and the backend keeps working afterwards
      expect(Array.from(await k.embedding(k.tensor([1, 0], { dtype: 'i32' }), w).toArray())).toEqual([3, 4, 1, 2]);
    }
  });
  it('a disposed tensor is named as such', () => {
    const a = k.zeros([2]);
    a.name = 'model.layers.0.weight';
    a.dispose();
    throwsKiln(() => k.exp(a), 'disposed', /model.layers.0.weight of shape \[2\] was disposed/);
  });
  it('backward misuse', () => {
    throwsKiln(() => k.zeros([2]).backward(), 'grad', /does not require grad/);
    const x = k.zeros([2], { requiresGrad: true });
    throwsKiln(() => k.mul(x, 2).backward(), 'grad', /scalar outputs/);
    throwsKiln(() => k.mul(x, 2).backward(k.zeros([3])), 'shape', /gradient shape \[3\]/);
  });
  it('bad arguments', () => {
    throwsKiln(() => k.tensor([1, 2, 3], { shape: [2, 2] }), 'shape', /3 values do not fill shape \[2, 2\]/);
    throwsKiln(() => k.tensor([[1, 2], [3]]), 'shape', /ragged/);
    throwsKiln(() => k.clamp(k.zeros([1]), 2, 1), 'argument', /clamp: min 2 is greater than max 1/);
    throwsKiln(() => k.tidy(() => Promise.resolve(1)), 'argument', /tidy: the function must be synchronous/);
  });
});

describeBackends('allocation failures', (ctx) => {
  const { name } = ctx;
  it('an allocation the device cannot hold is a KilnError and leaves the allocator working', async () => {
    let err: unknown;
    try { ctx.backend.alloc(name === 'wasm' ? 2 ** 40 : 2 ** 52); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(k.KilnError);
    if (name === 'wasm') {
      expect(() => ctx.backend.alloc(Number.NaN)).toThrow(k.KilnError);
    }
    // the next ordinary tensor still lives and computes
    const t = k.add(k.tensor([1, 2, 3]), k.tensor([10, 20, 30]));
    expect(await t.toArray()).toEqual(new Float32Array([11, 22, 33]));
    t.dispose();
  });
});
