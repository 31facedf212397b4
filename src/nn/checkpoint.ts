// Gradient checkpointing: a region's forward runs without keeping its intermediates; backward
// recomputes it (with the same random draws) and backpropagates through the recomputation.
// Peak memory drops from all of the region's activations to its inputs and outputs.
import { backward, enableGrad, isGradEnabled, noGrad, record } from '../core/autograd.js';
import { KilnError } from '../core/errors.js';
import { defaultGenerator } from '../core/ops/creation.js';
import { cast } from '../core/ops/pointwise.js';
import { clone, concat, reshape, slice } from '../core/ops/shape.js';
import { keep as keep1, ownedByCurrentScope, tidy, Tensor } from '../core/tensor.js';
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

/**
 * The tensors of a module's output in order: the output itself, or those in its arrays and plain
 * objects (the structures tidy() keeps), e.g. Attention's { output, cache: { key, value } }.
 */
export function outputTensors(v: unknown, out: Tensor[] = []): Tensor[] {
  if (v instanceof Tensor) out.push(v);
  else if (Array.isArray(v)) for (const x of v) outputTensors(x, out);
  else if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) outputTensors(x, out);
  return out;
}

/** Where a packed tensor stood in an output structure (not a plain object: tidy does not look inside). */
class Slot {
  constructor(readonly index: number) {}
}

/** A copy of the structure with each tensor (and Slot) replaced by f of it (same traversal as outputTensors). */
function mapLeaves(v: unknown, f: (t: Tensor | Slot) => unknown): unknown {
  if (v instanceof Tensor || v instanceof Slot) return f(v);
  if (Array.isArray(v)) return v.map((x) => mapLeaves(x, f));
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mapLeaves(x, f)]));
  return v;
}

/** Float tensors (ids and masks are not differentiable). */
const isFloat = (t: Tensor): boolean => t.dtype === 'f32' || t.dtype === 'f16' || t.dtype === 'bf16';

/** Several outputs as one flat f32 (n) tensor: one node carries all their gradients. */
function packed(ts: readonly Tensor[]): Tensor {
  return ts.length === 1 ? ts[0] : concat(ts.map((t) => reshape(cast(t, 'f32'), [t.size])), 0);
}

/**
 * checkpoint() with a policy; see CheckpointPolicy. fn may also return a structure (arrays and
 * plain objects) holding tensors, as modules do ({ output, cache }): every float tensor the
 * region made gets its gradient through the recomputation (several are packed into one node
 * and handed back as views of it); tensors made before it (a pre-allocated cache, an input)
 * and other values pass through as they are.
 */
export function checkpointWith<T>(policy: CheckpointPolicy, fn: (...xs: Tensor[]) => T, ...inputs: Tensor[]): T {
  if (!isGradEnabled()) return fn(...inputs);
  const rng = defaultGenerator.getState();
  // the region's kernels run where its inputs live, which need not be the default backend
  const be = inputs[0]?.backend ?? getBackend();
  const saved: Tensor[] = [];
  // forward: nothing inside is recorded; only the outputs (and kept kernel outputs) survive
  const { skeleton, flat, outs, picked } = intercept(be, policy, 'save', saved, () => noGrad(() => tidy(() => {
    const res = fn(...inputs);
    const all = outputTensors(res);
    // which of the output's tensors the node carries (the recomputation picks the same ones)
    const picked = res instanceof Tensor ? [0] : all.flatMap((t, i) => (isFloat(t) && ownedByCurrentScope(t) ? [i] : []));
    if (!picked.length) throw new KilnError('argument', 'checkpoint', 'the function must return a tensor (or arrays / plain objects holding a float tensor it computed)');
    const diff = picked.map((i) => all[i]);
    // the picked tensors leave the scope only inside `flat`; Slots hold their places
    const skeleton = res instanceof Tensor ? null : mapLeaves(res, (t) => (t instanceof Tensor && diff.includes(t) ? new Slot(diff.indexOf(t)) : t));
    return { skeleton, flat: packed(diff), outs: diff.map((t) => ({ shape: t.shape, dtype: t.dtype })), picked };
  })));
  // the node's inputs: the region's tensor inputs and (implicitly) every parameter it touches;
  // a region with no grad-requiring tensor input still needs a node, so parameters train
  flat.requiresGrad = true;
  record(flat, 'checkpoint', inputs, (g) => {
    const after = defaultGenerator.getState();
    defaultGenerator.setState(rng);
    try {
      const detached = inputs.map((x) => {
        const d = x.detach();
        d.requiresGrad = x.requiresGrad;
        return d;
      });
      const y = intercept(be, policy, 'replay', saved, () => enableGrad(() => {
        const all = outputTensors(fn(...detached));
        return packed(picked.map((i) => all[i]));
      }));
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
  if (!skeleton) return flat as T;
  // each packed tensor comes back as a view of the node's output, so its gradient reaches it
  const sizes = outs.map((o) => o.shape.reduce((a, b) => a * b, 1));
  const offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
  const unpack = (j: number) => (outs.length === 1 ? flat : cast(reshape(slice(flat, 0, offsets[j], offsets[j] + sizes[j]), outs[j].shape), outs[j].dtype));
  return mapLeaves(skeleton, (t) => (t instanceof Slot ? unpack(t.index) : t)) as T;
}

/**
 * Runs a module's forward through checkpoint() while it trains with gradients on (its forward
 * returns a tensor or a structure holding tensors, see checkpointWith); a policy makes it selective.
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
    h = checkpointWith(policy, (inp) => seg.reduce((a, b, j) => {
      const y = b.call(a, ...rest);
      if (!(y instanceof Tensor)) throw new KilnError('argument', 'checkpointSequential', `block ${i + j} (${b.constructor.name}) returned ${y === null ? 'null' : typeof y}, not a tensor: only modules mapping a tensor to a tensor chain`);
      return y;
    }, inp), h);
  }
  return h;
}
