// PEFT files for models whose kiln modules are not their Hugging Face checkpoint's (GPT-2's fused,
// transposed c_attn; Phi-3's qkv_proj / gate_up_proj; Mixtral's block_sparse_moe; a GGUF Llama's
// permuted q/k rows), through the declarative name map (models/name-map.ts, lora-map.ts).
//   export: kiln's per-module LoRAs -> one LoRA per HF module (fused: A's stacked along r, B block
//     diagonal, so the module's r is the parts' sum). PEFT has one scaling per module, alpha/r read
//     from the config: rank_pattern[module] = R, alpha_pattern[module] = s·R (s·√R for rsLoRA), with
//     s the first part's scaling; a part whose own scaling differs has s_i/s folded into its B.
//   DoRA: the magnitude is per output row: the fused module's is the parts' rows (q/k permuted likewise).
//   import: an HF module's LoRA -> kiln's. When the fused B is block structured (each part's rows
//     use their own columns of B only, as kiln's export writes) each part gets its own columns:
//     rank r_i. Otherwise (a real PEFT c_attn LoRA: one dense A shared by q, k, v) each part gets
//     the whole A and its band of B's rows at rank R and the module's alpha: the same scaling and
//     exactly the same product. Export writes parts that still share A back dense (the file as it came);
//     once trained apart, block-diagonal.
import { KilnError } from '../core/errors.js';
import type { Module } from '../nn/module.js';
import { nameMapOf } from '../models/export.js';
import { loraFromCheckpoint, lorasToCheckpoint, type CheckpointLora, type KilnLora } from '../models/lora-map.js';
import { permuteQK, type NameMap } from '../models/name-map.js';
import type { DecoderLM } from '../models/transformer.js';
import { loraScaling, patternKey, type LoraConfig } from './config.js';
import { isTarget, SAME_NAMES } from './model.js';

/** The name map to translate a model's adapters through; null when kiln's module names and layouts are the checkpoint's. */
export function adapterMap(modelType: string | null, op: string, model: Module): NameMap | null {
  const cfg = (model as { config?: DecoderLM['config'] }).config;
  const interleaved = cfg?.ropeLayout === 'interleaved';
  if (!modelType) {
    if (interleaved) throw new KilnError('config', op, `the model keeps llama.cpp's permuted q_proj/k_proj rows (a GGUF Llama): pass modelType so its adapters can be mapped to the Hugging Face layout`);
    return null;
  }
  if (SAME_NAMES.includes(modelType) && !interleaved) return null;
  if (!cfg) throw new KilnError('config', op, `model_type '${modelType}': kiln's module names differ from the checkpoint's and the model has no decoder config to build the name map from`);
  try {
    return nameMapOf(model as DecoderLM, modelType, 'hf');
  } catch (e) {
    throw new KilnError('config', op, `model_type '${modelType}': ${(e as Error).message}`);
  }
}

/** Options the name-map path does not translate (yet): refused rather than written wrong. */
export function checkMappable(c: LoraConfig, arch: string, op: string, where: string): void {
  const bad = c.bias !== 'none' ? `bias '${c.bias}'` : c.modules_to_save?.length ? 'modules_to_save' : null;
  if (bad) throw new KilnError('config', op, `${where}: ${bad} is not supported for a ${arch} model whose modules differ from its checkpoint's (LoRA/rsLoRA/DoRA factors are mapped)`);
}

/** The checkpoint's linear modules (weight names without `.weight`) with their (out, in). */
function hfLinears(map: NameMap): Map<string, { out: number; in: number; experts: boolean }> {
  const out = new Map<string, { out: number; in: number; experts: boolean }>();
  for (const [name, t] of map.tensors) {
    if (!name.endsWith('.weight') || t.shape.length !== 2) continue;
    const p = t.parts[0].placement;
    const [o, i] = p.transpose ? [t.shape[1], t.shape[0]] : t.shape;
    out.set(name.slice(0, -'.weight'.length), { out: o, in: i, experts: p.expert !== undefined });
  }
  return out;
}

/** The shortest dotted suffixes that name exactly `targets` among `all` (PEFT's minimal target_modules). */
function minimalSuffixes(targets: string[], all: string[]): string[] {
  const set = new Set(targets);
  const suffixes = (s: string) => s.split('.').map((_, i, p) => p.slice(i).join('.')).reverse();
  const others = new Set(all.filter((n) => !set.has(n)).flatMap(suffixes));
  return [...new Set(targets.map((t) => suffixes(t).find((s) => !others.has(s)) ?? t))].sort();
}

export interface KilnAdapterLora {
  path: string;
  A: Float32Array;
  B: Float32Array;
  r: number;
  inFeatures: number;
  outFeatures: number;
  scaling: number;
  /** DoRA's magnitude (out,) */
  m?: Float32Array;
}

/** kiln's LoRAs of one adapter -> PEFT's tensors (by file key) and the config fields that name HF modules. */
export function exportMapped(map: NameMap, c: LoraConfig, loras: KilnAdapterLora[]): { tensors: Map<string, { shape: number[]; data: Float32Array }>; config: Partial<LoraConfig> } {
  const first = new Map<string, number>(); // HF module -> the scaling of its first part
  const kiln: KilnLora[] = [];
  for (const l of loras) {
    const placements = map.params.get(`${l.path}.weight`);
    if (!placements) throw new KilnError('config', 'savePretrained', `${l.path}: no place in the ${map.arch} checkpoint's names`);
    if (placements[0].expert !== undefined) throw new KilnError('config', 'savePretrained', `${l.path}: LoRAs on stacked experts are not exported`);
    const mod = placements[0].name.replace(/\.weight$/, '');
    if (!first.has(mod)) first.set(mod, l.scaling);
    kiln.push({ path: l.path, A: { data: l.A, shape: [l.r, l.inFeatures] }, B: { data: l.B, shape: [l.outFeatures, l.r] }, scale: l.scaling / first.get(mod)! });
  }
  // parts that still share one A (a dense PEFT LoRA loaded, not trained since) go back out as it came: rank R, B's bands stacked
  const byMod = new Map<string, KilnLora[]>();
  for (const l of kiln) {
    const mod = map.params.get(`${l.path}.weight`)![0].name;
    byMod.set(mod, [...(byMod.get(mod) ?? []), l]);
  }
  const dense = new Map<string, CheckpointLora>();
  for (const [mod, parts] of byMod) {
    const t = map.tensors.get(mod)!;
    const [A0, r] = [parts[0].A.data, parts[0].A.shape[0]];
    const same = parts.length > 1 && parts.length === t.parts.length && parts.every((l) => l.scale === 1 && l.A.shape[0] === r && l.A.data.every((x, i) => x === A0[i]));
    if (!same || t.parts.some((x) => x.placement.permute)) continue;
    const out = t.parts.reduce((a, x) => a + (x.placement.rows![1] - x.placement.rows![0]), 0);
    const B = new Float32Array(out * r);
    for (const x of t.parts) B.set(parts.find((l) => `${l.path}.weight` === x.param)!.B.data, x.placement.rows![0] * r);
    dense.set(mod, { name: mod.replace(/\.weight$/, ''), A: { data: A0, shape: [r, parts[0].A.shape[1]] }, B: { data: B, shape: [out, r] } });
  }
  const blocks = lorasToCheckpoint(map, kiln.filter((l) => !dense.has(map.params.get(`${l.path}.weight`)![0].name)));
  const ck: CheckpointLora[] = [...byMod.keys()].map((mod) => dense.get(mod) ?? blocks.find((c) => c.name === mod.replace(/\.weight$/, ''))!);
  // DoRA: the magnitude is per output row, so the fused module's is the parts' rows in the checkpoint's order
  const mags = new Map(loras.filter((l) => l.m).map((l) => [`${l.path}.weight`, l.m!]));
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  const rank: Record<string, number> = {};
  const alpha: Record<string, number> = {};
  for (const l of ck) {
    const R = l.A.shape[0];
    const s = first.get(l.name)!;
    const a = c.use_rslora ? s * Math.sqrt(R) : s * R;
    if (R !== c.r) rank[l.name] = R;
    if (a !== c.lora_alpha) alpha[l.name] = a;
    tensors.set(`base_model.model.${l.name}.lora_A.weight`, l.A);
    tensors.set(`base_model.model.${l.name}.lora_B.weight`, l.B);
    if (mags.size) {
      const m = new Float32Array(l.B.shape[0]);
      for (const { param, placement: p } of map.tensors.get(`${l.name}.weight`)!.parts) {
        const v = mags.get(param);
        if (!v) throw new KilnError('config', 'savePretrained', `${param.replace(/\.weight$/, '')}: no DoRA magnitude beside its fused parts'`);
        m.set(p.permute ? permuteQK(v, p.permute.heads, 1, !p.permute.inverse) : v, p.rows?.[0] ?? 0);
      }
      tensors.set(`base_model.model.${l.name}.lora_magnitude_vector`, { shape: [m.length], data: m });
    }
  }
  const targets = minimalSuffixes(ck.map((l) => l.name), [...hfLinears(map).keys()]);
  const transposed = [...map.tensors.values()].some((t) => t.parts[0].placement.transpose);
  return {
    tensors,
    config: { target_modules: targets, rank_pattern: rank, alpha_pattern: alpha, layers_to_transform: null, layers_pattern: null, exclude_modules: null, fan_in_fan_out: transposed },
  };
}

/** The HF modules an adapter config targets on this checkpoint, with the (r, in) / (out, r) its tensors must have. */
export function mappedTargets(map: NameMap, c: LoraConfig): { name: string; r: number; alpha: number; out: number; in: number }[] {
  const out = [];
  const all = typeof c.target_modules === 'string' && c.target_modules.toLowerCase() === 'all-linear';
  for (const [name, lin] of hfLinears(map)) {
    if (name === 'lm_head' && all) continue; // PEFT's all-linear leaves the output layer out
    const conf = all ? { ...c, target_modules: [name] } : c;
    if (!isTarget(conf, name)) continue;
    if (lin.experts) throw new KilnError('config', 'loadAdapter', `target_modules matches ${name}, one expert of a stacked-experts weight: kiln has no per-expert LoRA module to load it onto`);
    const rk = patternKey(c.rank_pattern, name);
    const ak = patternKey(c.alpha_pattern, name);
    out.push({ name, r: rk ? c.rank_pattern[rk] : c.r, alpha: ak ? c.alpha_pattern[ak] : c.lora_alpha, out: lin.out, in: lin.in });
  }
  if (!out.length) throw new KilnError('config', 'loadAdapter', `target_modules ${JSON.stringify(c.target_modules)} matches no linear module of the ${map.arch} checkpoint`);
  return out;
}

/** One HF module's LoRA -> kiln's per-module LoRAs (r, alpha each), block-split when B is block structured. */
export function importMapped(map: NameMap, t: { name: string; r: number; alpha: number }, A: Float32Array, B: Float32Array, rslora: boolean, M?: Float32Array): (KilnLora & { r: number; alpha: number; m?: Float32Array })[] {
  const withM = (ls: (KilnLora & { r: number; alpha: number })[]) => {
    if (!M) return ls;
    const places = map.tensors.get(`${t.name}.weight`)!.parts;
    return ls.map((l, i) => {
      const p = places[i].placement;
      const v = M.slice(p.rows?.[0] ?? 0, p.rows?.[1] ?? M.length);
      return { ...l, m: p.permute ? permuteQK(v, p.permute.heads, 1, p.permute.inverse) : v };
    });
  };
  const parts = loraFromCheckpoint(map, t.name, { data: A, shape: [t.r, A.length / t.r] }, { data: B, shape: [B.length / t.r, t.r] });
  const s = loraScaling(t.alpha, t.r, rslora);
  if (parts.length > 1) {
    // the columns of B each part's rows use
    const cols = parts.map((p) => {
      const used: number[] = [];
      const rows = p.B.shape[0];
      for (let j = 0; j < t.r; j++) for (let i = 0; i < rows; i++) if (p.B.data[i * t.r + j] !== 0) { used.push(j); break; }
      return used;
    });
    const seen = new Set<number>();
    const disjoint = cols.every((u) => u.length > 0 && u.every((j) => !seen.has(j)) && (u.forEach((j) => seen.add(j)), true));
    if (disjoint) {
      return withM(parts.map((p, k) => {
        const u = cols[k];
        const inF = p.A.shape[1];
        const rows = p.B.shape[0];
        const a = new Float32Array(u.length * inF);
        const b = new Float32Array(rows * u.length);
        u.forEach((j, q) => {
          a.set(p.A.data.subarray(j * inF, (j + 1) * inF), q * inF);
          for (let i = 0; i < rows; i++) b[i * u.length + q] = p.B.data[i * t.r + j];
        });
        const r = u.length;
        return { ...p, A: { data: a, shape: [r, inF] }, B: { data: b, shape: [rows, r] }, r, alpha: rslora ? s * Math.sqrt(r) : s * r };
      }));
    }
  }
  return withM(parts.map((p) => ({ ...p, r: t.r, alpha: t.alpha })));
}
