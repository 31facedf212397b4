// Tape semantics: accumulation, zeroGrad, noGrad, detach, retainGrad, hooks, custom functions.
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';

describeBackends('autograd', () => {
  it('accumulates into .grad across backward calls, zeroGrad clears', async () => {
    const x = k.tensor([1, 2, 3], { requiresGrad: true });
    k.sum(k.mul(x, x)).backward();
    k.sum(k.mul(x, 3)).backward();
    assertClose(await x.grad!.toArray(), [2 + 3, 4 + 3, 6 + 3]);
    x.zeroGrad();
    expect(x.grad).toBeNull();
  });

  it('sums gradients of a tensor used twice (diamond graph)', async () => {
    const x = k.tensor([0.5, -1], { requiresGrad: true });
    const y = k.exp(x);
    k.sum(k.add(k.mul(y, y), y)).backward(); // d/dx (e^2x + e^x)
    assertClose(await x.grad!.toArray(), [0.5, -1].map((v) => 2 * Math.exp(2 * v) + Math.exp(v)));
  });

  it('noGrad records nothing; detach cuts the graph', async () => {
    const x = k.tensor([1, 2], { requiresGrad: true });
    const y = k.noGrad(() => k.mul(x, 2));
    expect(y.requiresGrad).toBe(false);
    const d = x.detach();
    expect(d.requiresGrad).toBe(false);
    const z = k.sum(k.add(k.mul(d, x), x));
    z.backward();
    assertClose(await x.grad!.toArray(), [2, 3]); // d contributes as a constant
  });

  it('keeps non-leaf grads only after retainGrad', async () => {
    const x = k.tensor([1, 2, 3], { requiresGrad: true });
    const h = k.mul(x, 2).retainGrad();
    const h2 = k.mul(x, 3);
    k.sum(k.mul(h, h)).backward(); // d/dh = 2h
    assertClose(await h.grad!.toArray(), [4, 8, 12]);
    expect(h2.grad).toBeNull();
    assertClose(await x.grad!.toArray(), [8, 16, 24]);
  });

  it('hooks see and can replace a gradient', async () => {
    const x = k.tensor([1, -1], { requiresGrad: true });
    const h = k.mul(x, 3);
    const seen: number[][] = [];
    h.registerHook((g) => { seen.push([...g.shape]); return k.mul(g, 10); });
    const remove = x.registerHook((g) => k.add(g, 1));
    k.sum(h).backward();
    assertClose(await x.grad!.toArray(), [31, 31]); // (1 * 10) * 3 + 1
    expect(seen).toEqual([[2]]);
    remove();
    x.zeroGrad();
    k.sum(k.mul(x, 3)).backward();
    assertClose(await x.grad!.toArray(), [3, 3]);
  });

  it('backward through a non-scalar needs a gradient; with one it is a vector-Jacobian product', async () => {
    const x = k.tensor([1, 2], { requiresGrad: true });
    const y = k.mul(x, x);
    expect(() => y.backward()).toThrow(k.KilnError);
    expect(() => y.backward()).toThrow(/scalar/);
    y.backward(k.tensor([1, 0.5]));
    assertClose(await x.grad!.toArray(), [2, 2]);
  });

  it('retainGraph allows a second backward', async () => {
    const x = k.tensor([2], { requiresGrad: true });
    const y = k.sum(k.exp(x));
    y.backward(undefined, { retainGraph: true });
    y.backward();
    assertClose(await x.grad!.toArray(), [2 * Math.exp(2)]);
  });

  it('straight-through estimator: round forward, identity backward (the documented example)', async () => {
    const roundSTE = k.customOp({ name: 'roundSTE', forward: (_ctx, x: k.Tensor) => k.round(x), backward: (_ctx, g) => [g] });
    const x = k.tensor([0.4, 1.6, -2.5], { requiresGrad: true });
    const y = roundSTE(x);
    assertClose(await y.toArray(), [0, 2, -2]); // ties to even, as torch.round
    k.sum(k.mul(y, k.tensor([1, 2, 3]))).backward();
    assertClose(await x.grad!.toArray(), [1, 2, 3]);
  });

  it('a custom backward that returns the wrong count is a typed error', () => {
    const bad = k.customOp({ name: 'bad', forward: (_c, x: k.Tensor) => k.mul(x, 2), backward: () => [] });
    const x = k.tensor([1], { requiresGrad: true });
    expect(() => k.sum(bad(x)).backward()).toThrow(/bad.backward/);
  });

  it('gradients of f16 storage flow back as f32', async () => {
    const w = k.cast(k.tensor([0.5, 1.5]), 'f16');
    w.requiresGrad = true;
    k.sum(k.mul(w, k.tensor([2, 3]))).backward();
    expect(w.grad!.dtype).toBe('f32');
    assertClose(await w.grad!.toArray(), [2, 3]);
  });
});

describeBackends('autograd graph release', () => {
  it('a second backward through a released graph is a typed error, not silent partial gradients', () => {
    const x = k.tensor([1, 2], { requiresGrad: true });
    const h = k.exp(x);
    k.sum(h).backward();
    expect(() => k.sum(k.mul(h, 2)).backward()).toThrow(/backward through the graph a second time/);
  });
});
