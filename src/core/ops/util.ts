import type { Backend, View } from '../../backend/backend.js';
import { KilnError } from '../errors.js';
import { getBackend } from '../runtime.js';
import { broadcastStrides } from '../shape.js';
import type { Tensor } from '../tensor.js';

/** The backend all inputs share (the default one when there are none). */
export function backendOf(op: string, ...ts: (Tensor | null | undefined)[]): Backend {
  let b: Backend | null = null;
  for (const t of ts) {
    if (!t) continue;
    const tb = t.ref(op).backend;
    if (b && tb !== b) throw new KilnError('backend', op, `inputs live on different backends (${b.name} and ${tb.name}); move one with toBackend()`);
    b = tb;
  }
  return b ?? getBackend();
}

/** t viewed with `shape` (broadcast dims get stride 0), as a kernel operand. */
export function broadcastView(t: Tensor, shape: readonly number[]): View {
  return { storage: t.storage, dtype: t.dtype, shape, strides: broadcastStrides(t.shape, t.strides, shape), offset: t.offset };
}

/** Disposes intermediate tensors of a raw op, except the ones listed in `keep` (its inputs and output). */
export function disposeTemps(keep: readonly Tensor[], temps: readonly Tensor[]): void {
  for (const t of temps) if (!keep.includes(t)) t.dispose();
}
