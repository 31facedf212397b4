// GGUF (llama.cpp's format, versions 2 and 3): metadata, tensor infos, and tensor data in F32,
// F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K, dequantized to float32 as each tensor is read. Every
// count, length, type and offset is checked against the file before data is read.
import { KilnError } from '../../core/errors.js';
import { f16BitsToF32 } from '../../core/dtype.js';
import type { ByteSource } from '../sources.js';

export type GGUFValue = number | bigint | boolean | string | GGUFValue[];

/** ggml type -> [name, elements per block, bytes per block] */
const TYPES: Record<number, [string, number, number]> = {
  0: ['F32', 1, 4],
  1: ['F16', 1, 2],
  2: ['Q4_0', 32, 18],
  8: ['Q8_0', 32, 34],
  12: ['Q4_K', 256, 144],
  14: ['Q6_K', 256, 210],
  30: ['BF16', 1, 2],
};
const KNOWN_NAMES: Record<number, string> = { 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 13: 'Q5_K', 15: 'Q8_K' };

export interface GGUFTensor {
  name: string;
  type: string;
  /** torch order (slowest dimension first): GGUF's ne reversed */
  shape: number[];
  begin: number;
  end: number;
}

class NeedMore extends Error {}

/** A little-endian reader over the header bytes read so far; NeedMore when it runs out. */
class Reader {
  pos = 0;
  private readonly dv: DataView;
  constructor(private readonly b: Uint8Array, private readonly fail: (msg: string) => KilnError) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  private need(n: number): void {
    if (this.pos + n > this.b.length) throw new NeedMore();
  }
  u8(): number { this.need(1); return this.b[this.pos++]; }
  u32(): number { this.need(4); const v = this.dv.getUint32(this.pos, true); this.pos += 4; return v; }
  i32(): number { this.need(4); const v = this.dv.getInt32(this.pos, true); this.pos += 4; return v; }
  u64(): number {
    this.need(8);
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.fail(`a count or offset of ${v} at byte ${this.pos - 8} is not plausible`);
    return Number(v);
  }
  str(max: number): string {
    const n = this.u64();
    if (n > max) throw this.fail(`a string of ${n} bytes at byte ${this.pos - 8} runs past the end of the file`);
    this.need(n);
    const s = new TextDecoder().decode(this.b.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }
  value(type: number, max: number, depth = 0): GGUFValue {
    switch (type) {
      case 0: return this.u8();
      case 1: { const v = this.u8(); return v > 127 ? v - 256 : v; }
      case 2: { this.need(2); const v = this.dv.getUint16(this.pos, true); this.pos += 2; return v; }
      case 3: { this.need(2); const v = this.dv.getInt16(this.pos, true); this.pos += 2; return v; }
      case 4: return this.u32();
      case 5: return this.i32();
      case 6: { this.need(4); const v = this.dv.getFloat32(this.pos, true); this.pos += 4; return v; }
      case 7: return this.u8() !== 0;
      case 8: return this.str(max);
      case 9: {
        if (depth > 2) throw this.fail('arrays nested too deep');
        const t = this.u32();
        const n = this.u64();
        if (n > max) throw this.fail(`an array of ${n} elements runs past the end of the file`);
        const out: GGUFValue[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = this.value(t, max, depth + 1);
        return out;
      }
      case 10: { this.need(8); const v = this.dv.getBigUint64(this.pos, true); this.pos += 8; return v; }
      case 11: { this.need(8); const v = this.dv.getBigInt64(this.pos, true); this.pos += 8; return v; }
      case 12: { this.need(8); const v = this.dv.getFloat64(this.pos, true); this.pos += 8; return v; }
      default: throw this.fail(`unknown metadata value type ${type} at byte ${this.pos - 4}`);
    }
  }
}

export class GGUFFile {
  private constructor(
    readonly source: ByteSource,
    readonly version: number,
    readonly metadata: Map<string, GGUFValue>,
    readonly tensors: Map<string, GGUFTensor>,
  ) {}

  static async open(source: ByteSource): Promise<GGUFFile> {
    const fail = (msg: string): KilnError => new KilnError('config', 'gguf', `${source.name}: ${msg}`);
    if (source.size < 24) throw fail(`truncated: ${source.size} bytes`);
    // the header is read in growing pieces until it parses (metadata can be megabytes of vocab)
    for (let size = Math.min(source.size, 1 << 20); ; size = Math.min(source.size, size * 4)) {
      const r = new Reader(await source.read(0, size), fail);
      try {
        return GGUFFile.parse(source, r, fail);
      } catch (e) {
        if (!(e instanceof NeedMore)) throw e;
        if (size === source.size) throw fail('truncated: the header runs past the end of the file');
      }
    }
  }

  private static parse(source: ByteSource, r: Reader, fail: (msg: string) => KilnError): GGUFFile {
    const magic = r.u32();
    if (magic !== 0x46554747) throw fail(`not a GGUF file (magic ${magic.toString(16)})`);
    const version = r.u32();
    if (version !== 2 && version !== 3) throw fail(`GGUF version ${version} is not supported (2 and 3 are)`);
    const nTensors = r.u64();
    const nKV = r.u64();
    const max = source.size;
    if (nTensors > max / 24 || nKV > max / 12) throw fail(`the header claims ${nTensors} tensors and ${nKV} metadata entries, more than the file holds`);
    const metadata = new Map<string, GGUFValue>();
    for (let i = 0; i < nKV; i++) {
      const key = r.str(max);
      metadata.set(key, r.value(r.u32(), max));
    }
    const infos: { name: string; ne: number[]; type: number; offset: number }[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = r.str(max);
      const nd = r.u32();
      if (nd < 1 || nd > 4) throw fail(`tensor '${name}': ${nd} dimensions`);
      const ne: number[] = [];
      for (let d = 0; d < nd; d++) ne.push(r.u64());
      infos.push({ name, ne, type: r.u32(), offset: r.u64() });
    }
    const alignment = metadata.get('general.alignment') ?? 32;
    const align = typeof alignment === 'number' || typeof alignment === 'bigint' ? Number(alignment) : NaN;
    if (!(align > 0 && align <= 1 << 20 && (align & (align - 1)) === 0)) throw fail(`general.alignment: must be a power of two up to 2^20, got ${String(alignment)}`);
    const dataStart = Math.ceil(r.pos / align) * align;
    const tensors = new Map<string, GGUFTensor>();
    for (const t of infos) {
      const ty = TYPES[t.type];
      if (!ty) throw fail(`tensor '${t.name}': ggml type ${KNOWN_NAMES[t.type] ?? t.type} is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)`);
      const [tname, blk, bytes] = ty;
      if (t.ne[0] % blk) throw fail(`tensor '${t.name}': rows of ${t.ne[0]} are not whole ${tname} blocks of ${blk}`);
      const n = t.ne.reduce((a, b) => a * b, 1);
      const size = (n / blk) * bytes;
      if (t.offset % align) throw fail(`tensor '${t.name}': offset ${t.offset} is not aligned to ${align}`);
      const begin = dataStart + t.offset;
      if (begin + size > source.size) throw fail(`tensor '${t.name}' (${tname} ${JSON.stringify([...t.ne].reverse())}) ends at byte ${begin + size}, past the end of the file (${source.size}): truncated, or the header lies (its offsets, tensor count or general.alignment ${align})`);
      tensors.set(t.name, { name: t.name, type: tname, shape: [...t.ne].reverse(), begin, end: begin + size });
    }
    const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin);
    for (let i = 1; i < sorted.length; i++) if (sorted[i].begin < sorted[i - 1].end) throw fail(`tensors '${sorted[i - 1].name}' and '${sorted[i].name}' overlap: the header lies about offsets`);
    // the tensors tile the data, each at the previous end rounded up to the alignment (as llama.cpp
    // writes them): a wrong tensor count or alignment leaves bytes that no tensor claims
    let at = dataStart;
    for (const t of sorted) {
      if (t.begin !== at) throw fail(`bytes ${at}..${t.begin} before tensor '${t.name}' belong to no tensor: the header's tensor count (${nTensors}) or general.alignment (${align}) disagrees with the data`);
      at = Math.ceil(t.end / align) * align;
    }
    if (source.size > at) throw fail(`${source.size - at} bytes after the last tensor belong to no tensor: the header's tensor count (${nTensors}) or general.alignment (${align}) disagrees with the data`);
    return new GGUFFile(source, version, metadata, tensors);
  }

  /** A tensor as float32 (quantized types dequantized). */
  async float32(name: string): Promise<Float32Array> {
    const t = this.tensors.get(name);
    if (!t) throw new KilnError('config', 'gguf', `${this.source.name}: no tensor '${name}'`);
    return dequantize(await this.source.read(t.begin, t.end - t.begin), t.type, t.shape.reduce((a, b) => a * b, 1));
  }
}

/** ggml blocks to float32, as llama.cpp's dequantize_row_* reference functions. */
export function dequantize(b: Uint8Array, type: string, n: number): Float32Array {
  const out = new Float32Array(n);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const h = (o: number): number => f16BitsToF32(dv.getUint16(o, true));
  switch (type) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = h(2 * i);
      break;
    case 'BF16': {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true) << 16;
      break;
    }
    case 'Q8_0':
      for (let blk = 0; blk < n / 32; blk++) {
        const o = blk * 34;
        const d = h(o);
        for (let j = 0; j < 32; j++) out[blk * 32 + j] = d * dv.getInt8(o + 2 + j);
      }
      break;
    case 'Q4_0':
      for (let blk = 0; blk < n / 32; blk++) {
        const o = blk * 18;
        const d = h(o);
        for (let j = 0; j < 16; j++) {
          const q = b[o + 2 + j];
          out[blk * 32 + j] = d * ((q & 0xf) - 8);
          out[blk * 32 + j + 16] = d * ((q >> 4) - 8);
        }
      }
      break;
    case 'Q4_K':
      for (let blk = 0; blk < n / 256; blk++) {
        const o = blk * 144;
        const d = h(o);
        const dmin = h(o + 2);
        const sc = o + 4;
        const scaleMin = (j: number): [number, number] =>
          j < 4 ? [b[sc + j] & 63, b[sc + j + 4] & 63] : [(b[sc + j + 4] & 0xf) | ((b[sc + j - 4] >> 6) << 4), (b[sc + j + 4] >> 4) | ((b[sc + j] >> 6) << 4)];
        let q = o + 16;
        let y = blk * 256;
        for (let j = 0, is = 0; j < 256; j += 64, is += 2) {
          const [s1, m1] = scaleMin(is);
          const [s2, m2] = scaleMin(is + 1);
          const d1 = d * s1;
          const d2 = d * s2;
          const n1 = dmin * m1;
          const n2 = dmin * m2;
          for (let l = 0; l < 32; l++) out[y + l] = d1 * (b[q + l] & 0xf) - n1;
          for (let l = 0; l < 32; l++) out[y + 32 + l] = d2 * (b[q + l] >> 4) - n2;
          q += 32;
          y += 64;
        }
      }
      break;
    case 'Q6_K':
      for (let blk = 0; blk < n / 256; blk++) {
        const o = blk * 210;
        const d = h(o + 208);
        let ql = o;
        let qh = o + 128;
        let sc = o + 192;
        let y = blk * 256;
        for (let part = 0; part < 2; part++) {
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const q1 = ((b[ql + l] & 0xf) | (((b[qh + l] >> 0) & 3) << 4)) - 32;
            const q2 = ((b[ql + l + 32] & 0xf) | (((b[qh + l] >> 2) & 3) << 4)) - 32;
            const q3 = ((b[ql + l] >> 4) | (((b[qh + l] >> 4) & 3) << 4)) - 32;
            const q4 = ((b[ql + l + 32] >> 4) | (((b[qh + l] >> 6) & 3) << 4)) - 32;
            out[y + l] = d * dv.getInt8(sc + is) * q1;
            out[y + l + 32] = d * dv.getInt8(sc + is + 2) * q2;
            out[y + l + 64] = d * dv.getInt8(sc + is + 4) * q3;
            out[y + l + 96] = d * dv.getInt8(sc + is + 6) * q4;
          }
          y += 128;
          ql += 64;
          qh += 32;
          sc += 8;
        }
      }
      break;
    default:
      throw new KilnError('dtype', 'gguf', `cannot dequantize ${type}`);
  }
  return out;
}
