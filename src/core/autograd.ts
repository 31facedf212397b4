import { KilnError, fmtShape } from './errors.js';
import { keep, ownedByCurrentScope, tidy, type GradNode, type Tensor } from './tensor.js';

let gradEnabled = true;

export const isGradEnabled = (): boolean => gradEnabled;

/** Runs fn without recording gradients (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs fn with gradient recording on (inside noGrad too): torch.enable_grad. */
export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** True when an op on these inputs must record a node. */
export const needsGrad = (...xs: (Tensor | null | undefined)[]): boolean => gradEnabled && xs.some((x) => x?.requiresGrad);

/**
 * Attaches a grad node to an op's output when any input requires grad (or when the output was
 * already marked requiresGrad, as checkpoint does for regions whose only trainables are closed over).
 */
export function record(out: Tensor, op: string, inputs: readonly Tensor[], backward: (g: Tensor) => (Tensor | null)[]): Tensor {
  if (gradEnabled && (out.requiresGrad || inputs.some((x) => x.requiresGrad))) {
    out.requiresGrad = true;
    out._node = { op, inputs, backward } satisfies GradNode;
  }
  return out;
}

/** Set by the op modules so the tape can accumulate without importing the op modules. */
const notLoaded = (): never => { throw new Error('ops not loaded'); };
export const gradOps: { add: (a: Tensor, b: Tensor) => Tensor; onesLike: (t: Tensor) => Tensor; clone: (t: Tensor) => Tensor } = {
  add: notLoaded,
  onesLike: notLoaded,
  clone: notLoaded,
};

/** Stands in for a node whose saved tensors were released by a backward without retainGraph. */
const FREED: GradNode = {
  op: 'freed',
  inputs: [],
  backward: () => {
    throw new KilnError('grad', 'backward', 'trying to backward through the graph a second time: pass { retainGraph: true } to the first backward');
  },
};

export interface BackwardOptions {
  /** Keep the graph so backward can run again through it. */
  retainGraph?: boolean;
}

/**
 * Reverse-mode autodiff from `root`: grads flow in reverse topological order and accumulate
 * into .grad of leaves that require grad (and of tensors that called retainGrad()).
 */
export function backward(root: Tensor, grad?: Tensor, opts: BackwardOptions = {}): void {
  if (!root.requiresGrad) throw new KilnError('grad', 'backward', 'the tensor does not require grad and has no grad node');
  if (!grad && root.size !== 1) {
    throw new KilnError('grad', 'backward', `grad can be implicitly created only for scalar outputs; got shape ${fmtShape(root.shape)}: pass a gradient`);
  }
  if (grad && (grad.shape.length !== root.shape.length || grad.shape.some((d, i) => d !== root.shape[i]))) {
    throw new KilnError('shape', 'backward', `gradient shape ${fmtShape(grad.shape)} does not match the tensor's ${fmtShape(root.shape)}`);
  }
  // topological order by DFS (iterative: deep graphs must not overflow the stack)
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t._node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const x = inputs[i];
      if (x.requiresGrad && !seen.has(x)) {
        seen.add(x);
        stack.push([x, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  // grads are computed without recording (no double backward), inside a scope that frees
  // every intermediate and keeps only the accumulated .grad tensors
  noGrad(() => tidy(() => {
    const grads = new Map<Tensor, Tensor>();
    const adopted = new Set<Tensor>();
    grads.set(root, grad ?? gradOps.onesLike(root));
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      let g = grads.get(t);
      if (!g) continue;
      for (const h of t._hooks) g = h(g) ?? g;
      if (t.isLeaf || t._retainGrad) {
        const old = t.grad;
        // .grad must be a contiguous tensor nothing else aliases: a gradient this backward made,
        // holding its storage alone and not handed to another tensor yet, is adopted as it is
        // (no copy per parameter per step); anything else (a view, the caller's tensor, one
        // shared with another input) is copied
        const own = !old && !adopted.has(g) && ownedByCurrentScope(g) && g.isContiguous() && g.offset === 0 && g.dtype === 'f32' && g._ref?.refs === 1;
        t.grad = keep(old ? gradOps.add(old, g) : own ? g : gradOps.clone(g));
        if (own) adopted.add(g);
        old?.dispose();
      }
      const node = t._node;
      if (!node) continue;
      const gin = node.backward(g);
      node.inputs.forEach((x, i) => {
        const gi = gin[i];
        if (!gi || !x.requiresGrad) return;
        if (gi.shape.length !== x.shape.length || gi.shape.some((d, j) => d !== x.shape[j])) {
          throw new KilnError('shape', `${node.op}.backward`, `produced a gradient of shape ${fmtShape(gi.shape)} for an input of shape ${fmtShape(x.shape)}`);
        }
        const prev = grads.get(x);
        grads.set(x, prev ? gradOps.add(prev, gi) : gi);
      });
      if (!opts.retainGraph) t._node = FREED;
    }
  }));
}

export interface FunctionCtx {
  /** Saves tensors for backward. */
  save(...ts: Tensor[]): void;
  readonly saved: Tensor[];
  /** Free-form storage for non-tensor values. */
  readonly data: Record<string, unknown>;
}

export interface CustomFunction<A extends Tensor[]> {
  name: string;
  /** Computes the output; runs with gradient recording off. */
  forward(ctx: FunctionCtx, ...inputs: A): Tensor;
  /** Given d(out), returns one gradient (or null) per input. */
  backward(ctx: FunctionCtx, grad: Tensor): (Tensor | null)[];
}

/**
 * A differentiable op with a user-written backward (torch.autograd.Function). Example, a
 * straight-through estimator: round in the forward, identity in the backward:
 *
 *   const roundSTE = customOp({
 *     name: 'roundSTE',
 *     forward: (ctx, x) => x.round(),
 *     backward: (ctx, g) => [g],
 *   });
 *   const y = roundSTE(x); // y.backward() gives x.grad == upstream grad
 */
export function customOp<A extends Tensor[]>(fn: CustomFunction<A>): (...inputs: A) => Tensor {
  return (...inputs: A) => {
    const ctx: FunctionCtx = {
      saved: [],
      data: {},
      save(...ts) {
        this.saved.push(...ts);
      },
    };
    const out = noGrad(() => fn.forward(ctx, ...inputs));
    return record(out, fn.name, inputs, (g) => {
      const gs = fn.backward(ctx, g);
      if (gs.length !== inputs.length) {
        throw new KilnError('grad', `${fn.name}.backward`, `returned ${gs.length} gradients for ${inputs.length} inputs`);
      }
      return gs;
    });
  };
}
