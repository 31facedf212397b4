// One suite, every backend: describeBackends runs the same tests on wasm and on WebGPU.
// WebGPU is required: a missing adapter fails the suite, it is never skipped.
import { beforeAll, beforeEach, describe } from 'vitest';
import { createBackend, use, type Backend, type BackendName } from '../../src/index.js';

export const BACKENDS: readonly BackendName[] = ['wasm', 'webgpu'];

export interface BackendCtx {
  readonly name: BackendName;
  readonly backend: Backend;
}

export function describeBackends(title: string, fn: (ctx: BackendCtx) => void): void {
  for (const name of BACKENDS) {
    describe(`${title} [${name}]`, () => {
      let backend: Backend | null = null;
      beforeAll(async () => {
        backend = await createBackend(name); // throws (fails the suite) when no adapter exists
      });
      beforeEach(() => {
        use(backend!);
      });
      fn({
        name,
        get backend() {
          return backend!;
        },
      });
    });
  }
}
