// Losses. crossEntropy is one fused kernel each way; the composed logSoftmax + gather reference
// it is tested against lives in the tests.
import { crossEntropyBwdCall, crossEntropyFwdCall } from '../../kernels/loss.js';
import { record } from '../autograd.js';
import { KilnError, fmtShape } from '../errors.js';
import { Tensor } from '../tensor.js';
import { cast, div } from './pointwise.js';
import { sum } from './reduce.js';
import { clone, contiguous, expand, reshape } from './shape.js';
import { backendOf, disposeTemps } from './util.js';

export interface CrossEntropyOptions {
  /** Targets equal to this contribute no loss and no gradient (default -100, as torch). */
  ignoreIndex?: number;
  /** Mixes the one-hot target with the uniform distribution (torch's label_smoothing). */
  labelSmoothing?: number;
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * Cross-entropy of logits (..., C) against i32 class targets (...). 'mean' divides by the
 * number of targets that are not ignored, as torch does.
 */
export function crossEntropy(logits: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const ignore = opts.ignoreIndex ?? -100;
  const eps = opts.labelSmoothing ?? 0;
  const reduction = opts.reduction ?? 'mean';
  if (target.dtype !== 'i32') throw new KilnError('dtype', 'crossEntropy', `target must be i32 class indices, got ${target.dtype}`);
  const C = logits.shape[logits.ndim - 1];
  const lead = logits.shape.slice(0, -1);
  if (logits.ndim < 1 || target.shape.length !== lead.length || target.shape.some((d, i) => d !== lead[i])) {
    throw new KilnError('shape', 'crossEntropy', `target ${fmtShape(target.shape)} must be logits ${fmtShape(logits.shape)} without the class dim`);
  }
  if (eps < 0 || eps > 1) throw new KilnError('argument', 'crossEntropy', `labelSmoothing must be in [0, 1], got ${eps}`);
  const b = backendOf('crossEntropy', logits, target);
  const N = target.size;
  const lf = cast(logits, 'f32');
  const x = contiguous(reshape(lf, [N, C]));
  const t = contiguous(reshape(target, [N]));
  const loss = Tensor.empty(b, [N], 'f32');
  const lse = Tensor.empty(b, [N], 'f32');
  const valid = Tensor.empty(b, [N], 'f32');
  if (N) b.run(crossEntropyFwdCall(x, t, loss, lse, valid, N, C, ignore, eps));
  const backwardRows = (scaleRows: Tensor): Tensor => {
    // the kernel reads scale from element 0: a fresh copy unless it already starts there
    const s = scaleRows.isContiguous() && scaleRows.offset === 0 ? scaleRows : clone(scaleRows);
    const dx = Tensor.empty(b, [N, C], 'f32');
    if (N) b.run(crossEntropyBwdCall(x, t, lse, s, dx, N, C, ignore, eps));
    return reshape(dx, logits.shape);
  };
  let out: Tensor;
  if (reduction === 'none') {
    // (N) -> the target's shape; dlogits row r scales by g[r]
    record(loss, 'crossEntropy', [logits], (g) => [backwardRows(reshape(g, [N]))]);
    out = reshape(loss, target.shape);
  } else {
    const total = sum(loss);
    const count = reduction === 'mean' ? sum(valid) : null;
    const raw = count ? div(total, count) : total;
    out = record(raw, 'crossEntropy', [logits], (g) => {
      const scale = count ? div(g, count) : g;
      return [backwardRows(expand(reshape(scale, [1]), [N]))];
    });
  }
  disposeTemps([logits, target], [lf]);
  return out;
}
