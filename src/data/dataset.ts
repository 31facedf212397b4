// Training text into tokenized documents: plain text (documents separated by blank lines), JSONL
// rows of {"text"} or {"messages"} (chat rows rendered through the chat template, with the loss
// on assistant turns only), a deterministic shuffle and a train/validation split.
import { KilnError } from '../core/errors.js';
import type { ChatMessage } from '../tokenizers/chat.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';

export type Row = { text: string } | { messages: ChatMessage[] };

export interface TokenizedDocument {
  ids: number[];
  /** 1 where the loss is taken; null: everywhere. */
  lossMask: number[] | null;
}

/** Parses a dataset file: JSONL when `name` ends in .jsonl/.json or every line is a JSON object, else plain text. */
export function parseRows(text: string, name = 'dataset'): Row[] {
  const jsonl = /\.jsonl?$/i.test(name) || (!/\.txt$/i.test(name) && text.trimStart().startsWith('{') && text.split('\n').every((l) => !l.trim() || l.trim().startsWith('{')));
  if (!jsonl) return text.split(/\r?\n(?:[ \t]*\r?\n)+/).map((t) => t.trim()).filter((t) => t.length > 0).map((t) => ({ text: t }));
  const rows: Row[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const where = `${name}:${i + 1}`;
    let j: unknown;
    try {
      j = JSON.parse(line);
    } catch (e) {
      throw new KilnError('config', 'parseRows', `${where}: not valid JSON (${(e as Error).message})`);
    }
    const o = j as Record<string, unknown>;
    if (o && typeof o.text === 'string') rows.push({ text: o.text });
    else if (o && Array.isArray(o.messages)) {
      o.messages.forEach((m: unknown, k: number) => {
        const mm = m as Record<string, unknown>;
        if (!mm || typeof mm.role !== 'string' || (typeof mm.content !== 'string' && !Array.isArray(mm.content)))
          throw new KilnError('config', 'parseRows', `${where}: messages[${k}] must have a string role and content`);
      });
      rows.push({ messages: o.messages as ChatMessage[] });
    } else throw new KilnError('config', 'parseRows', `${where}: expected {"text": "..."} or {"messages": [...]}`);
  });
  return rows;
}

/**
 * The character ranges of the assistant turns in the rendered conversation: each reply's text
 * (found after the conversation rendered up to it, with the generation prompt) plus the special
 * token that closes the turn (<|eot_id|>, <|im_end|>, <end_of_turn>...).
 */
function assistantSpans(tok: Tokenizer, messages: ChatMessage[], full: string, where: string): [number, number][] {
  const spans: [number, number][] = [];
  const closers = tok.addedTokens.filter((t) => t.special).map((t) => t.content).sort((a, b) => b.length - a.length);
  let cursor = 0;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i];
    if (m.role !== 'assistant') continue;
    const before = i === 0 ? '' : tok.applyChatTemplate(messages.slice(0, i), { addGenerationPrompt: true });
    if (full.startsWith(before)) cursor = Math.max(cursor, before.length);
    const content = (typeof m.content === 'string' ? m.content : '').trim();
    const start = full.indexOf(content, cursor);
    if (start < 0) throw new KilnError('argument', 'tokenizeRows', `${where}: messages[${i}]'s text does not appear in the rendered conversation, so its loss cannot be located`);
    let end = start + content.length;
    const closer = closers.find((c) => full.startsWith(c, end));
    if (closer) end += closer.length;
    spans.push([start, end]);
    cursor = end;
  }
  return spans;
}

export interface TokenizeOptions {
  /** Append the EOS token (tokenizer_config.json's eos_token) to text documents; default true. */
  appendEos?: boolean;
  /** Add the post-processor's special tokens (BOS...) to text documents; default true. */
  addSpecialTokens?: boolean;
}

export function tokenizeRows(tok: Tokenizer, rows: Row[], opts: TokenizeOptions = {}, name = 'dataset'): TokenizedDocument[] {
  const eosName = typeof tok.config?.eos_token === 'string' ? tok.config.eos_token : tok.config?.eos_token?.content;
  const eos = eosName !== undefined ? tok.tokenToId(eosName) : undefined;
  return rows.map((row, i) => {
    if ('text' in row) {
      const ids = tok.encodeIds(row.text, { addSpecialTokens: opts.addSpecialTokens ?? true });
      if ((opts.appendEos ?? true) && eos !== undefined && ids[ids.length - 1] !== eos) ids.push(eos);
      return { ids, lossMask: null };
    }
    const full = tok.applyChatTemplate(row.messages);
    const spans = assistantSpans(tok, row.messages, full, `${name} row ${i + 1}`);
    const enc = tok.encode(full, { addSpecialTokens: false });
    const lossMask = enc.offsets.map(([a, b]) => (spans.some(([s, e]) => a < e && b > s) ? 1 : 0));
    return { ids: enc.ids, lossMask };
  });
}

/** A seeded shuffle (the same seed, the same order, on every machine). */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = items.slice();
  let s = seed >>> 0 || 0x9e3779b9;
  const next = (): number => {
    // xorshift32
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Shuffles with `seed`, then holds out `validation` (a fraction < 1, or a count) of the items. */
export function trainValidationSplit<T>(items: readonly T[], validation: number, seed = 0): { train: T[]; validation: T[] } {
  if (!(validation >= 0)) throw new KilnError('argument', 'trainValidationSplit', `validation must be >= 0, got ${validation}`);
  const all = shuffled(items, seed);
  const k = validation < 1 ? Math.round(all.length * validation) : Math.min(all.length, Math.floor(validation));
  return { validation: all.slice(0, k), train: all.slice(k) };
}
