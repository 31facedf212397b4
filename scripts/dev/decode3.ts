import * as k from '../../src/index.js';
const b = await k.createBackend('webgpu'); k.use(b);
const time = async (label: string, f: () => k.Tensor) => { await f().toArray(); const t0 = performance.now(); for (let i = 0; i < 3; i++) { const t = f(); await t.toArray(); t.dispose(); } console.log(label, ((performance.now() - t0) / 3).toFixed(1), 'ms'); };
const w = k.randn([32000, 640]);
for (const M of [1, 4, 5, 8, 16]) { const x = k.randn([1, M, 640]); await time(`M=${M} x @ W^T`, () => k.linear(x, w)); }
const tiny = k.randn([1, 1, 640]);
await time('readback only (tiny op)', () => k.add(tiny, 1));
