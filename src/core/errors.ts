/** Every error kiln throws is a KilnError with a stable `code`, so callers can branch on it. */
export type KilnErrorCode =
  | 'shape' // shapes that do not fit the op
  | 'dtype' // a dtype the op does not take
  | 'disposed' // a tensor used after dispose()
  | 'index' // an index or axis out of range
  | 'grad' // misuse of autograd (backward on a non-scalar without a gradient, ...)
  | 'backend' // a backend that cannot be had, or failed
  | 'config' // a malformed or unsupported file or config (tokenizer.json, config.json, ...): names the JSON path
  | 'argument'; // any other bad argument

export class KilnError extends Error {
  readonly code: KilnErrorCode;
  /** The op (or API) that raised it, e.g. "matmul". */
  readonly op: string;
  constructor(code: KilnErrorCode, op: string, message: string) {
    super(`${op}: ${message}`);
    this.name = 'KilnError';
    this.code = code;
    this.op = op;
  }
}

export const fmtShape = (s: readonly number[]): string => `[${s.join(', ')}]`;
