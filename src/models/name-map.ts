// One declarative table per architecture maps kiln's parameter paths to a checkpoint's tensor
// names and layouts, in both directions: the Hugging Face and GGUF loaders read through it, and
// export (export.ts) and adapter export (lora-map.ts) write through it. A row names a checkpoint
// module and the kiln module(s) it holds, with the layout change between them:
//   fused     several kiln modules stacked along the output rows (GPT-2's c_attn, Phi-3's qkv_proj)
//   transpose the checkpoint stores (in, out) (GPT-2's Conv1D)
//   experts   kiln stacks experts on axis 0, the checkpoint has one tensor per expert ({e})
// and two changes derived from the kiln model's own layout against the format's:
//   permute   llama.cpp's converter reorders Llama's q/k rows per head for its pairwise RoPE
//   shift     Gemma's norms: Hugging Face stores w (applied as 1 + w), GGUF stores 1 + w
import { KilnError, fmtShape } from '../core/errors.js';
import type { DecoderConfig } from './config.js';

export type NameFormat = 'hf' | 'gguf';

/** Where (part of) a kiln parameter lives in a checkpoint. */
export interface Placement {
  /** the checkpoint tensor's name */
  name: string;
  /** rows [start, end) of the checkpoint tensor in nn.Linear's (out, in) orientation (elements of a vector) */
  rows?: [number, number];
  /** the checkpoint stores the weight (in, out): Conv1D */
  transpose: boolean;
  /** kiln's rows are the checkpoint's rows permuted as llama.cpp permutes q/k (`inverse`: un-permuted) */
  permute?: { kind: 'llama-qk'; heads: number; inverse: boolean };
  /** the index on kiln's stacked expert axis this tensor fills */
  expert?: number;
  /** kiln's value = the checkpoint's + shift */
  shift?: number;
}

export interface CheckpointTensor {
  shape: number[];
  parts: { param: string; placement: Placement }[];
}

export interface NameMap {
  arch: string;
  format: NameFormat;
  /** kiln parameter -> shape */
  shapes: Map<string, number[]>;
  /** kiln parameter -> its placement (one per expert for stacked experts) */
  params: Map<string, Placement[]>;
  /** checkpoint tensor -> its shape and the kiln parameters (bands) that fill it */
  tensors: Map<string, CheckpointTensor>;
}

interface Row {
  /** checkpoint module (or parameter, for experts) under the table's prefix; {e}: the expert */
  ckpt: string;
  /** kiln module(s) under the same layer; several are fused along the rows, in order */
  kiln: string | string[];
  transpose?: boolean;
  experts?: boolean;
  /** which heads count for llama.cpp's q/k permutation */
  qk?: 'q' | 'k';
  norm?: boolean;
}

interface Table {
  /** top-level rows, and rows under each layer's prefix ({i}) */
  top: Row[];
  layer: string;
  rows: Row[];
}

const same = (...names: string[]): Row[] => names.map((n) => ({ ckpt: n, kiln: n }));
const NORMS: Row[] = [
  { ckpt: 'input_layernorm', kiln: 'input_layernorm', norm: true },
  { ckpt: 'post_attention_layernorm', kiln: 'post_attention_layernorm', norm: true },
];
const HF_TOP: Row[] = [...same('model.embed_tokens', 'lm_head'), { ckpt: 'model.norm', kiln: 'model.norm', norm: true }];
const HF_ATTN: Row[] = [{ ckpt: 'self_attn.q_proj', kiln: 'self_attn.q_proj', qk: 'q' }, { ckpt: 'self_attn.k_proj', kiln: 'self_attn.k_proj', qk: 'k' }, ...same('self_attn.v_proj', 'self_attn.o_proj')];
const HF_LLAMA: Table = { top: HF_TOP, layer: 'model.layers.{i}.', rows: [...NORMS, ...HF_ATTN, ...same('mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj')] };

const GGUF_TOP: Row[] = [{ ckpt: 'token_embd', kiln: 'model.embed_tokens' }, { ckpt: 'output_norm', kiln: 'model.norm', norm: true }, { ckpt: 'output', kiln: 'lm_head' }];
const GGUF_NORMS: Row[] = [{ ckpt: 'attn_norm', kiln: 'input_layernorm', norm: true }, { ckpt: 'ffn_norm', kiln: 'post_attention_layernorm', norm: true }];
const GGUF_ATTN: Row[] = [
  { ckpt: 'attn_q', kiln: 'self_attn.q_proj', qk: 'q' }, { ckpt: 'attn_k', kiln: 'self_attn.k_proj', qk: 'k' },
  { ckpt: 'attn_v', kiln: 'self_attn.v_proj' }, { ckpt: 'attn_output', kiln: 'self_attn.o_proj' },
];
const GGUF_MLP: Row[] = [{ ckpt: 'ffn_gate', kiln: 'mlp.gate_proj' }, { ckpt: 'ffn_up', kiln: 'mlp.up_proj' }, { ckpt: 'ffn_down', kiln: 'mlp.down_proj' }];
const GGUF_LLAMA: Table = { top: GGUF_TOP, layer: 'blk.{i}.', rows: [...GGUF_NORMS, ...GGUF_ATTN, ...GGUF_MLP] };

/** The tables: Hugging Face names by model_type, llama.cpp's names by general.architecture. */
const TABLES: Record<NameFormat, Record<string, Table>> = {
  hf: {
    llama: HF_LLAMA, mistral: HF_LLAMA, qwen2: HF_LLAMA, gemma: HF_LLAMA,
    phi3: {
      ...HF_LLAMA,
      rows: [...NORMS, { ckpt: 'self_attn.qkv_proj', kiln: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'] }, ...same('self_attn.o_proj', 'mlp.down_proj'), { ckpt: 'mlp.gate_up_proj', kiln: ['mlp.gate_proj', 'mlp.up_proj'] }],
    },
    mixtral: {
      ...HF_LLAMA,
      rows: [
        ...NORMS, ...HF_ATTN, { ckpt: 'block_sparse_moe.gate', kiln: 'mlp.gate' },
        ...(['w1', 'w3', 'w2'] as const).map((w, k) => ({ ckpt: `block_sparse_moe.experts.{e}.${w}.weight`, kiln: `mlp.experts.${['gate', 'up', 'down'][k]}_proj`, experts: true })),
      ],
    },
    gpt2: {
      top: [{ ckpt: 'transformer.wte', kiln: 'model.embed_tokens' }, { ckpt: 'transformer.wpe', kiln: 'model.embed_positions' }, { ckpt: 'transformer.ln_f', kiln: 'model.norm' }, ...same('lm_head')],
      layer: 'transformer.h.{i}.',
      rows: [
        { ckpt: 'ln_1', kiln: 'input_layernorm' }, { ckpt: 'ln_2', kiln: 'post_attention_layernorm' },
        { ckpt: 'attn.c_attn', kiln: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'], transpose: true },
        { ckpt: 'attn.c_proj', kiln: 'self_attn.o_proj', transpose: true },
        { ckpt: 'mlp.c_fc', kiln: 'mlp.fc1', transpose: true }, { ckpt: 'mlp.c_proj', kiln: 'mlp.fc2', transpose: true },
      ],
    },
  },
  gguf: {
    llama: GGUF_LLAMA, mistral: GGUF_LLAMA, qwen2: GGUF_LLAMA, gemma: GGUF_LLAMA,
    phi3: { ...GGUF_LLAMA, rows: [...GGUF_NORMS, { ckpt: 'attn_qkv', kiln: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'] }, GGUF_ATTN[3], { ckpt: 'ffn_up', kiln: ['mlp.gate_proj', 'mlp.up_proj'] }, GGUF_MLP[2]] },
    mixtral: {
      ...GGUF_LLAMA,
      rows: [...GGUF_NORMS, ...GGUF_ATTN, { ckpt: 'ffn_gate_inp', kiln: 'mlp.gate' }, ...['gate', 'up', 'down'].map((p) => ({ ckpt: `ffn_${p}_exps`, kiln: `mlp.experts.${p}_proj` }))],
    },
    // llama.cpp's converter stores GPT-2's Conv1D weights transposed to (out, in)
    gpt2: {
      top: [{ ckpt: 'token_embd', kiln: 'model.embed_tokens' }, { ckpt: 'position_embd', kiln: 'model.embed_positions' }, { ckpt: 'output_norm', kiln: 'model.norm' }, { ckpt: 'output', kiln: 'lm_head' }],
      layer: 'blk.{i}.',
      rows: [{ ckpt: 'attn_norm', kiln: 'input_layernorm' }, { ckpt: 'ffn_norm', kiln: 'post_attention_layernorm' }, { ckpt: 'attn_qkv', kiln: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'] }, GGUF_ATTN[3], { ckpt: 'ffn_up', kiln: 'mlp.fc1' }, { ckpt: 'ffn_down', kiln: 'mlp.fc2' }],
    },
  },
};

/** Architectures whose GGUF q/k rows llama.cpp's converter permutes (its LlamaModel family). */
const PERMUTED_IN_GGUF = ['llama', 'mistral', 'mixtral'];

export const mapArchs = (format: NameFormat): string[] => Object.keys(TABLES[format]);

export interface NameMapOptions {
  /** the checkpoint's tensor names, when reading one: GPT-2 files without the `transformer.` prefix are then recognised */
  names?: Set<string>;
}

/**
 * The map between a kiln model's parameters (`shapes`, from namedParameters or parameterShapes)
 * and a checkpoint of architecture `arch` in `format`. `cfg` tells kiln's own layout (q/k rows in
 * llama.cpp's order when ropeLayout is 'interleaved'; Gemma norms as w when normOffset). Every
 * parameter must have a place, and every fused tensor's bands must tile it.
 */
export function buildNameMap(arch: string, format: NameFormat, cfg: DecoderConfig, shapes: Map<string, number[]>, opts: NameMapOptions = {}): NameMap {
  const table = TABLES[format][arch];
  if (!table) throw new KilnError('config', 'nameMap', `no ${format === 'hf' ? 'Hugging Face' : 'GGUF'} names for architecture '${arch}' (${mapArchs(format).join(', ')})`);
  // a GPT-2 base model's file (GPT2Model) has no `transformer.` prefix
  const strip = arch === 'gpt2' && format === 'hf' && opts.names && !opts.names.has('transformer.wte.weight') && opts.names.has('wte.weight');
  const ckptName = (n: string): string => (strip ? n.replace(/^transformer\./, '') : n);
  const interleaved = (cfg.ropeLayout ?? 'half') === 'interleaved';
  const wantInterleaved = format === 'gguf' && PERMUTED_IN_GGUF.includes(arch);
  const gemma = arch === 'gemma';
  // kiln = checkpoint + shift: HF Gemma in kiln keeps w (normOffset); GGUF Gemma keeps 1 + w
  const shift = gemma ? (cfg.normOffset ? 0 : 1) - (format === 'hf' ? 0 : 1) : 0;
  const D = cfg.headDim ?? cfg.hiddenSize / cfg.numHeads;

  const map: NameMap = { arch, format, shapes, params: new Map(), tensors: new Map() };
  const add = (row: Row, kilnPrefix: string, ckptPrefix: string): void => {
    const kiln = Array.isArray(row.kiln) ? row.kiln : [row.kiln];
    for (const suffix of ['weight', 'bias', '']) {
      const paths = kiln.map((m) => `${kilnPrefix}${m}${suffix && '.'}${suffix}`);
      const present = paths.filter((p) => shapes.has(p));
      if (!present.length) continue;
      if (present.length < paths.length) throw new KilnError('config', 'nameMap', `${paths.find((p) => !shapes.has(p))} is missing beside ${present[0]}, which ${row.ckpt} fuses with it`);
      const ps = paths.map((p) => shapes.get(p)!);
      const permute = row.qk && interleaved !== wantInterleaved && suffix !== '' ? { kind: 'llama-qk' as const, heads: row.qk === 'q' ? cfg.numHeads : (cfg.numKVHeads ?? cfg.numHeads), inverse: wantInterleaved } : undefined;
      if (permute && ps[0][0] !== permute.heads * D) throw new KilnError('config', 'nameMap', `${paths[0]} has ${ps[0][0]} rows, not ${permute.heads} heads of ${D}`);
      const base = { transpose: !!row.transpose && suffix === 'weight', ...(permute ? { permute } : {}), ...(row.norm && shift ? { shift } : {}) };
      if (row.experts) {
        const [E, ...inner] = ps[0];
        for (let e = 0; e < E; e++) {
          const name = ckptName(`${ckptPrefix}${row.ckpt.replace('{e}', String(e))}`);
          const placement: Placement = { name, ...base, expert: e };
          map.tensors.set(name, { shape: base.transpose ? [...inner].reverse() : inner, parts: [{ param: paths[0], placement }] });
          map.params.set(paths[0], [...(map.params.get(paths[0]) ?? []), placement]);
        }
        continue;
      }
      const name = ckptName(`${ckptPrefix}${row.ckpt}${suffix && '.'}${suffix}`);
      const rows = ps.reduce((a, s) => a + s[0], 0);
      const tail = ps[0].slice(1);
      if (ps.some((s) => s.length !== ps[0].length || s.slice(1).some((d, i) => d !== tail[i]))) throw new KilnError('config', 'nameMap', `${name} fuses ${paths.join(', ')} of unequal widths`);
      const shape = base.transpose ? [...tail].reverse().concat(rows) : [rows, ...tail];
      const t: CheckpointTensor = { shape, parts: [] };
      let r = 0;
      paths.forEach((p, i) => {
        const placement: Placement = { name, ...(paths.length > 1 ? { rows: [r, r + ps[i][0]] as [number, number] } : {}), ...base };
        r += ps[i][0];
        t.parts.push({ param: p, placement });
        map.params.set(p, [placement]);
      });
      map.tensors.set(name, t);
    }
  };
  for (const row of table.top) add(row, '', '');
  for (let i = 0; ; i++) {
    const kp = `model.layers.${i}.`;
    if (![...shapes.keys()].some((p) => p.startsWith(kp))) break;
    for (const row of table.rows) add(row, kp, table.layer.replace('{i}', String(i)));
  }
  const missed = [...shapes.keys()].filter((p) => !map.params.has(p));
  if (missed.length) throw new KilnError('config', 'nameMap', `no ${format} name for ${missed.join(', ')} (architecture '${arch}')`);
  return map;
}

/** The placements of a kiln parameter or module path (`…q_proj` or `…q_proj.weight`). */
export function placementOf(map: NameMap, kilnPath: string): { param: string; placements: Placement[] } {
  for (const param of [kilnPath, `${kilnPath}.weight`]) {
    const placements = map.params.get(param);
    if (placements) return { param, placements };
  }
  throw new KilnError('argument', 'placementOf', `'${kilnPath}' is no parameter of this ${map.arch} model`);
}

// ---------------------------------------------------------------- layouts

export function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j];
  return out;
}

/**
 * llama.cpp's q/k permutation of the rows of a (heads·D, cols) matrix (convert_hf_to_gguf.py's
 * `permute`: reshape (heads, 2, D/2, cols), swap axes 1 and 2): row h·D + 2i + j of the result is
 * row h·D + j·D/2 + i of `a`. `inverse` undoes it.
 */
export function permuteQK(a: Float32Array, heads: number, cols: number, inverse = false): Float32Array {
  const D = a.length / cols / heads;
  const out = new Float32Array(a.length);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < D / 2; i++)
      for (let j = 0; j < 2; j++) {
        const [to, from] = [h * D + 2 * i + j, h * D + j * (D / 2) + i];
        const [dst, src] = inverse ? [from, to] : [to, from];
        out.set(a.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
  return out;
}

/** The (rows, cols) a placement's band has in nn.Linear's orientation, for a parameter (or one expert) of `shape`. */
const band = (shape: number[]): [number, number] => [shape[0] ?? 1, shape.slice(1).reduce((a, b) => a * b, 1)];

/** A checkpoint tensor's values -> the values of the kiln parameter part `p` places (one expert's, for stacked experts). */
export function toKiln(values: Float32Array, ckptShape: number[], p: Placement): Float32Array {
  let v = p.transpose ? transpose2d(values, ckptShape[0], ckptShape[1]) : values;
  const [, C] = band(p.transpose ? [...ckptShape].reverse() : ckptShape);
  if (p.rows) v = v.slice(p.rows[0] * C, p.rows[1] * C);
  if (p.permute) v = permuteQK(v, p.permute.heads, C, p.permute.inverse);
  if (p.shift) v = v.map((x) => x + p.shift!);
  return v;
}

/** Kiln values (one parameter's, or one expert's) written into their band of a checkpoint tensor (`into`, in its own layout). */
export function fromKiln(values: Float32Array, ckptShape: number[], p: Placement, into: Float32Array): void {
  const lin = p.transpose ? [...ckptShape].reverse() : ckptShape;
  const [, C] = band(lin);
  let v = p.shift ? values.map((x) => x - p.shift!) : values;
  if (p.permute) v = permuteQK(v, p.permute.heads, C, !p.permute.inverse);
  const r0 = p.rows?.[0] ?? 0;
  if (!p.transpose) return into.set(v, r0 * C);
  // (out, in) band -> columns of the (in, out) tensor
  const [In, Out] = ckptShape;
  const rows = v.length / C;
  for (let r = 0; r < rows; r++) for (let c = 0; c < In; c++) into[c * Out + r0 + r] = v[r * C + c];
}

/** Checks a checkpoint's tensor shapes against the map before any data is read. */
export function checkShapes(map: NameMap, shapeOf: (name: string) => number[] | undefined, where: (name: string) => string): void {
  for (const [name, t] of map.tensors) {
    const have = shapeOf(name);
    const params = t.parts.map((x) => `${x.param}${x.placement.expert !== undefined ? `[${x.placement.expert}]` : ''}`).join(' + ');
    if (!have) throw new KilnError('config', 'load', `${where(name)}: missing tensor '${name}' (for ${params} ${fmtShape(map.shapes.get(t.parts[0].param)!)})`);
    if (have.length !== t.shape.length || have.some((d, i) => d !== t.shape[i]))
      throw new KilnError('shape', 'load', `${where(name)}: tensor '${name}' is ${fmtShape(have)} but the config makes ${params} ${fmtShape(t.shape)}${t.parts.length > 1 || t.parts[0].placement.transpose ? ' (as stored)' : ''}`);
  }
}

/** Whether a placement is the checkpoint tensor as it is (its bytes can go straight into the parameter). */
export const isPlain = (ps: Placement[]): boolean => ps.length === 1 && !ps[0].rows && !ps[0].transpose && !ps[0].permute && !ps[0].shift && ps[0].expert === undefined;

/** A kiln parameter's values from the checkpoint tensors its placements name (`read`: a tensor's float32 values). */
export async function kilnValues(map: NameMap, param: string, read: (name: string) => Promise<Float32Array>): Promise<Float32Array> {
  const ps = map.params.get(param)!;
  const n = map.shapes.get(param)!.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (const p of ps) {
    const v = toKiln(await read(p.name), map.tensors.get(p.name)!.shape, p);
    if (v.length * ps.length !== n) throw new KilnError('shape', 'load', `'${p.name}' makes ${v.length} values, ${param}${p.expert !== undefined ? `[${p.expert}]` : ''} needs ${n / ps.length}`);
    out.set(v, (p.expert ?? 0) * v.length);
  }
  return out;
}
