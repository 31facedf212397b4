// `kiln tokenize | detokenize | train-tokenizer | pack`: the tokenizer and the packer from the shell.
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KilnError } from '../core/errors.js';
import { parseRows, tokenizeRows, trainValidationSplit } from '../data/dataset.js';
import { packSequences, type PackStrategy } from '../data/packing.js';
import { writeSafetensors } from '../models/loaders/safetensors.js';
import { fileSource } from '../models/sources.js';
import { GGUFFile } from '../models/loaders/gguf.js';
import { tokenizerFromGGUF } from '../models/load.js';
import { readInput } from './files.js';
import { Tokenizer, trainBpe } from '../tokenizers/index.js';

/**
 * --tokenizer: a tokenizer.json path, a folder holding tokenizer.json (and tokenizer_config.json),
 * or a .gguf file (its tokenizer.ggml.* metadata; the tensors are not read).
 */
export async function loadTokenizer(path: string, op: string): Promise<Tokenizer> {
  if (!existsSync(path)) throw new KilnError('argument', op, `--tokenizer ${path}: no such file or folder`);
  if (/\.gguf$/i.test(path) && statSync(path).isFile()) {
    const src = await fileSource(path);
    try {
      const tok = tokenizerFromGGUF((await GGUFFile.open(src)).metadata, path);
      if (!tok) throw new KilnError('config', op, `${path} has no tokenizer (no tokenizer.ggml.model)`);
      return tok;
    } finally {
      await src.close?.();
    }
  }
  let json = path;
  let config: string | null = null;
  if (statSync(path).isDirectory()) {
    json = join(path, 'tokenizer.json');
    if (!existsSync(json)) throw new KilnError('argument', op, `${path} has no tokenizer.json`);
    config = join(path, 'tokenizer_config.json');
  } else config = join(path, '..', 'tokenizer_config.json');
  try {
    return Tokenizer.fromString(readInput(json, op), config && existsSync(config) ? readInput(config, op) : null);
  } catch (e) {
    if (e instanceof KilnError && e.op !== op) throw new KilnError(e.code, op, `${json}: ${e.message}`);
    throw e;
  }
}

export async function tokenizeCmd(o: { tokenizer: string; text?: string; file?: string; lines: boolean; json: boolean; addSpecial: boolean; noSpecial: boolean }): Promise<number> {
  const op = 'kiln tokenize';
  if ((o.text === undefined) === (o.file === undefined)) throw new KilnError('argument', op, 'give exactly one of --text or --file');
  const tok = await loadTokenizer(o.tokenizer, op);
  const input = o.text ?? readInput(o.file!, op);
  const print = (ids: number[]): void => console.log(o.json ? JSON.stringify(ids) : ids.join(' '));
  if (o.lines) {
    const lines = input.split('\n');
    if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
    for (const line of lines) print(tok.encodeIds(line.replace(/\r$/, ''), { addSpecialTokens: o.addSpecial }));
  } else print(tok.encodeIds(input, { addSpecialTokens: !o.noSpecial }));
  return 0;
}

export async function detokenizeCmd(o: { tokenizer: string; ids: number[]; skipSpecial: boolean }): Promise<number> {
  const op = 'kiln detokenize';
  const ids = o.ids;
  const tok = await loadTokenizer(o.tokenizer, op);
  const bad = ids.find((id) => tok.idToToken(id) === undefined);
  if (bad !== undefined) throw new KilnError('argument', op, `--ids: ${bad} is not in the vocab (size ${tok.vocabSize})`);
  process.stdout.write(tok.decode(ids, { skipSpecialTokens: o.skipSpecial }) + '\n');
  return 0;
}

export function trainTokenizerCmd(o: { files: string[]; vocabSize: number; out: string; minFrequency?: number; special: string[]; pattern?: string }): number {
  const op = 'kiln train-tokenizer';
  if (!o.files.length) throw new KilnError('argument', op, '--files needs at least one file');
  const texts: string[] = [];
  for (const f of o.files) texts.push(...readInput(f, op).split('\n'));
  const t0 = performance.now();
  const json = trainBpe(texts, { vocabSize: o.vocabSize, minFrequency: o.minFrequency, specialTokens: o.special, pattern: o.pattern as 'gpt2' | 'llama3' | undefined });
  writeFileSync(o.out, JSON.stringify(json, null, 1));
  const merges = json.model.merges.length;
  console.log(`wrote ${o.out}: ${Object.keys(json.model.vocab).length} tokens (${merges} merges) from ${texts.length} lines in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  return 0;
}

export async function packCmd(o: { tokenizer: string; file: string; seqLen: number; out: string; strategy: string; validation: number; seed: number }): Promise<number> {
  const op = 'kiln pack';
  const tok = await loadTokenizer(o.tokenizer, op);
  const rows = parseRows(readInput(o.file, op), o.file);
  const docs = tokenizeRows(tok, rows, {}, o.file);
  const split = trainValidationSplit(docs, o.validation, o.seed);
  mkdirSync(o.out, { recursive: true });
  const report: Record<string, unknown> = { tokenizer: o.tokenizer, source: o.file, seq_len: o.seqLen, strategy: o.strategy, seed: o.seed };
  for (const [name, part] of Object.entries(split)) {
    if (!part.length) continue;
    const packed = packSequences(part.map((d) => d.ids), { seqLen: o.seqLen, strategy: o.strategy as PackStrategy, padId: tok.tokenToId(String(tok.config?.pad_token ?? '')) ?? 0 }, part.map((d) => d.lossMask));
    const shape = [packed.rows, o.seqLen];
    const file = join(o.out, `${name}.safetensors`);
    writeFileSync(file, writeSafetensors({
      input_ids: { dtype: 'I32', shape, data: packed.inputIds },
      labels: { dtype: 'I32', shape, data: packed.labels },
      position_ids: { dtype: 'I32', shape, data: packed.positionIds },
      document_ids: { dtype: 'I32', shape, data: packed.documentIds },
    }, { format: 'pt', seq_len: String(o.seqLen), strategy: o.strategy }));
    report[name] = { documents: part.length, tokens: packed.tokens, rows: packed.rows, efficiency: packed.efficiency };
    console.log(`${name}: ${part.length} documents, ${packed.tokens} tokens -> ${packed.rows} rows of ${o.seqLen}; packing efficiency ${(100 * packed.efficiency).toFixed(2)}% (${file})`);
  }
  writeFileSync(join(o.out, 'packing.json'), JSON.stringify(report, null, 2) + '\n');
  return 0;
}
