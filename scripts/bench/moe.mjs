// MoE benchmark: layer time (forward + backward) as the number of experts grows at fixed top-k
// and fixed capacity factor; the peer column is the 4-expert time, so ratio ~ 1 means flat.
import * as kiln from '../../dist/kiln.js';
import { timePair } from './cases.js';

export async function* moeBench(backends, experts = [4, 8, 16, 32], { N = Number(process.env.MOE_TOKENS ?? 1024), H = 128, I = 256, k = 2 } = {}) {
  for (const name of backends) {
    const be = kiln.use(await kiln.createBackend(name));
    const g = new kiln.Generator(2);
    const x = kiln.randn([N, H], { generator: g });
    const layer = (E) => new kiln.nn.MixtureOfExperts({ hiddenSize: H, intermediateSize: I, numExperts: E, topK: k, capacityFactor: 1.25, generator: g });
    const run = (m) => async () => {
      kiln.tidy(() => {
        const r = m.call(x);
        kiln.add(kiln.sum(r.output), kiln.mul(r.auxLoss, 0.01)).backward();
        m.zeroGrad();
        return null;
      });
      await be.sync();
    };
    const base = layer(experts[0]);
    for (const E of experts) {
      const m = layer(E);
      const [t, t0] = await timePair(run(m), run(base), { minTime: 0.5, maxRounds: 8, minRounds: 2 });
      yield {
        bench: 'moe', backend: name, shape: `N${N} H${H} I${I} E${E} k${k} cf1.25 fwd+bwd`, unit: 'ms',
        kiln: +(t * 1000).toFixed(2), peer: `E${experts[0]}`, peerValue: +(t0 * 1000).toFixed(2), ratio: +(t0 / t).toFixed(3),
      };
      m.dispose();
    }
  }
}
