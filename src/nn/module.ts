// Modules: a tree of parameters whose dotted paths equal Hugging Face checkpoint names
// (model.layers.0.self_attn.q_proj.weight), so loading, freezing and adapter targeting are
// name lookups. Children and parameters are registered under the names their checkpoint uses.
import { KilnError, fmtShape } from '../core/errors.js';
import { clone } from '../core/ops/shape.js';
import { cast } from '../core/ops/pointwise.js';
import { noGrad } from '../core/autograd.js';
import { isGradEnabled } from '../core/autograd.js';
import { keep, Tensor } from '../core/tensor.js';
import { checkpointWith, outputTensors, type CheckpointPolicy } from './checkpoint.js';

// a bare `Module` (no type arguments) takes any arguments, as before forwards were typed
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ForwardPreHook<In extends unknown[] = any[]> = (module: Module, args: In) => In | void;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ForwardHook<In extends unknown[] = any[], Out = unknown> = (module: Module, args: In, output: Out) => Out | void;
/** Sees (and may replace) the gradient flowing into the module's output tensor (see Module.call). */
export type BackwardHook = (module: Module, gradOutput: Tensor) => Tensor | void;

export type NamePattern = string | RegExp;

/** A glob over dotted names: `*` matches within one segment, `**` across segments. */
export function patternToRegExp(p: NamePattern): RegExp {
  if (p instanceof RegExp) return p;
  const re = p
    .split('**')
    .map((part) => part.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^.]*'))
    .join('.*');
  return new RegExp(`^${re}$`);
}

let hookIds = 0;

/**
 * A node of the module tree with a typed forward: `Module<[x: Tensor], Tensor>` is called as
 * `m.call(x)` and returns a Tensor. Children are always run through call(), never forward(), so
 * hooks, checkpointModule and adapters that replace a child see every invocation.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export abstract class Module<In extends unknown[] = any[], Out = unknown> {
  training = true;
  /** Set by checkpointModule(): forward is recomputed in backward instead of stored (a policy: selectively). */
  gradientCheckpointing: false | CheckpointPolicy = false;
  private readonly _params = new Map<string, Tensor | null>();
  private readonly _buffers = new Map<string, { t: Tensor; persistent: boolean }>();
  private readonly _modules = new Map<string, Module>();
  private readonly _pre = new Map<number, ForwardPreHook>();
  private readonly _post = new Map<number, ForwardHook>();
  private readonly _bwd = new Map<number, BackwardHook>();

  /** The computation; run the module through call() so hooks and checkpointing apply. */
  abstract forward(...args: In): Out;

  /**
   * Runs forward with the forward pre-hooks, post-hooks and backward hooks (and through
   * checkpointWith when checkpointModule() set it). Backward hooks see the gradient of the
   * output tensor: the output itself, or for a structured output ({ output, cache },
   * { logits, ... }) its first tensor.
   */
  call(...args: In): Out {
    let a = args;
    for (const h of this._pre.values()) a = (h(this, a) as In | undefined) ?? a;
    const fwd = this.forward as (...x: In) => Out;
    let out: Out;
    if (this.gradientCheckpointing && this.training && isGradEnabled()) {
      // tensor arguments become the checkpoint's inputs; the rest are closed over
      const at = a.flatMap((x, i) => (x instanceof Tensor ? [i] : []));
      out = checkpointWith(this.gradientCheckpointing, (...ts) => {
        const b = [...a] as In;
        at.forEach((i, j) => (b[i] = ts[j]));
        return fwd.apply(this, b);
      }, ...at.map((i) => a[i] as Tensor));
    } else {
      out = fwd.apply(this, a);
    }
    for (const h of this._post.values()) {
      const r = h(this, a, out);
      if (r !== undefined) out = r as Out;
    }
    if (this._bwd.size) {
      const t = outputTensors(out)[0];
      if (t?.requiresGrad) for (const h of this._bwd.values()) t.registerHook((g) => h(this, g));
    }
    return out;
  }

  registerParameter<T extends Tensor | null>(name: string, t: T): T {
    this.checkName(name, 'parameter');
    if (t) {
      keep(t);
      t.requiresGrad = true; // as torch.nn.Parameter; freeze() turns it off
    }
    this._params.set(name, t);
    return t;
  }

  /** A tensor saved with the module (in stateDict when persistent) that is not trained. */
  registerBuffer(name: string, t: Tensor, persistent = true): Tensor {
    this.checkName(name, 'buffer');
    this._buffers.set(name, { t: keep(t), persistent });
    return t;
  }

  /** Adds a child under a new name; a name already taken is an error (replaceModule swaps a child). */
  registerModule<M extends Module>(name: string, m: M): M {
    this.checkName(name, 'module');
    if (!(m instanceof Module)) throw new KilnError('argument', `${this.constructor.name}.registerModule`, `'${name}' is not a Module`);
    this._modules.set(name, m);
    return m;
  }

  /**
   * Puts m in the place of the child `name` (same name, same position in the tree) and returns
   * the old child, which is not disposed. A name with no child is an error.
   */
  replaceModule(name: string, m: Module): Module {
    const old = this._modules.get(name);
    if (!old) throw new KilnError('argument', `${this.constructor.name}.replaceModule`, `no child module named '${name}' (children: ${[...this._modules.keys()].join(', ') || 'none'})`);
    if (!(m instanceof Module)) throw new KilnError('argument', `${this.constructor.name}.replaceModule`, `the replacement for '${name}' is not a Module`);
    this._modules.set(name, m);
    return old;
  }

  /** A name is new and dot-free; a parameter may be registered again (set to null when quantized), nothing else. */
  private checkName(name: string, kind: 'parameter' | 'buffer' | 'module'): void {
    const op = `${this.constructor.name}.register${kind[0].toUpperCase()}${kind.slice(1)}`;
    if (!name || name.includes('.')) throw new KilnError('argument', op, `invalid name '${name}': names are non-empty and have no '.'`);
    const taken = this._modules.has(name) ? 'module' : this._params.has(name) ? 'parameter' : this._buffers.has(name) ? 'buffer' : null;
    if (taken && !(taken === kind && kind !== 'module')) {
      throw new KilnError('argument', op, `'${name}' is already a ${taken} of this ${this.constructor.name}${taken === 'module' && kind === 'module' ? '; use replaceModule to swap it' : ''}`);
    }
  }

  /** Replaces a registered parameter's tensor (e.g. after loading or merging). */
  setParameter(name: string, t: Tensor): void {
    if (!this._params.has(name)) throw new KilnError('argument', this.constructor.name, `no parameter named '${name}'`);
    const old = this._params.get(name);
    if (old && old !== t) old.dispose();
    keep(t);
    t.requiresGrad = old ? old.requiresGrad : true;
    this._params.set(name, t);
  }

  /** A registered child module by name. */
  child<M extends Module = Module>(name: string): M {
    const m = this._modules.get(name);
    if (!m) throw new KilnError('argument', this.constructor.name, `no child module named '${name}'`);
    return m as M;
  }

  /** The descendant at a dotted path ('model.layers.0.self_attn.q_proj'; '' is this module). */
  getSubmodule(path: string): Module {
    let m: Module = this;
    const segs = path ? path.split('.') : [];
    segs.forEach((seg, i) => {
      const next = m._modules.get(seg);
      if (!next) throw new KilnError('argument', 'getSubmodule', `'${path}': ${i ? `'${segs.slice(0, i).join('.')}' (${m.constructor.name})` : m.constructor.name} has no child '${seg}'`);
      m = next;
    });
    return m;
  }

  /** Puts `m` at an existing dotted path and returns the module it replaced (module surgery, e.g. LoRA wrapping). */
  setSubmodule(path: string, m: Module): Module {
    const cut = path.lastIndexOf('.');
    const parent = this.getSubmodule(cut < 0 ? '' : path.slice(0, cut));
    const name = path.slice(cut + 1);
    if (!path || !parent._modules.has(name)) throw new KilnError('argument', 'getSubmodule', `'${path}': ${parent.constructor.name} has no child '${name}'`);
    return parent.replaceModule(name, m);
  }

  getParameter(name: string): Tensor | null {
    return this._params.get(name) ?? null;
  }

  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [n, m] of this._modules) yield* m.namedModules(prefix ? `${prefix}.${n}` : n);
  }

  *children(): Generator<[string, Module]> {
    yield* this._modules;
  }

  *namedParameters(prefix = ''): Generator<[string, Tensor]> {
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [n, p] of m._params) if (p) yield [path ? `${path}.${n}` : n, p];
    }
  }

  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  /** Parameters that currently require grad (what an optimizer should update). */
  trainableParameters(): Tensor[] {
    return this.parameters().filter((p) => p.requiresGrad);
  }

  *namedBuffers(prefix = ''): Generator<[string, Tensor, boolean]> {
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [n, b] of m._buffers) yield [path ? `${path}.${n}` : n, b.t, b.persistent];
    }
  }

  /** Parameters and persistent buffers by checkpoint name (the tensors themselves, not copies). */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [n, p] of this.namedParameters()) out[n] = p;
    for (const [n, b, persistent] of this.namedBuffers()) if (persistent) out[n] = b;
    return out;
  }

  /**
   * Copies tensors into this module's parameters and buffers by name. Shapes must match; a
   * float dtype is converted to the parameter's. strict (default): a missing or unexpected key
   * is an error naming every such key, and nothing is loaded.
   */
  loadStateDict(sd: Record<string, Tensor>, opts: { strict?: boolean } = {}): { missing: string[]; unexpected: string[] } {
    const strict = opts.strict ?? true;
    const targets = new Map<string, { owner: Module; name: string; t: Tensor; kind: 'param' | 'buffer' }>();
    for (const [path, m] of this.namedModules()) {
      for (const [n, p] of m._params) if (p) targets.set(path ? `${path}.${n}` : n, { owner: m, name: n, t: p, kind: 'param' });
      for (const [n, b] of m._buffers) if (b.persistent) targets.set(path ? `${path}.${n}` : n, { owner: m, name: n, t: b.t, kind: 'buffer' });
    }
    const missing = [...targets.keys()].filter((k) => !(k in sd));
    const unexpected = Object.keys(sd).filter((k) => !targets.has(k));
    if (strict && (missing.length || unexpected.length)) {
      throw new KilnError('argument', 'loadStateDict', `${missing.length ? `missing keys: ${missing.join(', ')}` : ''}${missing.length && unexpected.length ? '; ' : ''}${unexpected.length ? `unexpected keys: ${unexpected.join(', ')}` : ''}`);
    }
    // check everything before changing anything: a half-loaded model is never left behind
    for (const [k, src] of Object.entries(sd)) {
      const dst = targets.get(k);
      if (!dst) continue;
      if (src.shape.length !== dst.t.shape.length || src.shape.some((d, i) => d !== dst.t.shape[i])) {
        throw new KilnError('shape', 'loadStateDict', `${k}: checkpoint shape ${fmtShape(src.shape)} does not match the module's ${fmtShape(dst.t.shape)}`);
      }
      const floatish = (d: string) => d === 'f32' || d === 'f16' || d === 'bf16';
      if (src.dtype !== dst.t.dtype && !(floatish(src.dtype) && floatish(dst.t.dtype))) {
        throw new KilnError('dtype', 'loadStateDict', `${k}: checkpoint dtype ${src.dtype} cannot load into ${dst.t.dtype}`);
      }
    }
    noGrad(() => {
      for (const [k, src] of Object.entries(sd)) {
        const dst = targets.get(k);
        if (!dst) continue;
        const copy = clone(cast(src, dst.t.dtype));
        dst.t.assign(copy.isContiguous() ? copy : clone(copy));
      }
    });
    return { missing, unexpected };
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Sets requiresGrad on the parameters whose names match (all when no pattern is given). */
  requiresGrad_(on: boolean, pattern?: NamePattern): this {
    const re = pattern === undefined ? null : patternToRegExp(pattern);
    for (const [n, p] of this.namedParameters()) {
      if (!re || re.test(n)) {
        p.requiresGrad = on;
        if (!on) p.zeroGrad();
      }
    }
    return this;
  }

  /** Stops training the matching parameters (all when no pattern): works between steps too. */
  freeze(pattern?: NamePattern): this {
    return this.requiresGrad_(false, pattern);
  }

  unfreeze(pattern?: NamePattern): this {
    return this.requiresGrad_(true, pattern);
  }

  private addHook<H>(map: Map<number, H>, h: H): () => void {
    const id = hookIds++;
    map.set(id, h);
    return () => void map.delete(id);
  }
  /** fn(module, args) runs before forward and may return replacement args. Returns a remover. */
  registerForwardPreHook(fn: ForwardPreHook<In>): () => void {
    return this.addHook(this._pre, fn as unknown as ForwardPreHook);
  }
  /** fn(module, args, output) runs after forward and may return a replacement output. */
  registerForwardHook(fn: ForwardHook<In, Out>): () => void {
    return this.addHook(this._post, fn as unknown as ForwardHook);
  }
  /** fn(module, gradOutput) runs when the gradient of the module's output is computed. */
  registerBackwardHook(fn: BackwardHook): () => void {
    return this.addHook(this._bwd, fn);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /** Frees every parameter and buffer. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      for (const p of m._params.values()) p?.dispose();
      for (const b of m._buffers.values()) b.t.dispose();
    }
  }
}

/**
 * An indexed list of modules: children are named 0, 1, 2 ... as in torch.nn.ModuleList. The
 * registered children are the one store: replacing child '3' (replaceModule, setSubmodule)
 * changes what iteration, at() and items give.
 */
export class ModuleList<M extends Module = Module> extends Module<[], never> {
  constructor(items: Iterable<M> = []) {
    super();
    for (const m of items) this.push(m);
  }
  push(m: M): this {
    this.registerModule(String(this.length), m);
    return this;
  }
  /** Only the next index can be added: names are the positions. */
  override registerModule<N extends Module>(name: string, m: N): N {
    if (name !== String(this.length)) throw new KilnError('argument', 'ModuleList.registerModule', `children are named by position: the next is '${this.length}', got '${name}'; use push()`);
    return super.registerModule(name, m);
  }
  /** The children in order: a frozen snapshot (push() adds a child; replaceModule swaps one). */
  get items(): readonly M[] {
    return Object.freeze([...this.children()].map(([, m]) => m as M));
  }
  get length(): number {
    let n = 0;
    for (const _ of this.children()) n++;
    return n;
  }
  /** The i-th child; negative i counts from the end. Out of range is an index error. */
  at(i: number): M {
    const n = this.length;
    const j = i < 0 ? i + n : i;
    if (!Number.isInteger(j) || j < 0 || j >= n) throw new KilnError('index', 'ModuleList.at', `index ${i} is out of range for ${n} modules`);
    return this.child<M>(String(j));
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
  forward(): never {
    throw new KilnError('argument', 'ModuleList', 'a ModuleList has no forward; iterate over it');
  }
}
