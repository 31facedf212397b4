// The safetensors container (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then
// the raw little-endian tensor bytes. Written for packed datasets; read one tensor at a time, with
// every header field checked against the file before anything is read.
import { KilnError } from '../../core/errors.js';
import type { ByteSource } from '../sources.js';
import { f16BitsToF32 } from '../../core/dtype.js';

export type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'U8';

export interface SafetensorsEntry {
  dtype: SafetensorsDType;
  shape: number[];
  data: ArrayBufferView;
}

/** Serializes tensors (in name order, 8-byte aligned header) to one buffer. */
export function writeSafetensors(tensors: Record<string, SafetensorsEntry>, metadata: Record<string, string> = {}): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).length) % 8)) % 8); // align the data
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let o = 8 + head.length;
  for (const name of names) {
    const d = tensors[name].data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), o);
    o += d.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------- reading

export type { ByteSource } from '../sources.js';

const DTYPE_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1, U16: 2, U32: 4, U64: 8 };

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

const MAX_HEADER = 100 << 20;

/** A safetensors file whose header has been read and checked; tensors are read one at a time. */
export class SafetensorsFile {
  private constructor(
    readonly source: ByteSource,
    readonly tensors: Map<string, TensorInfo>,
    readonly metadata: Record<string, string>,
  ) {}

  static async open(source: ByteSource): Promise<SafetensorsFile> {
    const where = source.name;
    const bad = (msg: string): KilnError => new KilnError('config', 'safetensors', `${where}: ${msg}`);
    if (source.size < 8) throw bad(`truncated: ${source.size} bytes; a safetensors file starts with an 8-byte header length`);
    const lenBytes = await source.read(0, 8);
    const headerLen = Number(new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true));
    if (headerLen > source.size - 8) throw bad(`header length ${headerLen} runs past the end of the file (${source.size} bytes): truncated or not a safetensors file`);
    if (headerLen > MAX_HEADER) throw bad(`header length ${headerLen} is over ${MAX_HEADER} bytes`);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(new TextDecoder().decode(await source.read(8, headerLen)));
    } catch (e) {
      throw bad(`the header is not valid JSON (${(e as Error).message})`);
    }
    if (!header || typeof header !== 'object' || Array.isArray(header)) throw bad('the header is not a JSON object');
    const dataStart = 8 + headerLen;
    const dataSize = source.size - dataStart;
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    for (const [name, v] of Object.entries(header)) {
      if (name === '__metadata__') {
        metadata = (v ?? {}) as Record<string, string>;
        continue;
      }
      const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const t = `tensor '${name}'`;
      if (!e || typeof e.dtype !== 'string' || !(e.dtype in DTYPE_BYTES)) throw bad(`${t}: unknown dtype ${JSON.stringify(e?.dtype)}`);
      if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw bad(`${t}: shape ${JSON.stringify(e.shape)} is not a list of sizes`);
      const off = e.data_offsets;
      if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0) || off[0] > off[1]) throw bad(`${t}: data_offsets ${JSON.stringify(off)} are not [begin, end]`);
      const need = (e.shape as number[]).reduce((a, b) => a * b, 1) * DTYPE_BYTES[e.dtype];
      if (off[1] - off[0] !== need) throw bad(`${t}: shape ${JSON.stringify(e.shape)} of ${e.dtype} needs ${need} bytes but data_offsets span ${off[1] - off[0]}`);
      if (off[1] > dataSize) throw bad(`${t}: data_offsets end at ${off[1]}, past the ${dataSize} bytes of data (file truncated, or the header lies)`);
      tensors.set(name, { name, dtype: e.dtype, shape: e.shape as number[], begin: dataStart + off[0], end: dataStart + off[1] });
    }
    const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin);
    // as the format's own reader: the data is indexed whole, tensor after tensor, no holes, so a
    // header that lies about its length (shifting every tensor by a byte) cannot pass
    let at = dataStart;
    for (const t of sorted) {
      if (t.begin < at) throw bad(`tensors overlap at '${t.name}': the header lies about offsets`);
      if (t.begin > at) throw bad(`${t.name}: data_offsets begin at ${t.begin - dataStart}, leaving a hole after byte ${at - dataStart} of the data`);
      at = t.end;
    }
    if (at !== source.size) throw bad(`the tensors end at byte ${at - dataStart} of the data, but the file holds ${source.size - dataStart} (a wrong header length, or trailing bytes)`);
    return new SafetensorsFile(source, tensors, metadata);
  }

  /** The raw little-endian bytes of one tensor. */
  async bytes(name: string): Promise<Uint8Array> {
    const t = this.tensors.get(name);
    if (!t) throw new KilnError('config', 'safetensors', `${this.source.name}: no tensor '${name}'`);
    return this.source.read(t.begin, t.end - t.begin);
  }

  /** One tensor as float32 values (F32, F16 and BF16 tensors). */
  async float32(name: string): Promise<Float32Array> {
    const t = this.tensors.get(name)!;
    return toFloat32(await this.bytes(name), t.dtype, `${this.source.name}: tensor '${name}'`);
  }
}

/** Little-endian F32/F16/BF16 bytes as float32 (into `out` when given: its first n values). */
export function toFloat32(b: Uint8Array, dtype: string, where: string, into?: Float32Array): Float32Array {
  const n = b.byteLength / (dtype === 'F32' ? 4 : 2);
  const out = into ? into.subarray(0, n) : new Float32Array(n);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (dtype === 'F32') for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
  else if (dtype === 'BF16') {
    const u32 = new Uint32Array(out.buffer, out.byteOffset, n);
    for (let i = 0; i < n; i++) u32[i] = dv.getUint16(2 * i, true) << 16;
  } else if (dtype === 'F16') for (let i = 0; i < n; i++) out[i] = f16BitsToF32(dv.getUint16(2 * i, true));
  else throw new KilnError('dtype', 'load', `${where}: dtype ${dtype} is not a float format kiln loads (F32, F16, BF16)`);
  return out;
}
