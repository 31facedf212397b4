// The Chromium benchmark page: kiln's WebGPU backend against @tensorflow/tfjs-backend-webgpu on
// the same adapter. Bundled by scripts/bench.mjs; rows go out through console.log.
import * as kiln from '../../dist/kiln.js';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-webgpu';
import { MATMUL_SHAPES, matmulBench } from './cases.js';

window.runBench = async (filter, shapes) => {
  const out = [];
  try {
    await tf.setBackend('webgpu');
    await tf.ready();
    const { backend } = await kiln.init('webgpu');
    if ('matmul'.includes(filter) || filter.includes('matmul')) {
      const list = shapes ? MATMUL_SHAPES.filter((s) => shapes.includes(s.join('x'))) : MATMUL_SHAPES;
      for await (const row of matmulBench(kiln, backend, tf, 'tfjs-webgpu', list, { minTime: 0.2, maxRounds: 10, minRounds: 2 })) {
        out.push({ ...row, adapter: backend.report.architecture || backend.report.vendor });
        console.log('BENCH ' + JSON.stringify(out[out.length - 1]));
      }
    }
  } catch (e) {
    return { error: String(e && e.stack || e) };
  }
  return { rows: out };
};
