// The PEFT golden fixtures (tests/golden/peft/generate.py) as the tests read them.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '../../src/index.js';

/** A tensor as golden.json stores it. */
export interface Enc { shape: number[]; dtype: 'f32' | 'i32'; data: number[] }
export interface Golden { ids: Enc; logits: Enc; mergedLogits: Enc; batch: Enc; labels: Enc; loss: number; grads: Record<string, Enc> }
export const ckpt = new URL('../golden/checkpoints/', import.meta.url).pathname;
export const peftDir = new URL('../golden/peft/', import.meta.url).pathname;
/** The golden script's own reading of the files it wrote: keys, shapes, dtypes and config fields. */
export const expected = JSON.parse(readFileSync(join(peftDir, 'expected-files.json'), 'utf8'));
export const maxAbs = (xs: ArrayLike<number>): number => Array.from(xs).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
export const i32 = (e: Enc) => k.tensor(e.data, { shape: e.shape, dtype: 'i32' });
