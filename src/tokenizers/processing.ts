// Post-processors (special tokens around sequences) and decoders (tokens back to text), built from
// tokenizer.json with the JSON path in every error.
import { configError, pattern, type Json } from './components.js';
import { CHAR_TO_BYTE } from './model.js';
import { NStr, replaceMatches } from './normalized.js';

// ---------------------------------------------------------------- post-processors

/** One encoded sequence as the post-processor sees it. */
export interface Seq {
  ids: number[];
  typeIds: number[];
  offsets: [number, number][];
  special: number[]; // 1 for tokens the processor added
  /** Which input sequence (0 or 1) each token came from, null for added ones. */
  seqIds: (number | null)[];
}

export type PostProcessor = (a: Seq, b: Seq | null) => Seq;

function specialSeq(ids: number[], typeId: number): Seq {
  return { ids, typeIds: ids.map(() => typeId), offsets: ids.map(() => [0, 0]), special: ids.map(() => 1), seqIds: ids.map(() => null) };
}
function withType(s: Seq, typeId: number, seq: number): Seq {
  return { ...s, typeIds: s.ids.map(() => typeId), seqIds: s.ids.map(() => seq) };
}
export function concatSeqs(parts: Seq[]): Seq {
  const out: Seq = { ids: [], typeIds: [], offsets: [], special: [], seqIds: [] };
  for (const p of parts) {
    out.ids.push(...p.ids);
    out.typeIds.push(...p.typeIds);
    out.offsets.push(...p.offsets);
    out.special.push(...p.special);
    out.seqIds.push(...p.seqIds);
  }
  return out;
}

function pairOf(j: Json, path: string): [string, number] {
  if (!Array.isArray(j) || typeof j[0] !== 'string' || !Number.isSafeInteger(j[1]) || j[1] < 0) throw configError(path, `expected [token, id], got ${JSON.stringify(j)}`);
  return [j[0], j[1]];
}

export function buildPostProcessor(j: Json, path: string): PostProcessor | null {
  if (j === null || j === undefined) return null;
  const t = j.type;
  switch (t) {
    case 'TemplateProcessing': {
      const special = new Map<string, number[]>();
      for (const [k, v] of Object.entries(j.special_tokens ?? {}) as [string, Json][]) {
        if (!Array.isArray(v?.ids) || !v.ids.every((id: unknown) => Number.isSafeInteger(id) && (id as number) >= 0))
          throw configError(`${path}.special_tokens.${k}.ids`, `expected an array of token ids (integers >= 0), got ${JSON.stringify(v?.ids)}`);
        special.set(k, v.ids);
      }
      const parse = (tpl: Json, where: string): ((a: Seq, b: Seq | null) => Seq) => {
        if (!Array.isArray(tpl)) throw configError(where, `expected a template array, got ${JSON.stringify(tpl)}`);
        const steps = tpl.map((p: Json, i: number) => {
          if (p.SpecialToken) {
            const ids = special.get(p.SpecialToken.id);
            if (!ids) throw configError(`${where}[${i}].SpecialToken.id`, `'${p.SpecialToken.id}' is not in special_tokens`);
            const type = p.SpecialToken.type_id ?? 0;
            return () => specialSeq(ids, type);
          }
          if (p.Sequence) {
            const which = p.Sequence.id;
            if (which !== 'A' && which !== 'B') throw configError(`${where}[${i}].Sequence.id`, `expected A or B, got ${JSON.stringify(which)}`);
            const type = p.Sequence.type_id ?? 0;
            return (a: Seq, b: Seq | null) => (which === 'A' ? withType(a, type, 0) : b ? withType(b, type, 1) : specialSeq([], 0));
          }
          throw configError(`${where}[${i}]`, `expected SpecialToken or Sequence, got ${JSON.stringify(p)}`);
        });
        return (a, b) => concatSeqs(steps.map((f: (a: Seq, b: Seq | null) => Seq) => f(a, b)));
      };
      const single = parse(j.single, `${path}.single`);
      const pair = j.pair ? parse(j.pair, `${path}.pair`) : null;
      return (a, b) => (b && pair ? pair(a, b) : single(a, b));
    }
    case 'BertProcessing':
    case 'RobertaProcessing': {
      const [, sep] = pairOf(j.sep, `${path}.sep`);
      const [, cls] = pairOf(j.cls, `${path}.cls`);
      const roberta = t === 'RobertaProcessing';
      return (a, b) => {
        const parts = [specialSeq([cls], 0), withType(a, 0, 0), specialSeq([sep], 0)];
        if (b) {
          if (roberta) parts.push(specialSeq([sep], 0), withType(b, 0, 1), specialSeq([sep], 0));
          else parts.push(withType(b, 1, 1), specialSeq([sep], 1));
        }
        return concatSeqs(parts);
      };
    }
    case 'ByteLevel':
      return (a, b) => (b ? concatSeqs([withType(a, 0, 0), withType(b, 1, 1)]) : a);
    case 'Sequence': {
      const ps = (j.processors ?? []).map((p: Json, i: number) => buildPostProcessor(p, `${path}.processors[${i}]`)).filter(Boolean) as PostProcessor[];
      // Like the reference, only the processors that add tokens change ids; apply them in order.
      return (a, b) => ps.reduce<Seq>((acc, p, i) => (i === 0 ? p(a, b) : p(acc, null)), a);
    }
    default:
      throw configError(`${path}.type`, `unsupported post-processor '${t}' (supported: TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence)`);
  }
}

// ---------------------------------------------------------------- decoders

export type Decoder = (tokens: string[]) => string[];

const utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
const utf8Enc = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function wordPieceCleanup(s: string): string {
  return s
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(' do not', " don't")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

export function buildDecoder(j: Json, path: string): Decoder | null {
  if (j === null || j === undefined) return null;
  const t = j.type;
  switch (t) {
    case 'Sequence': {
      const ds = (j.decoders ?? []).map((d: Json, i: number) => buildDecoder(d, `${path}.decoders[${i}]`)).filter(Boolean) as Decoder[];
      return (tokens) => ds.reduce((acc, d) => d(acc), tokens);
    }
    case 'ByteLevel':
      return (tokens) => {
        const bytes: number[] = [];
        for (const tok of tokens) {
          const start = bytes.length;
          let ok = true;
          for (const c of tok) {
            const b = CHAR_TO_BYTE.get(c);
            if (b === undefined) {
              ok = false;
              break;
            }
            bytes.push(b);
          }
          if (!ok) {
            bytes.length = start;
            for (const b of utf8Enc.encode(tok)) bytes.push(b);
          }
        }
        return [utf8.decode(new Uint8Array(bytes))];
      };
    case 'Metaspace': {
      const rep = j.replacement ?? '▁';
      const scheme = j.prepend_scheme ?? (j.add_prefix_space === false ? 'never' : 'always');
      return (tokens) =>
        tokens.map((tok, i) => {
          let out = '';
          for (const c of tok) out += c === rep ? (i === 0 && scheme !== 'never' ? '' : ' ') : c;
          return out;
        });
    }
    case 'ByteFallback':
      return (tokens) => {
        const out: string[] = [];
        let pending: number[] = [];
        const flush = (): void => {
          if (!pending.length) return;
          try {
            out.push(utf8Strict.decode(new Uint8Array(pending)));
          } catch {
            for (let i = 0; i < pending.length; i++) out.push('�');
          }
          pending = [];
        };
        for (const tok of tokens) {
          const m = tok.length === 6 && tok.startsWith('<0x') && tok.endsWith('>') ? /^[0-9a-fA-F]{2}$/.test(tok.slice(3, 5)) : false;
          if (m) pending.push(parseInt(tok.slice(3, 5), 16));
          else {
            flush();
            out.push(tok);
          }
        }
        flush();
        return out;
      };
    case 'Fuse':
      return (tokens) => [tokens.join('')];
    case 'Strip': {
      const content = j.content ?? ' ';
      const start = j.start ?? 0;
      const stop = j.stop ?? 0;
      return (tokens) =>
        tokens.map((tok) => {
          const chars = Array.from(tok);
          let a = 0;
          for (let i = 0; i < Math.min(start, chars.length) && chars[i] === content; i++) a = i + 1;
          let b = chars.length;
          for (let i = 0; i < stop && chars.length - i - 1 >= 0 && chars[chars.length - i - 1] === content; i++) b = chars.length - i - 1;
          return chars.slice(a, Math.max(a, b)).join('');
        });
    }
    case 'Replace': {
      const re = pattern(j.pattern, `${path}.pattern`);
      const content = j.content ?? '';
      return (tokens) => tokens.map((tok) => replaceMatches(NStr.of(tok), re, content).s);
    }
    case 'WordPiece': {
      const prefix = j.prefix ?? '##';
      const cleanup = j.cleanup ?? true;
      return (tokens) =>
        tokens.map((tok, i) => {
          if (i !== 0) tok = tok.startsWith(prefix) ? tok.slice(prefix.length) : ` ${tok}`;
          return cleanup ? wordPieceCleanup(tok) : tok;
        });
    }
    case 'BPEDecoder': {
      const suffix = j.suffix ?? '</w>';
      return (tokens) => tokens.map((tok, i) => tok.replaceAll(suffix, i === tokens.length - 1 ? '' : ' '));
    }
    default:
      throw configError(`${path}.type`, `unsupported decoder '${t}' (supported: Sequence, ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, WordPiece, BPEDecoder)`);
  }
}

// ---------------------------------------------------------------- truncation and padding

export interface TruncationOptions {
  maxLength: number;
  strategy?: 'longest_first' | 'only_first' | 'only_second';
  direction?: 'right' | 'left';
  stride?: number;
}

export interface PaddingOptions {
  /** 'longest' pads to the longest in the batch; a number pads to that length. */
  length?: 'longest' | number;
  direction?: 'right' | 'left';
  padId?: number;
  padTypeId?: number;
  padToken?: string;
  padToMultipleOf?: number;
}

const count = (v: unknown, path: string, min = 0): number => {
  if (!Number.isSafeInteger(v) || (v as number) < min) throw configError(path, `expected an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v as number;
};
function oneOf<T extends string>(v: unknown, path: string, names: Record<string, T>, dflt: string): T {
  const k = v ?? dflt;
  if (typeof k !== 'string' || !(k in names)) throw configError(path, `expected one of ${Object.keys(names).join(', ')}, got ${JSON.stringify(v)}`);
  return names[k];
}

/** tokenizer.json's `truncation` (null: none), every field checked as the reference's serde would. */
export function parseTruncation(j: Json, path: string): TruncationOptions | null {
  if (j === null || j === undefined) return null;
  if (typeof j !== 'object' || Array.isArray(j)) throw configError(path, `expected an object or null, got ${JSON.stringify(j)}`);
  return {
    maxLength: count(j.max_length, `${path}.max_length`),
    strategy: oneOf(j.strategy, `${path}.strategy`, { LongestFirst: 'longest_first', OnlyFirst: 'only_first', OnlySecond: 'only_second' } as const, 'LongestFirst'),
    direction: oneOf(j.direction, `${path}.direction`, { Right: 'right', Left: 'left' } as const, 'Right'),
    stride: count(j.stride ?? 0, `${path}.stride`),
  };
}

/** tokenizer.json's `padding` (null: none): strategy "BatchLongest" or {"Fixed": n}. */
export function parsePadding(j: Json, path: string): PaddingOptions | null {
  if (j === null || j === undefined) return null;
  if (typeof j !== 'object' || Array.isArray(j)) throw configError(path, `expected an object or null, got ${JSON.stringify(j)}`);
  const s = j.strategy ?? 'BatchLongest';
  let length: 'longest' | number;
  if (s === 'BatchLongest') length = 'longest';
  else if (s && typeof s === 'object' && 'Fixed' in s) length = count(s.Fixed, `${path}.strategy.Fixed`);
  else throw configError(`${path}.strategy`, `expected "BatchLongest" or {"Fixed": n}, got ${JSON.stringify(s)}`);
  const multiple = j.pad_to_multiple_of;
  if (j.pad_token !== undefined && typeof j.pad_token !== 'string') throw configError(`${path}.pad_token`, `expected a string, got ${JSON.stringify(j.pad_token)}`);
  return {
    length,
    direction: oneOf(j.direction, `${path}.direction`, { Right: 'right', Left: 'left' } as const, 'Right'),
    padId: count(j.pad_id ?? 0, `${path}.pad_id`),
    padTypeId: count(j.pad_type_id ?? 0, `${path}.pad_type_id`),
    padToken: j.pad_token ?? '[PAD]',
    padToMultipleOf: multiple === null || multiple === undefined ? undefined : count(multiple, `${path}.pad_to_multiple_of`, 1),
  };
}
