// Parameter groups (torch's param_groups): per-group lr and weight decay, checked against a
// scalar JavaScript AdamW and against one optimizer per group.
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';

/** torch.optim.AdamW on plain numbers: the updates after each step, one gradient list per step. */
function adamwRef(p0: number[], grads: number[][], o: { lr: number; wd: number; b1?: number; b2?: number; eps?: number }): number[] {
  const { lr, wd, b1 = 0.9, b2 = 0.999, eps = 1e-8 } = o;
  const p = [...p0];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  grads.forEach((g, s) => {
    const t = s + 1;
    for (let i = 0; i < p.length; i++) {
      p[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      p[i] -= (lr * (m[i] / (1 - b1 ** t))) / (Math.sqrt(v[i] / (1 - b2 ** t)) + eps);
    }
  });
  return p;
}

describeBackends('optimizer parameter groups', () => {
  const gen = new k.Generator(7);
  const vals = (n: number) => Array.from({ length: n }, () => gen.random() * 2 - 1);
  /** Three steps with fixed gradients on each parameter. */
  const run = (opt: k.Optimizer, params: Tensor[], grads: number[][][]) => {
    for (const gs of grads) {
      params.forEach((p, i) => (p.grad = k.keep(k.tensor(gs[i], { shape: p.shape }))));
      opt.step();
      opt.zeroGrad();
    }
  };

  it('AdamW with two groups (lr, weightDecay) equals the scalar reference and two single-group optimizers', async () => {
    const a0 = vals(6);
    const b0 = vals(4);
    const grads = [0, 1, 2].map(() => [vals(6), vals(4)]);
    const mk = () => [k.tensor(a0, { shape: [2, 3] }).requiresGrad_(), k.tensor(b0, { shape: [4] }).requiresGrad_()];
    const [a, b] = mk();
    const opt = new k.AdamW([{ params: [a], lr: 0.05, weightDecay: 0.1 }, { params: [b], lr: 1e-3 }], { lr: 0.02, weightDecay: 0.3 });
    expect(opt.paramGroups.map((g) => [g.lr, g.weightDecay, g.eps, g.betas])).toEqual([[0.05, 0.1, 1e-8, [0.9, 0.999]], [1e-3, 0.3, 1e-8, [0.9, 0.999]]]);
    run(opt, [a, b], grads);
    assertClose(await a.toArray(), adamwRef(a0, grads.map((g) => g[0]), { lr: 0.05, wd: 0.1 }), { atol: 1e-6 }, 'group 0 vs reference');
    assertClose(await b.toArray(), adamwRef(b0, grads.map((g) => g[1]), { lr: 1e-3, wd: 0.3 }), { atol: 1e-6 }, 'group 1 vs reference');
    // two separate optimizers: bit for bit the same updates
    const [a2, b2] = mk();
    const oa = new k.AdamW([a2], { lr: 0.05, weightDecay: 0.1 });
    const ob = new k.AdamW([b2], { lr: 1e-3, weightDecay: 0.3 });
    for (const gs of grads) {
      a2.grad = k.keep(k.tensor(gs[0], { shape: [2, 3] }));
      b2.grad = k.keep(k.tensor(gs[1], { shape: [4] }));
      oa.step();
      ob.step();
    }
    expect(Array.from(await a.toArray())).toEqual(Array.from(await a2.toArray()));
    expect(Array.from(await b.toArray())).toEqual(Array.from(await b2.toArray()));
  });

  it('SGD groups with momentum and weight decay equal one optimizer per group', async () => {
    const a0 = vals(5);
    const b0 = vals(3);
    const grads = [0, 1, 2].map(() => [vals(5), vals(3)]);
    const [a, b, a2, b2] = [a0, b0, a0, b0].map((v) => k.tensor(v).requiresGrad_());
    run(new k.SGD([{ params: [a], momentum: 0.9, nesterov: true }, { params: [b], lr: 0.5, weightDecay: 0.01 }], { lr: 0.1 }), [a, b], grads);
    run(new k.SGD([a2], { lr: 0.1, momentum: 0.9, nesterov: true }), [a2], grads.map((g) => [g[0]]));
    run(new k.SGD([b2], { lr: 0.5, weightDecay: 0.01 }), [b2], grads.map((g) => [g[1]]));
    expect(Array.from(await a.toArray())).toEqual(Array.from(await a2.toArray()));
    expect(Array.from(await b.toArray())).toEqual(Array.from(await b2.toArray()));
    // by hand, b's first step: p - lr * (g + wd * p)
    const c = k.tensor(b0).requiresGrad_();
    run(new k.SGD([c], { lr: 0.5, weightDecay: 0.01 }), [c], [[grads[0][1]]]);
    assertClose(await c.toArray(), b0.map((p, i) => p - 0.5 * (grads[0][1][i] + 0.01 * p)), { atol: 1e-7 });
  });

  it('lr set on one group between steps (a scheduler) applies to that group only; a flat list is one group', async () => {
    const p0 = vals(4);
    const grads = [0, 1].map(() => [vals(4), vals(4)]);
    const [a, b] = [p0, p0].map((v) => k.tensor(v).requiresGrad_());
    const opt = new k.AdamW([{ params: [a] }, { params: [b] }], { lr: 0.01, weightDecay: 0 });
    run(opt, [a, b], grads.slice(0, 1));
    opt.paramGroups[1].lr = 0.1;
    run(opt, [a, b], grads.slice(1));
    // step 2 of b: its moments from step 1 (lr-independent), its update with the new lr
    const ref = (lr2: number, j: number) => {
      const m = p0.map(() => 0);
      const v = p0.map(() => 0);
      const p = [...p0];
      [0.01, lr2].forEach((lr, s) => {
        const g = grads[s][j];
        for (let i = 0; i < 4; i++) {
          m[i] = 0.9 * m[i] + 0.1 * g[i];
          v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
          p[i] -= (lr * m[i] / (1 - 0.9 ** (s + 1))) / (Math.sqrt(v[i] / (1 - 0.999 ** (s + 1))) + 1e-8);
        }
      });
      return p;
    };
    assertClose(await a.toArray(), ref(0.01, 0), { atol: 1e-6 }, 'group 0 kept lr 0.01');
    assertClose(await b.toArray(), ref(0.1, 1), { atol: 1e-6 }, 'group 1 took lr 0.1');
    const flat = new k.AdamW([a, b], { lr: 3e-4 });
    expect(flat.paramGroups.length).toBe(1);
    expect(flat.paramGroups[0].params).toEqual([a, b]);
    expect(flat.lr).toBe(3e-4);
  });

  it('a group added after some steps is bias-corrected from its own first step', async () => {
    const p0 = vals(3);
    const g = vals(3);
    const w = k.tensor(vals(3)).requiresGrad_();
    const late = k.tensor(p0).requiresGrad_();
    const opt = new k.AdamW([w], { lr: 0.01, weightDecay: 0 });
    run(opt, [w], [[vals(3)], [vals(3)]]);
    opt.addParamGroup({ params: [late], lr: 0.2 });
    late.grad = k.keep(k.tensor(g));
    opt.step();
    assertClose(await late.toArray(), adamwRef(p0, [g], { lr: 0.2, wd: 0 }), { atol: 1e-6 });
  });

  it('bad groups are typed errors naming the group and the option', () => {
    const a = k.zeros([2]).requiresGrad_();
    const b = k.zeros([3]).requiresGrad_();
    const err = (f: () => unknown, re: RegExp) => {
      let e: unknown = null;
      try { f(); } catch (x) { e = x; }
      expect(e).toBeInstanceOf(k.KilnError);
      expect((e as Error).message).toMatch(re);
    };
    err(() => new k.AdamW([{ params: [a] }, { params: [b, a] }], { lr: 1 }), /paramGroups\[1\].*already in paramGroups\[0\]/);
    err(() => new k.AdamW([{ params: [a], lr: -1 }], { lr: 1 }), /paramGroups\[0\].*lr must be a finite number >= 0, got -1/);
    err(() => new k.AdamW([{ params: [a], weight_decay: 0.1 } as never], { lr: 1 }), /paramGroups\[0\].*unknown option 'weight_decay'/);
    err(() => new k.AdamW([{ params: [a], betas: [0.9, 1] }], { lr: 1 }), /invalid betas/);
    err(() => new k.SGD([], { lr: 1 }), /empty parameter list/);
    err(() => new k.SGD([a, { params: [b] }] as never, { lr: 1 }), /all tensors or all parameter groups/);
    const opt = new k.SGD([{ params: [a] }, { params: [b] }], { lr: 1 });
    opt.paramGroups[1].lr = NaN;
    b.grad = k.keep(k.ones([3]));
    err(() => opt.step(), /SGD.step: paramGroups\[1\].*lr must be/);
  });
});

it('a tied parameter listed twice is updated once', async () => {
  k.use(await k.createBackend('wasm'));
  const w = k.tensor([1, 2]).requiresGrad_();
  const opt = new k.SGD([w, w], { lr: 0.5 });
  w.grad = k.keep(k.tensor([1, 1]));
  opt.step();
  expect(Array.from(await w.toArray())).toEqual([0.5, 1.5]);
});
