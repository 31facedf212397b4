// The CLI's flags: one declarative table per command, used to parse, to validate, to print
// --help and to suggest the flag that was meant.
import { KilnError } from '../core/errors.js';

export type FlagKind =
  | 'string'
  | 'int' // a decimal integer >= min (default 0): no 0x, 1e3, or sign
  | 'float'
  | 'bool' // present or not; takes no value
  | 'list' // the values up to the next flag (--files a b c)
  | 'ids' // token ids: decimal integers separated by commas or spaces, none empty
  | 'floats' // finite numbers separated by commas, none empty
  | 'size'; // bytes: a decimal integer with an optional K, M or G (binary) suffix

export interface FlagSpec {
  name: string; // without the dashes, e.g. 'max-tokens'
  kind: FlagKind;
  help: string;
  /** How the value reads in the usage line (FILE, N, S, ...). */
  value?: string;
  required?: boolean;
  choices?: readonly string[];
  min?: number;
  default?: string | number | boolean;
}

export interface CommandSpec {
  name: string;
  summary: string;
  flags: FlagSpec[];
  /** Positional arguments, in order, each required (kiln adapter info DIR): parsed into flags by camelCase name. */
  args?: { name: string; help: string }[];
  /** Runs with the parsed flags (camelCase keys: --max-tokens -> maxTokens). */
  run(o: Flags, op: string): Promise<number> | number;
}

/** Parsed flags by camelCase name, each of its kind (bool flags false when absent); the table guarantees the types. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Flags = any;

const camel = (s: string): string => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Edit distance (insertions, deletions, substitutions), for did-you-mean. */
export function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** The closest of `names` within 2 edits (or having `word` as a prefix, if only one does), or null. */
export function closest(word: string, names: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = 3;
  for (const n of names) {
    const d = levenshtein(word, n);
    if (d < bestD) [best, bestD] = [n, d];
  }
  if (best) return best;
  const prefixed = names.filter((n) => n.startsWith(word));
  return word.length >= 3 && prefixed.length === 1 ? prefixed[0] : null;
}

const SIZE_UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 };

/** A flag's value as its kind reads it; a KilnError naming the flag otherwise. */
export function parseValue(f: FlagSpec, v: string, op: string): string | number | number[] {
  const bad = (what: string): KilnError => new KilnError('argument', op, `--${f.name} ${what}, got ${JSON.stringify(v)}`);
  switch (f.kind) {
    case 'int': {
      const min = f.min ?? 0;
      if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) < min) throw bad(`must be a decimal integer >= ${min}`);
      return Number(v);
    }
    case 'float':
      if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(v) || !Number.isFinite(Number(v))) throw bad('must be a number');
      return Number(v);
    case 'size': {
      const m = /^(\d+)([KMG]?)i?B?$/i.exec(v);
      const n = m ? Number(m[1]) * SIZE_UNITS[m[2].toUpperCase()] : NaN;
      if (!Number.isSafeInteger(n) || n < 1) throw bad('must be a byte count such as 1048576, 512M or 4G');
      return n;
    }
    case 'ids': {
      const parts = v.trim().split(/\s*,\s*|\s+/);
      const i = parts.findIndex((p) => !/^\d+$/.test(p) || Number(p) > 0x7fffffff);
      if (!v.trim()) throw bad('is empty');
      if (i >= 0) throw new KilnError('argument', op, `--${f.name}: entry ${i} of ${JSON.stringify(v)} is ${JSON.stringify(parts[i])}, not a token id (a decimal integer)`);
      return parts.map(Number);
    }
    case 'floats': {
      const parts = v.split(',').map((p) => p.trim());
      const i = parts.findIndex((p) => !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(p) || !Number.isFinite(Number(p)));
      if (i >= 0) throw new KilnError('argument', op, `--${f.name}: entry ${i} of ${JSON.stringify(v)} is ${JSON.stringify(parts[i])}, not a number`);
      return parts.map(Number);
    }
    default:
      if (f.choices && !f.choices.includes(v)) throw bad(`must be ${f.choices.slice(0, -1).join(', ')} or ${f.choices[f.choices.length - 1]}`);
      return v;
  }
}

/** Parses `args` against a command's table: every flag known, every value of its kind, required ones given. */
export function parseFlags(cmd: CommandSpec, args: string[], op: string): Flags {
  const byName = new Map(cmd.flags.map((f) => [f.name, f]));
  const out: Flags = {};
  const positional = [...(cmd.args ?? [])];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('--') && positional.length) {
      out[camel(positional.shift()!.name)] = a;
      continue;
    }
    if (!a.startsWith('--')) throw new KilnError('argument', op, `unexpected argument ${JSON.stringify(a)} (flags start with --; see kiln ${cmd.name} --help)`);
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    const f = byName.get(name);
    if (!f) {
      const near = closest(name, [...byName.keys()]);
      throw new KilnError('argument', op, `unknown flag --${name}${near ? `; did you mean --${near}?` : ''} (kiln ${cmd.name} --help lists its flags)`);
    }
    const key = camel(f.name);
    if (out[key] !== undefined) throw new KilnError('argument', op, `--${f.name} is given twice`);
    if (f.kind === 'bool') {
      if (eq >= 0) throw new KilnError('argument', op, `--${f.name} takes no value`);
      out[key] = true;
      continue;
    }
    if (f.kind === 'list') {
      const vs: string[] = eq >= 0 ? [a.slice(eq + 1)] : [];
      while (i + 1 < args.length && !args[i + 1].startsWith('--')) vs.push(args[++i]);
      if (!vs.length) throw new KilnError('argument', op, `--${f.name} needs at least one value`);
      out[key] = vs;
      continue;
    }
    let v: string | undefined;
    if (eq >= 0) v = a.slice(eq + 1);
    else {
      v = args[i + 1];
      if (v === undefined || v.startsWith('--')) throw new KilnError('argument', op, `--${f.name} needs a value${f.value ? ` (${f.value})` : ''}`);
      i++;
    }
    out[key] = parseValue(f, v, op);
  }
  if (positional.length) throw new KilnError('argument', op, `${positional[0].name.toUpperCase()} is required: ${positional[0].help} (kiln ${cmd.name} --help)`);
  for (const f of cmd.flags) {
    const key = camel(f.name);
    if (out[key] !== undefined) continue;
    if (f.required) throw new KilnError('argument', op, `--${f.name} is required (kiln ${cmd.name} --help)`);
    if (f.default !== undefined) out[key] = f.default;
    else if (f.kind === 'bool') out[key] = false;
  }
  return out;
}

const flagUsage = (f: FlagSpec): string => `--${f.name}${f.kind === 'bool' ? '' : ` ${f.value ?? (f.choices ? f.choices.join('|') : f.kind === 'int' ? 'N' : 'S')}`}${f.kind === 'list' ? '...' : ''}`;

/** One line: the command and its required flags. */
export function synopsis(cmd: CommandSpec): string {
  const req = cmd.flags.filter((f) => f.required).map(flagUsage);
  return [`kiln ${cmd.name}`, ...(cmd.args ?? []).map((a) => a.name.toUpperCase()), ...req, ...(cmd.flags.some((f) => !f.required) ? ['[flags]'] : [])].join(' ');
}

/** `kiln <command> --help`: the synopsis, the summary, each flag with its help and default. */
export function commandHelp(cmd: CommandSpec): string {
  const rows = (cmd.args ?? []).map((a) => [`  ${a.name.toUpperCase()}`, `${a.help} (required)`]).concat(cmd.flags.map((f) => [`  ${flagUsage(f)}`, `${f.help}${f.default !== undefined && f.kind !== 'bool' ? ` (default ${f.default})` : ''}${f.required ? ' (required)' : ''}`]));
  const w = Math.min(34, Math.max(...rows.map((r) => r[0].length)) + 2);
  const lines = rows.map(([a, b]) => (a.length + 2 > w ? `${a}\n${' '.repeat(w)}${b}` : a.padEnd(w) + b));
  return `usage: ${synopsis(cmd)}\n\n${cmd.summary}\n\nflags:\n${lines.join('\n')}\n`;
}
