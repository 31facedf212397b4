// Attention benchmark: the fused kernels against the composed reference (matmul + softmax),
// forward + backward, on both backends, with each side's peak of live bytes.
import * as kiln from '../../dist/kiln.js';
import { timePair } from './cases.js';

export async function* attentionBench(backends, seqs = [128, 512, 1024, 2048], { B = 1, H = 4, D = 64 } = {}) {
  for (const name of backends) {
    const be = kiln.use(await kiln.createBackend(name));
    for (const T of seqs) {
      const g = new kiln.Generator(1);
      const q = kiln.randn([B, H, T, D], { generator: g });
      const k = kiln.randn([B, H, T, D], { generator: g });
      const v = kiln.randn([B, H, T, D], { generator: g });
      const peaks = {};
      const step = (label, f) => async () => {
        kiln.tidy(() => {
          be.resetPeak();
          const [qq, kk, vv] = [q, k, v].map((t) => t.detach().requiresGrad_());
          kiln.sum(f(qq, kk, vv)).backward();
          peaks[label] = be.memory().peakLiveBytes - be.memory().liveBytes;
          return null;
        });
        await be.sync();
      };
      const fused = step('fused', (a, b, c) => kiln.nn.flashAttention(a, b, c, { isCausal: true }));
      const composed = step('composed', (a, b, c) => kiln.nn.scaledDotProductAttention(a, b, c, { isCausal: true }));
      // WebGPU here is a CPU emulation: long cases get few rounds; wasm gets enough to settle the median
      const opts = name === 'webgpu' && T >= 1024 ? { minTime: 0.1, maxRounds: 2, minRounds: 1 } : { minTime: 1, maxRounds: 10, minRounds: 3 };
      const [tf, tc, bf, bc] = await timePair(fused, composed, opts);
      yield {
        bench: 'attention', backend: name, shape: `B${B} H${H} T${T} D${D} causal fwd+bwd`, T, unit: 'ms',
        kiln: +(tf * 1000).toFixed(2), peer: 'composed', peerValue: +(tc * 1000).toFixed(2), ratio: +(tc / tf).toFixed(3),
        ratioBest: +(bc / bf).toFixed(3), peakBytes: peaks.fused, peerPeakBytes: peaks.composed,
      };
      [q, k, v].forEach((t) => t.dispose());
    }
  }
}
