// Gradient checkpointing: a region's forward runs without keeping its intermediates; backward
// recomputes it (with the same random draws) and backpropagates through the recomputation.
// Peak memory drops from all of the region's activations to its inputs and outputs.
import { backward, enableGrad, isGradEnabled, noGrad, record } from '../core/autograd.js';
import { KilnError } from '../core/errors.js';
import { defaultGenerator } from '../core/ops/creation.js';
import { clone } from '../core/ops/shape.js';
import { tidy, type Tensor } from '../core/tensor.js';
import type { Module } from './module.js';

/**
 * out = fn(...inputs), recomputed during backward instead of stored (torch.utils.checkpoint).
 * Parameters fn closes over get their gradients as usual. fn must return one tensor and be
 * deterministic apart from the default generator, whose state is replayed.
 */
export function checkpoint(fn: (...xs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor {
  if (!isGradEnabled()) return fn(...inputs);
  const rng = defaultGenerator.getState();
  // forward: nothing inside is recorded; only the output survives the scope
  const out = noGrad(() => tidy(() => fn(...inputs)));
  if (!(out as unknown) || typeof (out as Tensor).shape !== 'object') throw new KilnError('argument', 'checkpoint', 'the function must return a tensor');
  // the node's inputs: the region's tensor inputs and (implicitly) every parameter it touches;
  // a region with no grad-requiring tensor input still needs a node, so parameters train
  out.requiresGrad = true;
  return record(out, 'checkpoint', inputs, (g) => {
    const after = defaultGenerator.getState();
    defaultGenerator.setState(rng);
    try {
      const detached = inputs.map((x) => {
        const d = x.detach();
        d.requiresGrad = x.requiresGrad;
        return d;
      });
      const y = enableGrad(() => fn(...detached));
      if (!y.requiresGrad) return inputs.map(() => null);
      backward(y, g); // parameters accumulate their grads here; detached inputs get theirs
      return detached.map((d) => {
        if (!d.grad) return null;
        const gi = clone(d.grad); // tracked by the enclosing backward scope, unlike d.grad
        d.zeroGrad();
        return gi;
      });
    } finally {
      defaultGenerator.setState(after);
    }
  });
}

/** Runs a module's forward through checkpoint() while it trains with gradients on (its forward must return a tensor). */
export function checkpointModule<M extends Module>(m: M, on = true): M {
  m.gradientCheckpointing = on;
  return m;
}

/**
 * Runs modules in sequence, checkpointing each segment of `segmentSize` blocks
 * (torch.utils.checkpoint.checkpoint_sequential, by segment length).
 */
export function checkpointSequential(blocks: readonly Module[], segmentSize: number, x: Tensor, ...rest: unknown[]): Tensor {
  if (!Number.isInteger(segmentSize) || segmentSize < 1) throw new KilnError('argument', 'checkpointSequential', `segmentSize must be a positive integer, got ${segmentSize}`);
  let h = x;
  for (let i = 0; i < blocks.length; i += segmentSize) {
    const seg = blocks.slice(i, i + segmentSize);
    h = checkpoint((inp) => seg.reduce((a, b) => b.call(a, ...rest) as Tensor, inp), h);
  }
  return h;
}
