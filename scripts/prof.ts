import * as k from '../src/index.ts';
const { backend } = await k.init('webgpu');
let x = k.randn([256, 64]);
await x.toArray();
let t0 = performance.now();
for (let i = 0; i < 200; i++) { const y = k.add(x, 1); x.dispose(); x = y; }
await x.toArray();
console.log('add 256x64 per op ms', (performance.now() - t0) / 200);
const w = k.randn([64, 64]);
t0 = performance.now();
for (let i = 0; i < 50; i++) { const y = k.matmul(x, w); x.dispose(); x = y; }
await x.toArray();
console.log('matmul 256x64x64 per op ms', (performance.now() - t0) / 50);
t0 = performance.now();
for (let i = 0; i < 50; i++) { const y = k.sum(x, 1); y.dispose(); }
await x.toArray();
console.log('sum rows per op ms', (performance.now() - t0) / 50);
