// LoraConfig: Hugging Face PEFT's field names (snake_case, as adapter_config.json has them), its
// defaults and its checks (peft/tuners/lora/config.py). Every field PEFT writes is known here: the
// ones naming a feature kiln lacks must keep PEFT's default, any other key is an error naming it.
import { KilnError, type KilnErrorCode } from '../core/errors.js';

export type InitLoraWeights = boolean | 'gaussian';

export interface LoraConfig {
  peft_type: 'LORA';
  task_type: string | null;
  base_model_name_or_path: string | null;
  revision: string | null;
  inference_mode: boolean;
  /** the adapter rank (lora_A is (r, in), lora_B (out, r)) */
  r: number;
  /** a list: module names matched exactly or as a dotted suffix; a string: a regex matched against the whole name; 'all-linear': every Linear but the output layer; null: q_proj, v_proj (PEFT's default for llama-style models) */
  target_modules: string[] | string | null;
  exclude_modules: string[] | string | null;
  lora_alpha: number;
  lora_dropout: number;
  fan_in_fan_out: boolean;
  bias: 'none' | 'all' | 'lora_only';
  /** scaling alpha / sqrt(r) instead of alpha / r */
  use_rslora: boolean;
  modules_to_save: string[] | null;
  /** true: A kaiming-uniform (a = sqrt 5), B zeros; 'gaussian': A ~ N(0, 1/r), B zeros; false: both random (tests) */
  init_lora_weights: InitLoraWeights | string;
  layers_to_transform: number[] | number | null;
  layers_pattern: string[] | string | null;
  /** per-module rank, keyed by a regex matched at the end of the module name */
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  use_dora: boolean;
}

/** The fields kiln reads, with PEFT's defaults. */
export const LORA_DEFAULTS: LoraConfig = {
  peft_type: 'LORA', task_type: null, base_model_name_or_path: null, revision: null, inference_mode: false,
  r: 8, target_modules: null, exclude_modules: null, lora_alpha: 8, lora_dropout: 0, fan_in_fan_out: false, bias: 'none', use_rslora: false,
  modules_to_save: null, init_lora_weights: true, layers_to_transform: null, layers_pattern: null, rank_pattern: {}, alpha_pattern: {}, use_dora: false,
};

/**
 * PEFT's other LoraConfig fields (as of PEFT 0.18) with the values kiln supports: their defaults
 * (features kiln lacks) or anything (informational). savePretrained writes them, as PEFT does.
 */
const ANY = Symbol('any');
export const PEFT_OTHER_FIELDS: Record<string, unknown> = {
  auto_mapping: ANY, peft_version: ANY, megatron_core: ANY, qalora_group_size: ANY,
  megatron_config: null, trainable_token_indices: null, loftq_config: {}, eva_config: null, corda_config: null, lora_ga_config: null,
  velora_config: null, alora_invocation_tokens: null, use_qalora: false, monteclora_config: null, layer_replication: null, lora_bias: false,
  target_parameters: null, use_bdlora: null, arrow_config: null, kasa_config: null, ensure_weight_tying: false,
};
/** What savePretrained writes for PEFT_OTHER_FIELDS (PEFT's defaults). */
export const PEFT_OTHER_DEFAULTS: Record<string, unknown> = {
  auto_mapping: null, peft_version: null, megatron_core: 'megatron.core', qalora_group_size: 16,
  ...Object.fromEntries(Object.entries(PEFT_OTHER_FIELDS).filter(([, v]) => v !== ANY)),
};

const TASK_TYPES = ['SEQ_CLS', 'SEQ_2_SEQ_LM', 'CAUSAL_LM', 'TOKEN_CLS', 'QUESTION_ANS', 'FEATURE_EXTRACTION'];

const isStrList = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/**
 * A complete, checked LoraConfig from some of its fields (user code, or adapter_config.json when
 * `where` names the file: errors then have code 'config'). Unknown fields, wrong types, values
 * out of range and PEFT features kiln lacks are errors naming the field.
 */
export function loraConfig(fields: Partial<LoraConfig> | Record<string, unknown> = {}, where = 'LoraConfig', code: KilnErrorCode = 'argument'): LoraConfig {
  const bad = (field: string, msg: string): KilnError => new KilnError(code, 'LoraConfig', `${where === 'LoraConfig' ? '' : `${where}: `}${field}: ${msg}`);
  if (!fields || typeof fields !== 'object' || Array.isArray(fields)) throw bad('(config)', 'must be an object of LoraConfig fields');
  const c = { ...LORA_DEFAULTS, rank_pattern: {}, alpha_pattern: {} } as LoraConfig & Record<string, unknown>;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || k === 'runtime_config') continue; // PEFT drops runtime_config from files too
    if (k in LORA_DEFAULTS) {
      c[k] = v;
    } else if (k in PEFT_OTHER_FIELDS) {
      const want = PEFT_OTHER_FIELDS[k];
      if (want !== ANY && !same(v, want) && !(want === null && v === undefined)) throw bad(k, `${JSON.stringify(v)} is not supported by kiln (only ${JSON.stringify(want)})`);
    } else {
      throw bad(k, `unknown LoraConfig field (the fields are PEFT's: ${Object.keys(LORA_DEFAULTS).join(', ')}, ...)`);
    }
  }
  if (c.peft_type !== 'LORA') throw bad('peft_type', `${JSON.stringify(c.peft_type)} is not "LORA"`);
  if (c.task_type !== null && !TASK_TYPES.includes(c.task_type)) throw bad('task_type', `${JSON.stringify(c.task_type)} is not one of ${TASK_TYPES.join(', ')}`);
  for (const k of ['base_model_name_or_path', 'revision'] as const) if (c[k] !== null && typeof c[k] !== 'string') throw bad(k, `must be a string or null, got ${JSON.stringify(c[k])}`);
  for (const k of ['inference_mode', 'fan_in_fan_out', 'use_rslora', 'use_dora'] as const) if (typeof c[k] !== 'boolean') throw bad(k, `must be true or false, got ${JSON.stringify(c[k])}`);
  if (!(Number.isInteger(c.r) && c.r > 0)) throw bad('r', `must be a positive integer, got ${JSON.stringify(c.r)}`);
  // the scaling alpha / r is an f32 multiplier: it must stay finite there
  const f32 = (n: unknown): boolean => typeof n === 'number' && Number.isFinite(Math.fround(n));
  if (!f32(c.lora_alpha)) throw bad('lora_alpha', `must be a number within float32's range, got ${JSON.stringify(c.lora_alpha)}`);
  if (typeof c.lora_dropout !== 'number' || !(c.lora_dropout >= 0 && c.lora_dropout < 1)) throw bad('lora_dropout', `must be in [0, 1), got ${JSON.stringify(c.lora_dropout)}`);
  if (!['none', 'all', 'lora_only'].includes(c.bias)) throw bad('bias', `must be "none", "all" or "lora_only", got ${JSON.stringify(c.bias)}`);
  for (const k of ['target_modules', 'exclude_modules'] as const) {
    const v = c[k];
    if (v !== null && typeof v !== 'string' && !isStrList(v)) throw bad(k, `must be a list of module names, a regex string or null, got ${JSON.stringify(v)}`);
    if (typeof v === 'string') {
      try {
        new RegExp(v);
      } catch (e) {
        throw bad(k, `${JSON.stringify(v)} is not a valid regex (${(e as Error).message})`);
      }
    }
  }
  if (c.modules_to_save !== null && !isStrList(c.modules_to_save)) throw bad('modules_to_save', `must be a list of module names or null, got ${JSON.stringify(c.modules_to_save)}`);
  const init = c.init_lora_weights;
  if (typeof init !== 'boolean' && typeof init !== 'string') throw bad('init_lora_weights', `must be true, false or "gaussian", got ${JSON.stringify(init)}`);
  const lt = c.layers_to_transform;
  if (lt !== null && !(Number.isInteger(lt) || (Array.isArray(lt) && lt.every(Number.isInteger)))) throw bad('layers_to_transform', `must be a layer index, a list of them or null, got ${JSON.stringify(lt)}`);
  if (c.layers_pattern !== null && typeof c.layers_pattern !== 'string' && !isStrList(c.layers_pattern)) throw bad('layers_pattern', `must be a string, a list of strings or null, got ${JSON.stringify(c.layers_pattern)}`);
  // PEFT's __post_init__ rules
  if (typeof c.target_modules === 'string' && lt !== null) throw bad('layers_to_transform', 'cannot be used when target_modules is a regex string');
  if (typeof c.target_modules === 'string' && c.layers_pattern !== null) throw bad('layers_pattern', 'cannot be used when target_modules is a regex string');
  if (c.layers_pattern && lt === null) throw bad('layers_pattern', 'needs layers_to_transform');
  for (const k of ['rank_pattern', 'alpha_pattern'] as const) {
    const v = c[k] ?? {};
    if (typeof v !== 'object' || Array.isArray(v)) throw bad(k, `must be an object of {pattern: number}, got ${JSON.stringify(v)}`);
    for (const [p, n] of Object.entries(v)) {
      if (k === 'rank_pattern' ? !(Number.isInteger(n) && n > 0) : !f32(n)) throw bad(`${k}.${p}`, `must be a ${k === 'rank_pattern' ? 'positive integer' : 'number within float32\'s range'}, got ${JSON.stringify(n)}`);
      try {
        new RegExp(p);
      } catch (e) {
        throw bad(`${k}.${p}`, `not a valid regex (${(e as Error).message})`);
      }
    }
    c[k] = { ...v };
  }
  if (Array.isArray(c.target_modules)) c.target_modules = [...new Set(c.target_modules)];
  if (Array.isArray(c.exclude_modules)) c.exclude_modules = [...new Set(c.exclude_modules)];
  return Object.fromEntries(Object.keys(LORA_DEFAULTS).map((k) => [k, c[k]])) as unknown as LoraConfig;
}

/** Checks init_lora_weights for a new adapter (a file's value is informational: its weights are loaded). */
export function checkInit(c: LoraConfig): void {
  const init = c.init_lora_weights;
  if (typeof init === 'boolean' || init === 'gaussian') return;
  throw new KilnError('argument', 'LoraConfig', `init_lora_weights: ${JSON.stringify(init)} is not supported by kiln (true, false or "gaussian")`);
}

/** The scaling of an adapter's update: alpha / r, or alpha / sqrt(r) (rsLoRA). */
export const loraScaling = (alpha: number, r: number, rslora: boolean): number => (rslora ? alpha / Math.sqrt(r) : alpha / r);

/** PEFT's get_pattern_key: the first pattern matching the end of the module name (at a dot). */
export function patternKey(patterns: Record<string, number>, name: string): string | null {
  for (const p of Object.keys(patterns)) if (new RegExp(`^(.*\\.)?(${p})$`).test(name)) return p;
  return null;
}

/** The adapter config as PEFT writes adapter_config.json: every field, keys sorted, indent 2. */
export function configJson(c: LoraConfig, extra: Record<string, unknown> = {}): string {
  const all: Record<string, unknown> = { ...PEFT_OTHER_DEFAULTS, ...c, ...extra };
  const sorted = Object.fromEntries(Object.keys(all).sort().map((k) => [k, all[k]]));
  return JSON.stringify(sorted, null, 2);
}
