import * as k from '../../src/index.js';
const b = await k.createBackend('wasm'); k.use(b);
const x = k.randn([1, 1, 640]); const w = k.randn([32000, 640]); const w2 = k.randn([1728, 640]);
for (const [label, ww] of [['lm_head', w], ['gate', w2]] as const) {
  k.linear(x, ww).dispose();
  const t0 = performance.now(); for (let i = 0; i < 20; i++) k.linear(x, ww).dispose();
  const ms = (performance.now() - t0) / 20; console.log(label, ms.toFixed(2), 'ms', ((ww.size * 4) / (ms / 1000) / 1e9).toFixed(1), 'GB/s');
}
