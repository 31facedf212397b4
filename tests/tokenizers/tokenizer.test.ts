// Tokenizer behaviour beyond plain ids, each checked against the Rust reference: truncation with
// stride, padding, added-token flags, streaming decode, pathological input, and typed errors for
// malformed tokenizer.json files.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { KilnError } from '../../src/core/errors.js';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { tokenizerFiles } from './fixtures.js';

const tk = createRequire(import.meta.url)('@anush008/tokenizers');
const load = (name: Parameters<typeof tokenizerFiles>[0]): { kiln: Tokenizer; json: string; path: string } => {
  const f = tokenizerFiles(name);
  const json = readFileSync(f.json, 'utf8');
  return { kiln: Tokenizer.fromString(json, f.config ? readFileSync(f.config, 'utf8') : null), json, path: f.json };
};

describe('encode edge cases', () => {
  it('an empty input encodes to an empty list (plus the template tokens)', async () => {
    for (const name of ['llama3', 'llama2', 'bert', 't5'] as const) {
      const { kiln, path } = load(name);
      expect(kiln.encodeIds('', { addSpecialTokens: false })).toEqual([]);
      const ref = await tk.Tokenizer.fromFile(path).encode('', null, { addSpecialTokens: true });
      expect(kiln.encode('').ids).toEqual(ref.getIds());
    }
  });

  it('pathological input (1 MB of one character, 100k spaces, long unknown runs) matches the reference', { timeout: 120_000 }, async () => {
    const inputs = ['a'.repeat(1 << 20), ' '.repeat(100_000), '\t \n'.repeat(30_000), '😀'.repeat(50_000), 'ab'.repeat(200_000), '\u0301'.repeat(20_000)];
    for (const name of ['gemma3', 'llama3', 'bert', 't5', 'llama2'] as const) {
      const { kiln, path } = load(name);
      const nat = tk.Tokenizer.fromFile(path);
      for (const s of inputs) {
        const ids = kiln.encodeIds(s, { addSpecialTokens: false });
        const ref = (await nat.encode(s, null, { addSpecialTokens: false })).getIds();
        expect(ids.length, `${name} on ${s.length} x ${JSON.stringify(s.slice(0, 2))}`).toBe(ref.length);
        expect(ids).toEqual(ref);
      }
    }
  });

  it('lone surrogates become U+FFFD, as the reference reads them', async () => {
    const { kiln, path } = load('llama3');
    const nat = tk.Tokenizer.fromFile(path);
    for (const s of ['a\ud800b', '\udc00', 'x\ud83dy', '\ud83d\ude00\ud83d']) {
      expect(kiln.encodeIds(s, { addSpecialTokens: false })).toEqual((await nat.encode(s, null, { addSpecialTokens: false })).getIds());
      expect(kiln.encodeIds(s, { addSpecialTokens: false })).toEqual(kiln.encodeIds(s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd'), { addSpecialTokens: false }));
    }
  });
});

describe('added tokens', () => {
  it('lstrip, rstrip, single_word and normalized behave as the reference', async () => {
    const { json } = load('bert');
    const j = JSON.parse(json);
    const extra = [
      { content: '<mask>', lstrip: true, rstrip: false, single_word: false, normalized: false, special: true },
      { content: '<R>', lstrip: false, rstrip: true, single_word: false, normalized: false, special: false },
      { content: 'word', lstrip: false, rstrip: false, single_word: true, normalized: false, special: false },
      { content: 'Lower', lstrip: false, rstrip: false, single_word: false, normalized: true, special: false },
    ];
    let next = Object.keys(j.model.vocab).length;
    for (const e of extra) j.added_tokens.push({ id: next++, ...e });
    const kiln = new Tokenizer(j);
    const nat = tk.Tokenizer.fromString(JSON.stringify(j));
    for (const s of ['a   <mask> b', '<R>   x', 'a word b', 'swordfish word', 'words word.', 'the LOWER lower case', 'x<mask><mask>  <R>  y', '   <mask>']) {
      const r = await nat.encode(s, null, { addSpecialTokens: true });
      const k = kiln.encode(s);
      expect(k.ids, s).toEqual(r.getIds());
      expect(kiln.decode(k.ids, { skipSpecialTokens: true })).toBe(await nat.decode(k.ids, true));
    }
  });
});

describe('batch encoding', () => {
  it('truncation (with stride and overflow windows) and padding match the reference', async () => {
    const { kiln, path } = load('bert');
    const texts = ['Hello world, this is a longer sentence that will be truncated somewhere.', 'Short one.', 'Another text with quite a few words in it for the windows.'];
    for (const [maxLength, stride, direction] of [[8, 2, 'right'], [12, 0, 'right'], [10, 3, 'left']] as const) {
      const nat = tk.Tokenizer.fromFile(path);
      nat.setTruncation(maxLength, { stride, direction });
      nat.setPadding({ padId: 0, padToken: '[PAD]', direction: 'right' });
      const refs = await nat.encodeBatch(texts, { addSpecialTokens: true });
      const ours = kiln.encodeBatch(texts, { truncation: { maxLength, stride, direction }, padding: { padId: 0, padToken: '[PAD]' } });
      ours.forEach((o, i) => {
        expect(o.ids, `${maxLength}/${stride}/${direction} #${i}`).toEqual(refs[i].getIds());
        expect(o.attentionMask).toEqual(refs[i].getAttentionMask());
        expect(o.overflowing.map((x) => x.ids)).toEqual(refs[i].getOverflowing().map((x: { getIds(): number[] }) => x.getIds()));
      });
    }
  });

  it('pairs truncate longest-first', async () => {
    const { kiln, path } = load('bert');
    const nat = tk.Tokenizer.fromFile(path);
    nat.setTruncation(12);
    const r = await nat.encode('one two three four five six seven', 'alpha beta gamma', { addSpecialTokens: true });
    const k = kiln.encodeBatch(['one two three four five six seven'], { pairs: ['alpha beta gamma'], truncation: { maxLength: 12 } })[0];
    expect(k.ids).toEqual(r.getIds());
    expect(k.typeIds).toEqual(r.getTypeIds());
  });

  it('left padding and pad-to-multiple-of', () => {
    const { kiln } = load('llama3');
    const out = kiln.encodeBatch(['a b c d e', 'x'], { padding: { direction: 'left', padId: 7, padToMultipleOf: 8 }, addSpecialTokens: false });
    expect(out.map((e) => e.ids.length)).toEqual([8, 8]);
    expect(out[1].ids.slice(0, 7)).toEqual([7, 7, 7, 7, 7, 7, 7]);
    expect(out[1].attentionMask).toEqual([0, 0, 0, 0, 0, 0, 0, 1]);
    expect(out[1].ids[7]).toBe(kiln.encodeIds('x', { addSpecialTokens: false })[0]);
  });
});

describe('streaming decode', () => {
  it.each(['llama3', 'llama2', 'gemma3'] as const)('%s: pieces concatenate to decode(ids) and never end inside a character', (name) => {
    const { kiln } = load(name);
    const text = 'Hi 😀 東京 — naïve 👨‍👩‍👧 done. ĀÆ 🇫🇷 ok';
    const ids = kiln.encodeIds(text, { addSpecialTokens: false });
    const stream = kiln.decodeStream();
    let out = '';
    for (const id of ids) {
      const piece = stream.step(id);
      if (piece === null) continue;
      expect(piece.includes('\ufffd')).toBe(false);
      expect(/[\ud800-\udbff]$/.test(piece)).toBe(false);
      out += piece;
    }
    expect(out).toBe(kiln.decode(ids));
  });
});

describe('malformed tokenizer.json', () => {
  const gpt2 = readFileSync(tokenizerFiles('gpt2').json, 'utf8');
  const base = (): Record<string, unknown> => JSON.parse(gpt2);
  const err = (f: () => unknown): KilnError => {
    try {
      f();
    } catch (e) {
      return e as KilnError;
    }
    throw new Error('expected an error');
  };

  it('names the component and its JSON path', () => {
    const j1 = base();
    j1.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Precompiled', precompiled_charsmap: '' }] };
    const e1 = err(() => new Tokenizer(j1));
    expect(e1).toBeInstanceOf(KilnError);
    expect(e1.code).toBe('config');
    expect(e1.message).toContain('normalizer.normalizers[1].type');
    expect(e1.message).toContain('Precompiled');

    const j2 = base();
    (j2.model as { merges: unknown[] }).merges[5] = 'Ġ NOT_A_TOKEN';
    expect(err(() => new Tokenizer(j2)).message).toMatch(/model\.merges\[5\].*NOT_A_TOKEN/);

    const j3 = base();
    j3.pre_tokenizer = { type: 'Split', pattern: { Regex: '(?>atomic)' }, behavior: 'Isolated' };
    expect(err(() => new Tokenizer(j3)).message).toContain('pre_tokenizer.pattern.Regex');

    const j4 = base();
    j4.pre_tokenizer = { type: 'Split', pattern: { String: ' ' }, behavior: 'Sideways' };
    expect(err(() => new Tokenizer(j4)).message).toContain('pre_tokenizer.behavior');

    const j5 = base();
    (j5.model as { type: string }).type = 'Neural';
    expect(err(() => new Tokenizer(j5)).message).toContain("model.type: unsupported model 'Neural'");

    const j6 = base();
    j6.added_tokens = [{ id: -3, content: 'x' }];
    expect(err(() => new Tokenizer(j6)).message).toContain('added_tokens[0].id');

    expect(err(() => Tokenizer.fromString('{"model": ')).message).toContain('tokenizer.json: not valid JSON');
    expect(err(() => Tokenizer.fromString('{}')).message).toContain('tokenizer.json.model: missing');
  });

  it('truncation, padding, post-processor ids and delimiters are checked field by field', () => {
    const bad: [(j: Record<string, unknown>) => void, RegExp][] = [
      [(j) => (j.truncation = { max_length: 8, direction: 5 }), /truncation\.direction: expected one of Right, Left, got 5/],
      [(j) => (j.truncation = { max_length: -1 }), /truncation\.max_length: expected an integer >= 0, got -1/],
      [(j) => (j.truncation = { max_length: 8, strategy: 'Middle' }), /truncation\.strategy: expected one of LongestFirst/],
      [(j) => (j.truncation = { max_length: 8, stride: 1.5 }), /truncation\.stride/],
      [(j) => (j.padding = { strategy: { Fixed: -1 } }), /padding\.strategy\.Fixed: expected an integer >= 0, got -1/],
      [(j) => (j.padding = { strategy: 'Bogus' }), /padding\.strategy: expected "BatchLongest" or \{"Fixed": n\}/],
      [(j) => (j.padding = { pad_to_multiple_of: 0 }), /padding\.pad_to_multiple_of: expected an integer >= 1/],
      [(j) => (j.padding = []), /padding: expected an object or null/],
      [(j) => (j.post_processor = { type: 'TemplateProcessing', single: [{ SpecialToken: { id: 'X' } }, { Sequence: { id: 'A' } }], special_tokens: { X: { id: 'X', ids: [-1], tokens: ['X'] } } }), /post_processor\.special_tokens\.X\.ids: expected an array of token ids/],
      [(j) => (j.post_processor = { type: 'TemplateProcessing', single: [{ SpecialToken: { id: 'X' } }, { Sequence: { id: 'A' } }], special_tokens: { X: { id: 'X', ids: [1000000], tokens: ['X'] } } }), /post_processor: adds token id 1000000, past the vocabulary's \d+ ids/],
      [(j) => (j.post_processor = { type: 'BertProcessing', sep: ['[SEP]', -2], cls: ['[CLS]', 0] }), /post_processor\.sep: expected \[token, id\]/],
      [(j) => (j.pre_tokenizer = { type: 'CharDelimiterSplit', delimiter: 'ab' }), /pre_tokenizer\.delimiter: expected one character, got "ab"/],
    ];
    for (const [edit, msg] of bad) {
      const j = base();
      edit(j as Record<string, unknown>);
      const e = err(() => new Tokenizer(j));
      expect(e).toBeInstanceOf(KilnError);
      expect(e.code).toBe('config');
      expect(e.message).toMatch(msg);
    }
    // the fields the reference writes are still read: a fixed length pads to it, left truncation keeps the tail
    const ok = base();
    (ok as Record<string, unknown>).truncation = { max_length: 2, strategy: 'LongestFirst', direction: 'Left', stride: 0 };
    (ok as Record<string, unknown>).padding = { strategy: { Fixed: 4 }, direction: 'Right', pad_id: 0, pad_type_id: 0, pad_token: '!', pad_to_multiple_of: null };
    const t = new Tokenizer(ok);
    const all = t.encodeBatch(['Hello world, hello'], { truncation: null, padding: null })[0].ids;
    const [e] = t.encodeBatch(['Hello world, hello']);
    expect(e.ids).toEqual([...all.slice(-2), 0, 0]);
  });

  it('components nested 10,000 deep are refused at 64 levels with their JSON path, without recursion', { timeout: 10_000 }, () => {
    // as text: JSON.stringify itself recurses
    const nest = (list: string, leaf: object): string => `{"type":"Sequence","${list}":[`.repeat(10_000) + JSON.stringify(leaf) + ']}'.repeat(10_000);
    const cases: [string, string, object][] = [
      ['normalizer', 'normalizers', { type: 'NFC' }],
      ['pre_tokenizer', 'pretokenizers', { type: 'ByteLevel' }],
      ['post_processor', 'processors', { type: 'ByteLevel' }],
      ['decoder', 'decoders', { type: 'ByteLevel' }],
    ];
    for (const [key, list, leaf] of cases) {
      const text = gpt2.replace(/\}\s*$/, `,"${key}":${nest(list, leaf)}}`); // the last of a repeated key counts
      const e = err(() => Tokenizer.fromString(text));
      expect(e).toBeInstanceOf(KilnError);
      expect(e.code).toBe('config');
      expect(e.message).toContain(`${key}: nested more than 64 levels deep (at ${key}.${list}[0]`);
    }
    // 3 levels (what real files use) still load and encode as without the Sequence around them
    const j = base();
    j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Sequence', pretokenizers: [j.pre_tokenizer] }] };
    expect(new Tokenizer(j).encodeIds('Hello world')).toEqual(load('gpt2').kiln.encodeIds('Hello world'));
  });

  it('patterns JS would backtrack on exponentially run on the linear-time matcher: same ids as the reference, no hang', { timeout: 20_000 }, async () => {
    // JS RegExp takes exponential time on these: (a+)+$ over 41 a's and a b would run for minutes
    const evil = ['(a+)+$', '(a|a)+$', '(?:\\s*x?)+y', '((a+)?)+b', '(a{1,9}){2,}', '(?:ab|a)+c'];
    // a small byte-level BPE (GPT-2's byte alphabet, a few merges that show where pieces end): cheap to build
    const bytes: number[] = [];
    for (let b = 0; b < 256; b++) if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) bytes.push(b);
    const chars = new Map(bytes.map((b) => [b, String.fromCharCode(b)]));
    for (let b = 0, n = 0; b < 256; b++) if (!chars.has(b)) chars.set(b, String.fromCharCode(256 + n++));
    const merges = ['a a', 'aa aa', 'aaaa aaaa', 'a b', 'Ġ a', 'Ġ x', 'x y', 'Ġ Ġ'];
    const vocab = Object.fromEntries([...[...chars.values()], ...merges.map((m) => m.replace(' ', ''))].map((t, i) => [t, i]));
    const bl = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false };
    const base = (): Record<string, unknown> => ({ version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null, pre_tokenizer: bl, post_processor: null, decoder: bl, model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges } });
    const split = (re: string) => ({ ...base(), pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: re }, behavior: 'Isolated', invert: false }, bl] } });
    const replace = (re: string) => ({ ...base(), normalizer: { type: 'Replace', pattern: { Regex: re }, content: 'Z' } });
    const texts = ['aaab aa', 'b aaaa', '  x xy ay', 'aab ab aab', 'aaaaaaaaaaaaaaab', 'abababc abac ac'];
    // and, for Split, patterns that match empty text, which split as the reference's find_iter has it
    // (its Replace normalizer panics on an empty match at the end, so it is no reference there)
    for (const re of [...evil, 'x*', 'b?', '(?:a|)', '(a|a)*$'])
      for (const j of evil.includes(re) ? [split(re), replace(re)] : [split(re)]) {
        const nat = tk.Tokenizer.fromString(JSON.stringify(j));
        const kiln = new Tokenizer(j);
        for (const text of texts) expect(kiln.encodeIds(text, { addSpecialTokens: false }), `${re} on ${text}`).toEqual((await nat.encode(text, null, { addSpecialTokens: false })).getIds());
      }
    // the case, and 100k characters of it, in well under the test's timeout (hand-computed pieces)
    const t = new Tokenizer(split('(a+)+$'));
    const t0 = performance.now();
    expect(t.preTokenize('a'.repeat(41) + 'b')).toEqual(['a'.repeat(41) + 'b']);
    expect(t.preTokenize('b' + 'a'.repeat(100_000)).map((p) => p.length)).toEqual([1, 100_000]);
    expect(performance.now() - t0).toBeLessThan(5_000);
    // the decoder's Replace goes through String.replace, which calls the matcher's exec
    for (const re of ['(a+)+$', 'x*']) {
      const dj = { ...base(), decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { Regex: re }, content: '!' }, bl] } };
      const ids = new Tokenizer(dj).encodeIds('xyz ' + 'a'.repeat(41), { addSpecialTokens: false });
      expect(new Tokenizer(dj).decode(ids), re).toBe(await tk.Tokenizer.fromString(JSON.stringify(dj)).decode(ids, false));
    }
    // what the matcher cannot run (lookbehind, backreferences) is refused where it sits
    const e = err(() => new Tokenizer({ ...base(), normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '(?<=x)(a+)+$' }, content: '' }] } }));
    expect(e.code).toBe('config');
    expect(e.message).toContain('normalizer.normalizers[1].pattern.Regex: pattern "(?<=x)(a+)+$" could backtrack catastrophically (the repeated group (a+)+ holds a repetition) and the linear-time matcher cannot run it: lookbehind is not supported');
  });

  it('a model without an unknown token raises a typed error when one is needed', () => {
    const j = JSON.parse(load('bert').json);
    j.model.unk_token = '[NOPE]';
    const t = new Tokenizer(j);
    expect(t.encodeIds('hello', { addSpecialTokens: false }).length).toBeGreaterThan(0);
    expect(err(() => t.encodeIds('hello ☃', { addSpecialTokens: false })).code).toBe('config');
  });
});

describe('the wasm split', () => {
  it.each(['gpt2', 'llama3', 'qwen3', 'bert'] as const)('%s: the hand-written matcher makes the pieces the regex makes, on every corpus line', async (name) => {
    const { parityCorpus } = await import('./corpus.js');
    const { kiln } = load(name);
    let bad = 0;
    let first = '';
    for (const line of parityCorpus().split('\n')) {
      let clean = line.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
      clean = clean.replace(/<\|[a-z_]+\|>|\[(CLS|SEP|MASK|UNK|PAD)\]/g, ''); // no added tokens in the way
      if (name === 'qwen3') clean = clean.normalize('NFC'); // its normalizer, which preTokenize applies
      // the regex path's words; BERT's wasm split sees the normalized text
      const want = kiln.preTokenize(clean);
      const got = kiln.wasmSplitPieces(name === 'bert' ? kiln.normalize(clean) : clean);
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        bad++;
        if (!first) first = JSON.stringify({ line: clean, got, want });
      }
    }
    expect(first).toBe('');
    expect(bad).toBe(0);
  });
});
