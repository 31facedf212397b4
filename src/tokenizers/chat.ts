// Chat templates: tokenizer_config.json's `chat_template` (Jinja), rendered with @huggingface/jinja
// with the variables transformers passes (messages, add_generation_prompt, tools, documents, the
// special tokens) and its helpers (raise_exception, strftime_now).
import { Template } from '@huggingface/jinja';
import { KilnError } from '../core/errors.js';
import type { Json } from './components.js';

export interface ChatMessage {
  role: string;
  content: string | Json[] | null;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** End with the assistant's header so the model writes the reply. */
  addGenerationPrompt?: boolean;
  /** Tool (function) definitions, for templates that render them. */
  tools?: Json[] | null;
  documents?: Json[] | null;
  /** The template to use, when tokenizer_config.json has several (by name) or as source text. */
  template?: string;
  /** Further variables for the template (e.g. enable_thinking). */
  extra?: Record<string, unknown>;
}

const cache = new Map<string, Template>();

/** The special-token string a config field holds (a string or an AddedToken object). */
function tokenString(v: Json): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v.content === 'string') return v.content;
  return undefined;
}

export function pickTemplate(config: Json, opts: ChatTemplateOptions): string {
  const t = config?.chat_template;
  if (opts.template && (!Array.isArray(t) || !t.some((x: Json) => x?.name === opts.template))) {
    // source text, or a name that the config does not have
    if (/[{][{%]/.test(opts.template)) return opts.template;
    throw new KilnError('config', 'applyChatTemplate', `tokenizer_config.json.chat_template has no template named '${opts.template}'`);
  }
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const name = opts.template ?? (opts.tools?.length && t.some((x: Json) => x?.name === 'tool_use') ? 'tool_use' : 'default');
    const hit = t.find((x: Json) => x?.name === name);
    if (!hit || typeof hit.template !== 'string') throw new KilnError('config', 'applyChatTemplate', `tokenizer_config.json.chat_template has no template named '${name}' (has ${t.map((x: Json) => x?.name).join(', ')})`);
    return hit.template;
  }
  throw new KilnError('config', 'applyChatTemplate', 'tokenizer_config.json has no chat_template (pass options.template)');
}

/** Renders a conversation to the text the model was trained on. */
export function renderChat(config: Json, messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
  if (!Array.isArray(messages)) throw new KilnError('argument', 'applyChatTemplate', 'messages must be an array of {role, content}');
  messages.forEach((m, i) => {
    if (!m || typeof m.role !== 'string') throw new KilnError('argument', 'applyChatTemplate', `messages[${i}].role must be a string`);
  });
  const src = pickTemplate(config, opts);
  let tpl = cache.get(src);
  if (!tpl) {
    try {
      tpl = new Template(src);
    } catch (e) {
      throw new KilnError('config', 'applyChatTemplate', `chat_template does not parse: ${(e as Error).message}`);
    }
    cache.set(src, tpl);
  }
  const vars: Record<string, unknown> = {
    messages,
    add_generation_prompt: opts.addGenerationPrompt ?? false,
    tools: opts.tools ?? null,
    documents: opts.documents ?? null,
    ...opts.extra,
  };
  for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token']) {
    const v = tokenString(config?.[key]);
    if (v !== undefined && !(key in vars)) vars[key] = v;
  }
  try {
    return tpl.render(vars);
  } catch (e) {
    throw new KilnError('argument', 'applyChatTemplate', `the chat template failed on this conversation: ${(e as Error).message}`);
  }
}
