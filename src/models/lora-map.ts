// LoRA factors between kiln's modules and a checkpoint's, through the name map. PEFT keeps
// lora_A (r, in) and lora_B (out, r) in nn.Linear's orientation even on GPT-2's Conv1D
// (fan_in_fan_out only transposes the product: peft/tuners/lora/layer.py, Linear.get_delta_weight
// returns transpose(B @ A, fan_in_fan_out)), so a transposed weight leaves the factors alone. The
// other layouts:
//   fused rows (c_attn, qkv_proj, gate_up_proj): the parts' LoRAs become one, A's concatenated
//     along r and B block-diagonal (a part without a LoRA gets zero rows), so B'·A' stacks B_i·A_i;
//   permuted q/k rows (a GGUF Llama base exported to HF names): B's rows take the permutation;
//   stacked experts: kiln's (E, r, in) / (E, out, r) factors become one LoRA per expert tensor.
import { KilnError, fmtShape } from '../core/errors.js';
import { permuteQK, placementOf, type NameMap, type Placement } from './name-map.js';

/** A row-major matrix (or a stack of them, for experts). */
export interface Mat {
  data: Float32Array;
  shape: number[];
}

/** A LoRA on a checkpoint module (PEFT's target name, without `.weight`): ΔW = B·A in nn.Linear's orientation. */
export interface CheckpointLora {
  name: string;
  A: Mat;
  B: Mat;
}

/** A LoRA on a kiln module path (or a stacked-experts parameter, with the expert it belongs to). */
export interface KilnLora {
  path: string;
  expert?: number;
  A: Mat;
  B: Mat;
  /** multiplies B on export: folds a per-part scaling into the fused LoRA's single one */
  scale?: number;
}

const fail = (code: 'shape' | 'argument', msg: string): KilnError => new KilnError(code, 'loraToCheckpoint', msg);
const moduleOf = (name: string): string => name.replace(/\.weight$/, '');

/** The (out, in) a placement's weight has in nn.Linear's orientation, and its rows in the whole checkpoint tensor. */
function linear(map: NameMap, p: Placement): { out: number; in: number; rows: [number, number] } {
  const s = map.tensors.get(p.name)!.shape;
  if (s.length !== 2) throw fail('argument', `'${p.name}' is no matrix: a LoRA needs a linear weight`);
  const [out, inF] = p.transpose ? [s[1], s[0]] : s;
  return { out, in: inF, rows: p.rows ?? [0, out] };
}

/** Permutes B's rows as the placement's q/k permutation says, in the direction kiln -> checkpoint (`toCkpt`) or back. */
const permuteB = (B: Float32Array, p: Placement, r: number, toCkpt: boolean): Float32Array =>
  p.permute ? permuteQK(B, p.permute.heads, r, p.permute.inverse !== toCkpt) : B;

/**
 * kiln LoRAs -> the checkpoint's: one per checkpoint module (several kiln modules fused into one
 * tensor share a LoRA of their summed rank), in first-seen order.
 */
export function lorasToCheckpoint(map: NameMap, loras: KilnLora[]): CheckpointLora[] {
  const groups = new Map<string, { p: Placement; A: Float32Array; B: Float32Array; r: number }[]>();
  for (const l of loras) {
    const { param, placements } = placementOf(map, l.path);
    const stacked = placements[0].expert !== undefined;
    const [E, r, inA] = stacked ? l.A.shape : [1, ...l.A.shape];
    const [EB, outB, rB] = stacked ? l.B.shape : [1, ...l.B.shape];
    if (l.A.shape.length !== (stacked ? 3 : 2) || l.B.shape.length !== l.A.shape.length || E !== placements.length || EB !== E || rB !== r)
      throw fail('shape', `${l.path}: lora_A ${fmtShape(l.A.shape)} and lora_B ${fmtShape(l.B.shape)} are no ${stacked ? `(${placements.length}, r, in) and (${placements.length}, out, r)` : '(r, in) and (out, r)'} pair for ${param}`);
    placements.forEach((p, e) => {
      const lin = linear(map, p);
      if (inA !== lin.in || outB !== lin.rows[1] - lin.rows[0]) throw fail('shape', `${l.path}: lora_A ${fmtShape(l.A.shape)}, lora_B ${fmtShape(l.B.shape)} do not fit ${param} (out ${lin.rows[1] - lin.rows[0]}, in ${lin.in})`);
      const A = l.A.data.subarray(e * r * inA, (e + 1) * r * inA);
      let B = l.B.data.subarray(e * outB * r, (e + 1) * outB * r);
      if (l.scale !== undefined && l.scale !== 1) B = B.map((x) => x * l.scale!);
      const g = groups.get(p.name) ?? [];
      if (g.some((x) => x.p === p)) throw fail('argument', `${l.path}: two LoRAs for the same module`);
      groups.set(p.name, [...g, { p, A, B: permuteB(B, p, r, true), r }]);
    });
  }
  return [...groups].map(([name, parts]) => {
    const { out, in: inF } = linear(map, parts[0].p);
    const R = parts.reduce((a, x) => a + x.r, 0);
    const A = new Float32Array(R * inF);
    const B = new Float32Array(out * R);
    let k = 0;
    for (const { p, A: a, B: b, r } of parts) {
      A.set(a, k * inF);
      const [r0, r1] = linear(map, p).rows;
      for (let i = r0; i < r1; i++) B.set(b.subarray((i - r0) * r, (i - r0 + 1) * r), i * R + k);
      k += r;
    }
    return { name: moduleOf(name), A: { data: A, shape: [R, inF] }, B: { data: B, shape: [out, R] } };
  });
}

/** One kiln module's LoRA (A (r, in), B (out, r); (E, r, in), (E, out, r) for stacked experts) in the checkpoint's modules. */
export const loraToCheckpoint = (map: NameMap, kilnPath: string, A: Mat, B: Mat): CheckpointLora[] => lorasToCheckpoint(map, [{ path: kilnPath, A, B }]);

/**
 * A checkpoint module's LoRA -> kiln's: a fused tensor's LoRA gives each part A and its band of
 * B's rows (the same rank, so each part's B·A is exactly its band of the fused ΔW); permuted q/k
 * rows are permuted back into kiln's order; an expert tensor's LoRA names the expert.
 */
export function loraFromCheckpoint(map: NameMap, name: string, A: Mat, B: Mat): KilnLora[] {
  const t = map.tensors.get(`${name}.weight`) ?? map.tensors.get(name);
  if (!t) throw new KilnError('argument', 'loraFromCheckpoint', `'${name}' is no weight of this ${map.arch} checkpoint`);
  const lin = linear(map, t.parts[0].placement);
  const [r, inA] = A.shape;
  if (A.shape.length !== 2 || B.shape.length !== 2 || inA !== lin.in || B.shape[0] !== lin.out || B.shape[1] !== r)
    throw new KilnError('shape', 'loraFromCheckpoint', `${name}: lora_A ${fmtShape(A.shape)} and lora_B ${fmtShape(B.shape)} do not fit its (out ${lin.out}, in ${lin.in}) weight`);
  return t.parts.map(({ param, placement: p }) => {
    const [r0, r1] = p.rows ?? [0, lin.out];
    const b = permuteB(B.data.slice(r0 * r, r1 * r), p, r, false);
    return { path: moduleOf(param), ...(p.expert !== undefined ? { expert: p.expert } : {}), A: { data: A.data.slice(), shape: [r, inA] }, B: { data: b, shape: [r1 - r0, r] } };
  });
}
