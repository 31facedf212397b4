// Finite-difference gradient check: central differences of sum(f(x) * upstream) against the
// gradients autograd produces, for every element of every float input.
import { expect } from 'vitest';
import { noGrad, tensor, tidy, type Tensor } from '../../src/index.js';
import { assertClose } from './assert-close.js';

export interface GradcheckInput {
  data: number[] | Float32Array | Int32Array;
  shape: number[];
  /** i32 inputs (indices) get no gradient */
  dtype?: 'f32' | 'i32';
}

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
}

export async function gradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: GradcheckInput[], opts: GradcheckOptions = {}): Promise<void> {
  const eps = opts.eps ?? 1e-2;
  const make = (vals: GradcheckInput[], grad: boolean) =>
    vals.map((v) => tensor(Array.from(v.data), { shape: v.shape, dtype: v.dtype ?? 'f32', requiresGrad: grad && (v.dtype ?? 'f32') === 'f32' }));
  // a fixed, uneven upstream gradient so each output element is weighted differently
  const outShape = tidy(() => noGrad(() => fn(...make(inputs, false)).shape));
  const n = outShape.reduce((a, b) => a * b, 1);
  const up = Array.from({ length: n }, (_, i) => 0.5 + ((i * 7) % 11) / 10);
  const upT = tensor(up, { shape: outShape });
  const loss = (xs: Tensor[]) => fn(...xs).mul(upT).sum();

  const xs = make(inputs, true);
  loss(xs).backward();
  for (let k = 0; k < inputs.length; k++) {
    if ((inputs[k].dtype ?? 'f32') !== 'f32') continue;
    const analytic = xs[k].grad ? Array.from(await xs[k].grad!.toArray()) : new Array(inputs[k].data.length).fill(0);
    const numeric: number[] = [];
    for (let i = 0; i < inputs[k].data.length; i++) {
      const at = async (d: number) => {
        const shifted = inputs.map((v, j) => (j === k ? { ...v, data: Array.from(v.data, (x, e) => (e === i ? x + d : x)) } : v));
        const t = noGrad(() => tidy(() => loss(make(shifted, false))));
        const val = await t.item();
        t.dispose();
        return val;
      };
      numeric.push(((await at(eps)) - (await at(-eps))) / (2 * eps));
    }
    assertClose(analytic, numeric, { atol: opts.atol ?? 5e-3, rtol: opts.rtol ?? 2e-2 }, `d/dinput${k}`);
  }
  expect(true).toBe(true);
}
