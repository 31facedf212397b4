// Asserts the rows a runtime check produced (tests/runtimes/checks.js).
import { expect } from 'vitest';
import { assertClose } from '../helpers/assert-close.js';

export interface Row { name: string; got: number | number[]; want: number | number[]; atol?: number; info?: unknown }

/** Parses the JSON printed by a check (non-finite numbers come as strings). */
export const parseRows = (text: string): Row[] =>
  JSON.parse(text, (_k, v) => (v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v === 'NaN' ? NaN : v));

export function assertRows(rows: Row[], expectedNames: string[]): void {
  expect(rows.map((r) => r.name)).toEqual(expectedNames);
  for (const r of rows) {
    if (Array.isArray(r.want)) assertClose(r.got as number[], r.want, { atol: r.atol ?? 0, rtol: 0 }, r.name);
    else expect(r.got, r.name).toBe(r.want);
  }
}

export const EXPECTED_ROWS = ['adapter', 'wasm simd', ...['webgpu', 'wasm'].flatMap((b) => ['matmul', 'softmax', 'grad', 'f16 storage', 'f16 compute'].map((n) => `${n} [${b}]`)), 'shader-f16 path', 'tokenizer ids', 'tokenizer decode', 'chat template', 'packing', 'checkpoint logits [webgpu]', 'checkpoint logits [wasm]'];
