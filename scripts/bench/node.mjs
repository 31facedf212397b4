// Node benchmarks: kiln's wasm backend against @tensorflow/tfjs-backend-wasm, both on one thread.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as kiln from '../../dist/kiln.js';
import * as tf from '@tensorflow/tfjs-core';
import { setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { MATMUL_SHAPES, matmulBench } from './cases.js';

const require = createRequire(import.meta.url);
export async function runNode(filter, emit) {
  if (!'matmul'.includes(filter) && !filter.includes('matmul')) return;
  setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm')) + '/');
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false); // kiln's wasm runs on one thread: so does the peer
  setThreadsCount(1);
  await tf.setBackend('wasm');
  await tf.ready();
  const wasm = await kiln.createBackend('wasm');
  for await (const row of matmulBench(kiln, wasm, tf, 'tfjs-wasm', MATMUL_SHAPES)) emit({ ...row, threads: 1, simd: wasm.simd });
}
