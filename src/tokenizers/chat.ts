// Chat templates: tokenizer_config.json's `chat_template` (Jinja), rendered with @huggingface/jinja
// with the variables transformers passes (messages, add_generation_prompt, tools, documents, the
// special tokens) and its helpers (raise_exception, strftime_now).
import { Environment, Interpreter, Template } from '@huggingface/jinja';
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
    return render(tpl, vars);
  } catch (e) {
    throw new KilnError('argument', 'applyChatTemplate', `the chat template failed on this conversation: ${(e as Error).message}`);
  }
}

// A template is code from a file: bound its work so a loop of range(10**9), or loops nested to
// the same effect, end in an error instead of hanging the thread. Every loop that can run long
// iterates a range (the rest walk the messages and other inputs), so the items all ranges of a
// render make are bounded, and so are the interpreter's steps. Real templates take a few
// thousand steps per message and no ranges at all.
const MAX_STEPS = 5_000_000;
const MAX_RANGE_ITEMS = 1_000_000;

class BoundedInterpreter extends Interpreter {
  private steps = 0;
  override evaluate(...args: Parameters<Interpreter['evaluate']>): ReturnType<Interpreter['evaluate']> {
    if (++this.steps > MAX_STEPS) throw new Error(`the template ran over ${MAX_STEPS} steps`);
    return super.evaluate(...args);
  }
}

/** Jinja's range, drawing its items from the render's budget. */
function boundedRange(): (start: number, stop?: number, step?: number) => number[] {
  let left = MAX_RANGE_ITEMS;
  return (start, stop, step = 1) => {
    if (stop === undefined) [start, stop] = [0, start];
    if (step === 0) throw new Error('range() step must not be zero');
    const n = Math.max(0, Math.ceil((stop - start) / step));
    if (!(n <= left)) throw new Error(`range() of ${n} items is over what is left of the template's ${MAX_RANGE_ITEMS}`);
    left -= n;
    return Array.from({ length: n }, (_, i) => start + i * step);
  };
}

const pad2 = (n: number): string => String(n).padStart(2, '0');
/** strftime_now(format) as transformers gives templates: the local date and time. */
function strftimeNow(format: string): string {
  const d = new Date();
  const month = (style: 'long' | 'short'): string => new Intl.DateTimeFormat(undefined, { month: style }).format(d);
  const parts: Record<string, () => string> = {
    '%Y': () => String(d.getFullYear()), '%m': () => pad2(d.getMonth() + 1), '%d': () => pad2(d.getDate()),
    '%b': () => month('short'), '%B': () => month('long'), '%H': () => pad2(d.getHours()), '%M': () => pad2(d.getMinutes()), '%%': () => '%',
  };
  return format.replace(/%[YmdbBHM%]/g, (t) => parts[t]());
}

/** Template.render with the library's globals, a bounded range and a bounded interpreter. */
function render(tpl: Template, vars: Record<string, unknown>): string {
  const env = new Environment();
  const globals: Record<string, unknown> = {
    false: false, true: true, none: null, False: false, True: true, None: null,
    raise_exception: (msg: string) => { throw new Error(msg); },
    range: boundedRange(), strftime_now: strftimeNow,
  };
  for (const [k, v] of Object.entries({ ...globals, ...vars })) env.set(k, v);
  return new BoundedInterpreter(env).run(tpl.parsed).value as string;
}
