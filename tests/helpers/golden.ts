// Runs a fixture file written by tests/golden/generate.py: each case's output and its inputs'
// gradients (of sum(out * upstream)) against PyTorch, on every backend.
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { assertClose, type Tol } from './assert-close.js';
import { describeBackends } from './backends.js';

export interface Enc { shape: number[]; dtype: 'f32' | 'i32'; data: number[] }
export interface Case {
  name: string; op: string; args: Record<string, any>; inputs: Enc[]; output: Enc;
  upstream?: Enc; grads?: (Enc | null)[]; prep?: Record<string, 't'>; tol?: Tol;
}
export type Op = (a: Record<string, any>, ...xs: Tensor[]) => Tensor;

export function loadFixture(name: string): Case[] {
  // inf and nan travel as strings in the JSON
  return (JSON.parse(readFileSync(new URL(`../golden/${name}`, import.meta.url), 'utf8'), (_k, v) =>
    v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v === 'nan' ? NaN : v,
  ) as { cases: Case[] }).cases;
}

export function goldenSuite(title: string, fixture: string, ops: Record<string, Op>): void {
  const cases = loadFixture(fixture);
  describeBackends(title, () => {
    it('covers every fixture op', () => {
      for (const c of cases) expect(ops[c.op], c.op).toBeTypeOf('function');
    });
    for (const c of cases) {
      it(c.name, async () => {
        const leaves = c.inputs.map((e) => k.tensor(e.data, { shape: e.shape, dtype: e.dtype, requiresGrad: e.dtype === 'f32' && !!c.grads }));
        const views = leaves.map((t, i) => (c.prep?.[String(i)] === 't' ? k.transpose(t) : t));
        const out = ops[c.op](c.args, ...views);
        expect(out.shape).toEqual(c.output.shape);
        expect(out.dtype).toBe(c.output.dtype);
        const tol = c.tol ?? {};
        assertClose(await out.toArray(), c.output.data, tol, `${c.name} output`);
        if (!c.grads || !c.upstream) return;
        const up = k.tensor(c.upstream.data, { shape: c.upstream.shape });
        k.sum(k.mul(out, up)).backward();
        for (let i = 0; i < c.grads.length; i++) {
          const g = c.grads[i];
          if (!g) continue;
          expect(leaves[i].grad, `${c.name} grad ${i}`).not.toBeNull();
          expect(leaves[i].grad!.shape).toEqual(g.shape);
          assertClose(await leaves[i].grad!.toArray(), g.data, { atol: (tol.atol ?? 1e-5) * 4, rtol: (tol.rtol ?? 1e-4) * 4 }, `${c.name} grad ${i}`);
        }
      });
    }
  });
}
