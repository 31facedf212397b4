// `kiln demo`: trains a two-layer MLP with autograd on each backend and prints the loss falling.
// (Later issues replace this with the real job: a LoRA fine-tune of a language model.)
import type { BackendName } from '../backend/backend.js';
import { createBackend, use } from '../core/runtime.js';
import { Generator, crossEntropy, fromValues, gelu, linear, mul, randn, zeros } from '../core/ops.js';
import { tidy } from '../core/tensor.js';
import { AdamW } from '../train/optim.js';

/** Two interleaved spirals: a task a linear model cannot solve but a small MLP can. */
function spirals(n: number, g: Generator): { x: number[]; y: number[] } {
  const x: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const cls = i % 2;
    const t = (i / n) * 3 * Math.PI;
    const r = t / (3 * Math.PI) + 0.05 * g.normal();
    x.push(r * Math.cos(t + cls * Math.PI), r * Math.sin(t + cls * Math.PI));
    y.push(cls);
  }
  return { x, y };
}

export async function demo(backends: BackendName[], steps: number, log: (s: string) => void = console.log): Promise<Record<string, number[]>> {
  const result: Record<string, number[]> = {};
  for (const name of backends) {
    const backend = use(await createBackend(name));
    const g = new Generator(42);
    const data = spirals(256, g);
    const x = fromValues(data.x, [256, 2], { backend });
    const y = fromValues(data.y, [256], { backend, dtype: 'i32' });
    const hidden = 64;
    // weights named as in a Hugging Face MLP: fc1 (hidden, in), fc2 (out, hidden)
    const fc1 = { weight: mul(randn([hidden, 2], { generator: g, backend }), Math.sqrt(2 / 2)).requiresGrad_(), bias: zeros([hidden], { backend, requiresGrad: true }) };
    const fc2 = { weight: mul(randn([2, hidden], { generator: g, backend }), Math.sqrt(1 / hidden)).requiresGrad_(), bias: zeros([2], { backend, requiresGrad: true }) };
    const opt = new AdamW([fc1.weight, fc1.bias, fc2.weight, fc2.bias], { lr: 0.02, weightDecay: 0 });
    const losses: number[] = [];
    const t0 = performance.now();
    for (let step = 0; step <= steps; step++) {
      const loss = tidy(() => {
        opt.zeroGrad();
        const logits = linear(gelu(linear(x, fc1.weight, fc1.bias)), fc2.weight, fc2.bias);
        const l = crossEntropy(logits, y);
        l.backward();
        opt.step();
        return l;
      });
      if (step % Math.max(1, Math.floor(steps / 10)) === 0 || step === steps) {
        const v = await loss.item();
        losses.push(v);
        log(`[${name}] step ${String(step).padStart(4)}  loss ${v.toFixed(4)}`);
      }
      loss.dispose();
    }
    const ms = performance.now() - t0;
    log(`[${name}] ${steps} steps in ${(ms / 1000).toFixed(2)} s; loss ${losses[0].toFixed(4)} -> ${losses[losses.length - 1].toFixed(4)}`);
    for (const t of [x, y, fc1.weight, fc1.bias, fc2.weight, fc2.bias]) t.dispose();
    opt.dispose();
    result[name] = losses;
  }
  return result;
}
