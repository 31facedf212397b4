// The files the CLI reads itself (tokenizer.json, text inputs), under one size cap, and Node's
// filesystem errors as one line that names the path.
import { readFileSync, statSync } from 'node:fs';
import { KilnError } from '../core/errors.js';
import { envVar } from '../core/env.js';
import { parseValue, type FlagSpec } from './args.js';

/** The default cap on an input file: whole files become strings, which V8 caps near 512 MiB. */
export const DEFAULT_MAX_FILE_BYTES = 512 * 2 ** 20;

export const MAX_FILE_SIZE_FLAG: FlagSpec = {
  name: 'max-file-size',
  kind: 'size',
  value: 'BYTES',
  help: 'refuse input files larger than this, e.g. 2G (default $KILN_MAX_FILE_SIZE, else 512M for text and tokenizer files and the loader\'s own cap for model files)',
};

let maxBytes = DEFAULT_MAX_FILE_BYTES;
let explicit: number | undefined;

/** Sets the cap for this run: the flag, else $KILN_MAX_FILE_SIZE, else the default. */
export function setMaxFileBytes(flag: number | undefined, op: string): void {
  const env = envVar('KILN_MAX_FILE_SIZE');
  explicit = flag ?? (env ? (parseValue({ ...MAX_FILE_SIZE_FLAG, name: 'max-file-size (from KILN_MAX_FILE_SIZE)' }, env, op) as number) : undefined);
  maxBytes = explicit ?? DEFAULT_MAX_FILE_BYTES;
}

/** The cap when the user set one (flag or environment), for the model loader's maxFileBytes; its own default otherwise. */
export const userMaxFileBytes = (): number | undefined => explicit;

const size = (n: number): string => (n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${n} bytes`);

/** A file's bytes ('-': stdin), after checking that it is a file within the cap. */
export function readInputBytes(path: string, op: string, what = path): Uint8Array {
  if (path === '-') return readFileSync(0);
  const st = statSync(path);
  if (st.isDirectory()) throw new KilnError('argument', op, `${what}: is a folder, not a file`);
  if (st.size > maxBytes) throw new KilnError('argument', op, `${what} is ${size(st.size)}, over the input cap of ${size(maxBytes)} (raise it with --max-file-size or KILN_MAX_FILE_SIZE)`);
  return readFileSync(path);
}

/** A text file as the reference reads it: invalid UTF-8 becomes U+FFFD. */
export function readInput(path: string, op: string, what = path): string {
  return new TextDecoder('utf-8').decode(readInputBytes(path, op, what));
}

const FS_REASONS: Record<string, string> = {
  ENOENT: 'no such file or folder',
  EISDIR: 'is a folder, not a file',
  ENOTDIR: 'a part of the path is not a folder',
  EEXIST: 'already exists',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on the device',
  EROFS: 'read-only file system',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'name too long',
};

/** A Node filesystem error as one line naming the path ("out.json: is a folder, not a file"), or null for any other error. */
export function fsErrorLine(e: unknown): string | null {
  const x = e as { code?: unknown; path?: unknown; syscall?: unknown };
  if (!x || typeof x.code !== 'string' || !/^E[A-Z]+$/.test(x.code) || typeof x.syscall !== 'string') return null;
  const reason = FS_REASONS[x.code] ?? (e as Error).message.replace(/^E[A-Z]+: /, '').replace(/, \w+ '.*'$/, '');
  return typeof x.path === 'string' ? `${x.path}: ${reason} (${x.syscall})` : `${reason} (${x.syscall})`;
}
