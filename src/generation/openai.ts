// OpenAI chat.completions request and response shapes over a loaded model, as plain functions
// (the worker and a server wrap these): the conversation goes through the chat template, the
// reply comes back whole or as a stream of chunks.
import { KilnError } from '../core/errors.js';
import type { ChatMessage } from '../tokenizers/chat.js';
import type { LoadedModel } from '../models/load.js';
import { defaultStopIds, generateText, type FinishReason, type GenerateOptions } from './generate.js';

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

function options(lm: LoadedModel, req: ChatCompletionRequest): { prompt: number[]; opts: GenerateOptions } {
  const bad = (m: string): KilnError => new KilnError('argument', 'chatCompletion', m);
  if (!lm.tokenizer) throw new KilnError('config', 'chatCompletion', 'the model has no tokenizer');
  if (!Array.isArray(req?.messages) || !req.messages.length) throw bad('messages must be a non-empty array');
  if (req.n !== undefined && req.n !== 1) throw bad(`n = ${req.n}: one choice per request is supported`);
  const prompt = lm.tokenizer.encodeChat(req.messages, { addGenerationPrompt: true, tools: (req.tools as never) ?? null });
  const bias: Record<number, number> = {};
  for (const [k, v] of Object.entries(req.logit_bias ?? {})) {
    if (!/^\d+$/.test(k) || typeof v !== 'number') throw bad(`logit_bias: '${k}' must map a token id to a number`);
    bias[+k] = v;
  }
  return {
    prompt,
    opts: {
      maxTokens: req.max_completion_tokens ?? req.max_tokens ?? Math.max(1, lm.model.config.maxPositionEmbeddings - prompt.length),
      temperature: req.temperature ?? 1,
      topP: req.top_p,
      topK: req.top_k,
      minP: req.min_p,
      repetitionPenalty: req.repetition_penalty,
      frequencyPenalty: req.frequency_penalty,
      presencePenalty: req.presence_penalty,
      logitBias: bias,
      seed: req.seed,
      stop: typeof req.stop === 'string' ? [req.stop] : req.stop,
      stopTokenIds: defaultStopIds(lm.tokenizer, lm.generationConfig),
    },
  };
}

const newId = (): string => `chatcmpl-${Math.random().toString(36).slice(2, 14)}`;
const enc = new TextEncoder();

/** The whole reply, in the shape of OpenAI's chat.completion object. */
export async function chatCompletion(lm: LoadedModel, req: ChatCompletionRequest): Promise<ChatCompletion> {
  const { prompt, opts } = options(lm, req);
  const it = generateText(lm.model, lm.tokenizer!, prompt, opts);
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
  const { prompt, opts } = options(lm, req);
  const base = { id: newId(), object: 'chat.completion.chunk' as const, created: Math.floor(Date.now() / 1000), model: req.model ?? 'kiln' };
  yield { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] };
  const it = generateText(lm.model, lm.tokenizer!, prompt, opts);
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
}
