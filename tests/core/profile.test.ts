// The profiler against what the test launches itself: the number of kernels of each kind, times
// that add up, nothing counted after it stops, and an error inside it stops it (both backends).
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import { describeBackends } from '../helpers/backends.js';

describeBackends('profile', (ctx) => {
  it('counts each kernel the function launches and times them', async () => {
    const a = k.randn([64, 64]);
    const b = k.randn([64, 64]);
    await a.toArray();
    const p = await k.profile(async () => {
      let c = a;
      for (let i = 0; i < 3; i++) c = k.matmul(c, b);
      const s = k.add(k.add(c, a), b);
      return (await s.toArray()).length;
    }, ctx.backend);
    expect(p.result).toBe(64 * 64);
    const calls = (prefix: string) => p.kernels.filter((r) => r.key.startsWith(prefix)).reduce((n, r) => n + r.calls, 0);
    expect(calls('matmul matmul')).toBe(3);
    expect(calls('add pointwise|add')).toBe(2);
    for (const r of p.kernels) expect(r.ms).toBeGreaterThanOrEqual(0);
    expect(p.kernelMs).toBeCloseTo(p.kernels.reduce((t, r) => t + r.ms, 0), 6);
    expect(p.kernels.reduce((t, r) => t + r.share, 0)).toBeCloseTo(p.kernelMs > 0 ? 1 : 0, 6);
    expect(k.formatProfile(p).split('\n')[0]).toMatch(/^kernels \d+\.\d{3} ms of \d+\.\d{3} ms wall$/);
    // stopped: a later kernel is not counted, and a new profile starts empty
    await k.matmul(a, b).toArray();
    const q = await k.profile(() => k.add(a, b).toArray(), ctx.backend);
    expect(q.kernels.map((r) => [r.key.split(' ')[0], r.calls])).toEqual([['add', 1]]);
  });

  it('an error inside rethrows and stops profiling', async () => {
    await expect(k.profile(() => { throw new k.KilnError('argument', 'test', 'boom'); }, ctx.backend)).rejects.toThrow(/boom/);
    const o = k.ones([4]);
    await o.toArray();
    const q = await k.profile(() => k.neg(o).toArray(), ctx.backend);
    expect(q.kernels.map((r) => [r.key.split(' ')[0], r.calls])).toEqual([['neg', 1]]);
  });
});
