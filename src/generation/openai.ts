// OpenAI chat.completions request and response shapes over a loaded model, as plain functions
// (the worker and a server wrap these): the conversation goes through the chat template, the
// reply comes back whole or as a stream of chunks.
import { KilnError } from '../core/errors.js';
import type { ChatMessage } from '../tokenizers/chat.js';
import type { LoadedModel } from '../models/load.js';
import { defaultStopIds, textChunks, type FinishReason, type GenerateOptions } from './generate.js';
import { throwIfAborted, validateOptions, vocabOf } from './options.js';

export interface ChatCompletionRequest {
  model?: string;
  messages: ChatMessage[];
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  /** kiln extensions, as many OpenAI-compatible servers take them */
  top_k?: number;
  min_p?: number;
  repetition_penalty?: number;
  frequency_penalty?: number;
  presence_penalty?: number;
  logit_bias?: Record<string, number>;
  stop?: string | string[];
  seed?: number;
  /** kiln: ends the generation with the signal's reason (not sent over HTTP) */
  signal?: AbortSignal;
  n?: number;
  stream?: boolean;
  logprobs?: boolean;
  tools?: unknown[];
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: { index: number; message: { role: 'assistant'; content: string }; logprobs: { content: { token: string; logprob: number; bytes: number[]; top_logprobs: [] }[] } | null; finish_reason: FinishReason }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: { index: number; delta: { role?: 'assistant'; content?: string }; logprobs: { content: { token: string; logprob: number; bytes: number[]; top_logprobs: [] }[] } | null; finish_reason: FinishReason | null }[];
}

/** OpenAI's request fields -> kiln's option names, so errors name the field the caller wrote. */
const FIELDS: Record<string, string> = {
  maxTokens: 'max_completion_tokens', temperature: 'temperature', topP: 'top_p', topK: 'top_k', minP: 'min_p',
  repetitionPenalty: 'repetition_penalty', frequencyPenalty: 'frequency_penalty', presencePenalty: 'presence_penalty',
  logitBias: 'logit_bias', seed: 'seed', stop: 'stop', signal: 'signal',
};

/** A message's content as text: a string, or OpenAI's array of text parts (joined by newlines, as vLLM does). */
function contentText(m: ChatMessage, i: number, bad: (m: string) => KilnError): string | null {
  const c = m.content as unknown;
  if (typeof c === 'string') return c;
  if (c === null && m.role === 'assistant' && Array.isArray(m.tool_calls)) return null; // a tool call has no text
  if (!Array.isArray(c)) throw bad(`messages[${i}].content must be a string or an array of text parts, got ${c === null ? 'null' : typeof c}`);
  return c.map((p, j) => {
    if (!p || typeof p !== 'object' || (p as { type?: unknown }).type !== 'text' || typeof (p as { text?: unknown }).text !== 'string') {
      throw bad(`messages[${i}].content[${j}] must be a text part {type: 'text', text: string}, got ${JSON.stringify(p)}`);
    }
    return (p as { text: string }).text;
  }).join('\n');
}

/** The request checked and turned into a prompt and GenerateOptions (validated once, here). */
function options(op: string, lm: LoadedModel, req: ChatCompletionRequest): { prompt: number[]; opts: GenerateOptions } {
  const bad = (m: string): KilnError => new KilnError('argument', op, m);
  const V = vocabOf(op, (lm as LoadedModel | null)?.model);
  if (!lm.tokenizer) throw new KilnError('config', op, 'the model has no tokenizer');
  if (typeof req !== 'object' || req === null) throw bad(`the request must be an object, got ${req === null ? 'null' : typeof req}`);
  if (!Array.isArray(req.messages) || !req.messages.length) throw bad('messages must be a non-empty array');
  const messages = req.messages.map((m, i) => {
    if (typeof m !== 'object' || m === null || typeof m.role !== 'string') throw bad(`messages[${i}] must be {role: string, content}, got ${JSON.stringify(m)}`);
    return { ...m, content: contentText(m, i, bad) };
  });
  const optional = (name: keyof ChatCompletionRequest, ok: (v: unknown) => boolean, what: string): void => {
    const v = req[name];
    if (v !== undefined && v !== null && !ok(v)) throw bad(`${name}: must be ${what}, got ${JSON.stringify(v)}`);
  };
  optional('model', (v) => typeof v === 'string', 'a string');
  optional('n', (v) => v === 1, '1 (one choice per request is supported)');
  optional('stream', (v) => typeof v === 'boolean', 'a boolean');
  optional('logprobs', (v) => typeof v === 'boolean', 'a boolean');
  optional('tools', Array.isArray, 'an array');
  optional('max_tokens', (v) => Number.isInteger(v) && (v as number) >= 1, 'a positive integer');
  const prompt = lm.tokenizer.encodeChat(messages, { addGenerationPrompt: true, tools: (req.tools as never) ?? null });
  const given = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v); // OpenAI's fields are nullable
  const opts: GenerateOptions = {
    maxTokens: given(req.max_completion_tokens) ?? given(req.max_tokens) ?? Math.max(1, lm.model.config.maxPositionEmbeddings - prompt.length),
    temperature: given(req.temperature) ?? 1,
    topP: given(req.top_p),
    topK: given(req.top_k),
    minP: given(req.min_p),
    repetitionPenalty: given(req.repetition_penalty),
    frequencyPenalty: given(req.frequency_penalty),
    presencePenalty: given(req.presence_penalty),
    logitBias: given(req.logit_bias),
    seed: given(req.seed),
    stop: given(req.stop),
    signal: req.signal,
  };
  validateOptions(op, opts, V, FIELDS);
  throwIfAborted(opts.signal); // before the stream's first chunk
  return { prompt, opts: { ...opts, stopTokenIds: defaultStopIds(lm.tokenizer, lm.generationConfig) } };
}

const newId = (): string => `chatcmpl-${Math.random().toString(36).slice(2, 14)}`;
const enc = new TextEncoder();

/** The whole reply, in the shape of OpenAI's chat.completion object. */
export async function chatCompletion(lm: LoadedModel, req: ChatCompletionRequest): Promise<ChatCompletion> {
  const { prompt, opts } = options('chatCompletion', lm, req);
  if (req.stream) throw new KilnError('argument', 'chatCompletion', 'stream: true returns chunks: call chatCompletionStream (or leave stream unset)');
  const it = textChunks('chatCompletion', lm.model, lm.tokenizer!, prompt, opts);
  let content = '';
  let n = 0;
  const lps: { token: string; logprob: number; bytes: number[]; top_logprobs: [] }[] = [];
  let finish: FinishReason = 'length';
  for (;;) {
    const r = await it.next();
    if (r.done) {
      finish = r.value;
      break;
    }
    content += r.value.text;
    if (r.value.token >= 0) {
      n++;
      if (req.logprobs) {
        const token = lm.tokenizer!.decode([r.value.token]);
        lps.push({ token, logprob: r.value.logprob, bytes: [...enc.encode(token)], top_logprobs: [] });
      }
    }
  }
  return {
    id: newId(),
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: req.model ?? 'kiln',
    choices: [{ index: 0, message: { role: 'assistant', content }, logprobs: req.logprobs ? { content: lps } : null, finish_reason: finish }],
    usage: { prompt_tokens: prompt.length, completion_tokens: n, total_tokens: prompt.length + n },
  };
}

/** The reply as OpenAI's stream of chat.completion.chunk objects (role first, then text deltas, then the finish). */
export async function* chatCompletionStream(lm: LoadedModel, req: ChatCompletionRequest): AsyncGenerator<ChatCompletionChunk> {
  const { prompt, opts } = options('chatCompletionStream', lm, req);
  const base = { id: newId(), object: 'chat.completion.chunk' as const, created: Math.floor(Date.now() / 1000), model: req.model ?? 'kiln' };
  yield { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] };
  const it = textChunks('chatCompletionStream', lm.model, lm.tokenizer!, prompt, opts);
  try {
    for (;;) {
      const r = await it.next();
      if (r.done) {
        yield { ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: r.value }] };
        return;
      }
      if (!r.value.text && !req.logprobs) continue;
      const token = r.value.token >= 0 ? lm.tokenizer!.decode([r.value.token]) : '';
      yield {
        ...base,
        choices: [{ index: 0, delta: { content: r.value.text }, logprobs: req.logprobs && r.value.token >= 0 ? { content: [{ token, logprob: r.value.logprob, bytes: [...enc.encode(token)], top_logprobs: [] }] } : null, finish_reason: null }],
      };
    }
  } finally {
    await it.return('stop'); // the consumer stopped reading: free the session
  }
}
