// Benchmark cases, shared by the Node run (wasm) and the Chromium page (WebGPU). Each case times
// kiln and its peer in the same process on the same inputs, and yields one JSON-able row.

export const MATMUL_SHAPES = [
  [256, 256, 256], [512, 512, 512], [1024, 1024, 1024],
  [1, 2048, 2048], [128, 2048, 5632], [512, 768, 3072],
];

/**
 * Median seconds per call of kiln's and the peer's fn, measured in alternating rounds so both
 * see the same machine load (this machine is shared and noisy), after one warm-up call each.
 */
export async function timePair(kilnFn, peerFn, { minTime = 1.5, maxRounds = 60, minRounds = 3 } = {}) {
  await kilnFn();
  await peerFn();
  const k = [];
  const p = [];
  const start = performance.now();
  while (k.length < minRounds || (k.length < maxRounds && (performance.now() - start) / 1000 < minTime)) {
    let t0 = performance.now();
    await kilnFn();
    k.push(performance.now() - t0);
    t0 = performance.now();
    await peerFn();
    p.push(performance.now() - t0);
  }
  k.sort((a, b) => a - b);
  p.sort((a, b) => a - b);
  const med = (xs) => xs[Math.floor(xs.length / 2)] / 1000;
  // [median, best] of each: the best round is the least disturbed by other tenants
  return [med(k), med(p), k[0] / 1000, p[0] / 1000];
}

const fill = (n, seed) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + seed));

/**
 * kiln vs peer matmul GFLOPS. kilnBackend: a kiln Backend; tf: tfjs with the peer backend set.
 * Each timed call runs `reps` products back to back and waits for the last result.
 */
export async function* matmulBench(kiln, kilnBackend, tf, peerName, shapes, opts = {}) {
  for (const [M, K, N] of shapes) {
    const flop = 2 * M * N * K;
    const reps = Math.max(1, Math.min(8, Math.round(2e8 / flop)));
    kiln.use(kilnBackend);
    const a = kiln.tensor(fill(M * K, 1), { shape: [M, K] });
    const b = kiln.tensor(fill(K * N, 2), { shape: [K, N] });
    const ta = tf.tensor2d(fill(M * K, 1), [M, K]);
    const tb = tf.tensor2d(fill(K * N, 2), [K, N]);
    const [kilnT, peerT, kilnBest, peerBest] = await timePair(
      async () => {
        let c;
        for (let r = 0; r < reps; r++) { c?.dispose(); c = kiln.matmul(a, b); }
        await c.toArray();
        c.dispose();
      },
      async () => {
        let c;
        for (let r = 0; r < reps; r++) { c?.dispose(); c = tf.matMul(ta, tb); }
        await c.data();
        c.dispose();
      },
      opts,
    );
    a.dispose(); b.dispose(); ta.dispose(); tb.dispose();
    const kilnG = (flop * reps) / kilnT / 1e9;
    const peerG = (flop * reps) / peerT / 1e9;
    yield {
      bench: 'matmul', backend: kilnBackend.name, shape: `${M}x${K}x${N}`, unit: 'GFLOPS',
      kiln: +kilnG.toFixed(3), peer: peerName, peerValue: +peerG.toFixed(3), ratio: +(kilnG / peerG).toFixed(3),
      // the same from each side's fastest round
      kilnBest: +((flop * reps) / kilnBest / 1e9).toFixed(3), peerBest: +((flop * reps) / peerBest / 1e9).toFixed(3), ratioBest: +(peerBest / kilnBest).toFixed(3),
    };
  }
}
