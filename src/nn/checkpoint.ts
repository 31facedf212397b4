// Gradient checkpointing: a region's forward runs without keeping its intermediates; backward
// recomputes it (with the same random draws) and backpropagates through the recomputation.
// Peak memory drops from all of the region's activations to its inputs and outputs.
import { backward, enableGrad, isGradEnabled, noGrad, record } from '../core/autograd.js';
import { KilnError } from '../core/errors.js';
import { defaultGenerator } from '../core/ops/creation.js';
import { clone } from '../core/ops/shape.js';
import { keep as keep1, tidy, Tensor } from '../core/tensor.js';
import { getBackend } from '../core/runtime.js';
import { pointwiseCall } from '../kernels/pointwise.js';
import type { Backend, KernelCall } from '../backend/backend.js';
import type { Module } from './module.js';

/**
 * out = fn(...inputs), recomputed during backward instead of stored (torch.utils.checkpoint).
 * Parameters fn closes over get their gradients as usual. fn must return one tensor and be
 * deterministic apart from the default generator, whose state is replayed.
 */
export function checkpoint(fn: (...xs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor {
  return checkpointWith({}, fn, ...inputs);
}

export interface CheckpointPolicy {
  /**
   * Kernel ops whose outputs are kept from the forward and reused when the region is
   * recomputed (selective checkpointing), e.g. ['matmul']: the expensive products are stored,
   * the cheap elementwise ops and norms are recomputed.
   */
  keep?: readonly string[];
}

/** Replays the kept kernels' outputs: the i-th matching dispatch of the recomputation copies the i-th saved output. */
function intercept<T>(be: Backend, policy: CheckpointPolicy, mode: 'save' | 'replay', saved: Tensor[], body: () => T): T {
  const keep = new Set(policy.keep ?? []);
  if (!keep.size) return body();
  const own = Object.prototype.hasOwnProperty.call(be, 'run');
  const prev = be.run;
  const run = be.run.bind(be);
  let i = 0;
  be.run = (call: KernelCall) => {
    if (!keep.has(call.op) || call.outputs.length !== 1) return run(call);
    const out = call.outputs[0];
    if (mode === 'save') {
      run(call);
      const copy = keep1(Tensor.empty(be, out.shape, out.dtype));
      run(pointwiseCall('identity', copy, [out], 0, 0, be.ctx));
      saved.push(copy);
    } else {
      const src = saved[i++];
      if (!src) throw new KilnError('argument', 'checkpoint', `the recomputation dispatched more '${call.op}' kernels than the forward: the region must be deterministic`);
      run(pointwiseCall('identity', out, [src], 0, 0, be.ctx));
    }
  };
  try {
    return body();
  } finally {
    if (own) be.run = prev; // an enclosing region's interceptor
    else delete (be as { run?: unknown }).run; // back to the prototype's method
  }
}

/** checkpoint() with a policy; see CheckpointPolicy. */
export function checkpointWith(policy: CheckpointPolicy, fn: (...xs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor {
  if (!isGradEnabled()) return fn(...inputs);
  const rng = defaultGenerator.getState();
  // the region's kernels run where its inputs live, which need not be the default backend
  const be = inputs[0]?.backend ?? getBackend();
  const saved: Tensor[] = [];
  // forward: nothing inside is recorded; only the output (and kept kernel outputs) survive
  const out = intercept(be, policy, 'save', saved, () => noGrad(() => tidy(() => fn(...inputs))));
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
      const y = intercept(be, policy, 'replay', saved, () => enableGrad(() => fn(...detached)));
      for (const t of saved) t.dispose();
      saved.length = 0;
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

/**
 * Runs a module's forward through checkpoint() while it trains with gradients on (its forward
 * must return a tensor); a policy makes it selective.
 */
export function checkpointModule<M extends Module>(m: M, on: boolean | CheckpointPolicy = true): M {
  m.gradientCheckpointing = on === false ? false : on === true ? {} : on;
  return m;
}

/**
 * Runs modules in sequence, checkpointing each segment of `segmentSize` blocks
 * (torch.utils.checkpoint.checkpoint_sequential, by segment length).
 */
export function checkpointSequential(blocks: readonly Module[], segmentSize: number, x: Tensor, ...rest: unknown[]): Tensor {
  return checkpointSequentialWith({}, blocks, segmentSize, x, ...rest);
}

export function checkpointSequentialWith(policy: CheckpointPolicy, blocks: readonly Module[], segmentSize: number, x: Tensor, ...rest: unknown[]): Tensor {
  if (!Number.isInteger(segmentSize) || segmentSize < 1) throw new KilnError('argument', 'checkpointSequential', `segmentSize must be a positive integer, got ${segmentSize}`);
  let h = x;
  for (let i = 0; i < blocks.length; i += segmentSize) {
    const seg = blocks.slice(i, i + segmentSize);
    h = checkpointWith(policy, (inp) => seg.reduce((a, b) => b.call(a, ...rest) as Tensor, inp), h);
  }
  return h;
}
