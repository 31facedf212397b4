// Just enough of safetensors and GGUF to take a file apart and put it back together after an edit.
// Independent of kiln's own readers (src/models/loaders/), so a reader bug cannot hide in both.

/** safetensors bytes -> { header (parsed JSON), headerLen, data (the bytes after the header) }. */
export function readSafetensors(bytes) {
  const len = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + len)));
  return { header, headerLen: len, data: bytes.subarray(8 + len) };
}

/** header text (as given: may be invalid JSON, duplicate keys) + data -> safetensors bytes, 8-aligned. */
export function writeSafetensorsRaw(headerText, data, lenOverride) {
  let text = headerText;
  text += ' '.repeat((8 - ((8 + new TextEncoder().encode(text).length) % 8)) % 8);
  const head = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + head.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(lenOverride ?? head.length), true);
  out.set(head, 8);
  out.set(data, 8 + head.length);
  return out;
}

/** tensors { name: { dtype, shape, bytes } } -> safetensors bytes (name order). */
export function writeSafetensors(tensors) {
  const header = {};
  const parts = [];
  let off = 0;
  for (const name of Object.keys(tensors).sort()) {
    const t = tensors[name];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] };
    parts.push(t.bytes);
    off += t.bytes.length;
  }
  const data = new Uint8Array(off);
  let o = 0;
  for (const p of parts) (data.set(p, o), (o += p.length));
  return writeSafetensorsRaw(JSON.stringify(header), data);
}

// ---------------------------------------------------------------- GGUF

export const GGUF = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 };
/** ggml type -> [elements per block, bytes per block] (the types the tiny files use, and a few more) */
export const GGML_BLOCK = { 0: [1, 4], 1: [1, 2], 2: [32, 18], 8: [32, 34], 12: [256, 144], 14: [256, 210], 30: [1, 2] };

/**
 * GGUF bytes -> { version, kv: [{ key, type, value, elemType? }], tensors: [{ name, ne, type, offset }],
 * headerEnd, dataStart, alignment, data (bytes from dataStart) }.
 */
export function readGGUF(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 0;
  const u32 = () => ((p += 4), dv.getUint32(p - 4, true));
  const u64 = () => ((p += 8), Number(dv.getBigUint64(p - 8, true)));
  const str = () => {
    const n = u64();
    p += n;
    return new TextDecoder().decode(bytes.subarray(p - n, p));
  };
  const scalar = (t) => {
    switch (t) {
      case 0: return dv.getUint8((p += 1) - 1);
      case 1: return dv.getInt8((p += 1) - 1);
      case 2: return dv.getUint16((p += 2) - 2, true);
      case 3: return dv.getInt16((p += 2) - 2, true);
      case 4: return u32();
      case 5: return dv.getInt32((p += 4) - 4, true);
      case 6: return dv.getFloat32((p += 4) - 4, true);
      case 7: return dv.getUint8((p += 1) - 1) !== 0;
      case 8: return str();
      case 10: return dv.getBigUint64((p += 8) - 8, true);
      case 11: return dv.getBigInt64((p += 8) - 8, true);
      case 12: return dv.getFloat64((p += 8) - 8, true);
      default: throw new Error(`GGUF value type ${t}`);
    }
  };
  if (u32() !== 0x46554747) throw new Error('not GGUF');
  const version = u32();
  const nT = u64();
  const nKV = u64();
  const kv = [];
  for (let i = 0; i < nKV; i++) {
    const key = str();
    const type = u32();
    if (type === GGUF.ARRAY) {
      const elemType = u32();
      const n = u64();
      const value = [];
      for (let j = 0; j < n; j++) value.push(scalar(elemType));
      kv.push({ key, type, elemType, value });
    } else kv.push({ key, type, value: scalar(type) });
  }
  const tensors = [];
  for (let i = 0; i < nT; i++) {
    const name = str();
    const nd = u32();
    const ne = [];
    for (let d = 0; d < nd; d++) ne.push(u64());
    tensors.push({ name, ne, type: u32(), offset: u64() });
  }
  const alignment = Number(kv.find((e) => e.key === 'general.alignment')?.value ?? 32);
  const headerEnd = p;
  const dataStart = Math.ceil(p / alignment) * alignment;
  return { version, kv, tensors, headerEnd, dataStart, alignment, data: bytes.subarray(dataStart) };
}

/**
 * { version, kv, tensors, data } -> GGUF bytes. `counts` overrides the tensor / KV counts written
 * (a header that lies); `alignment` is the padding actually used before the data (default: the
 * general.alignment entry as written, else 32), so an edited entry can disagree with the layout.
 */
export function writeGGUF(g, { counts = {}, alignment } = {}) {
  const chunks = [];
  let size = 0;
  const push = (b) => (chunks.push(b), (size += b.length));
  const num = (bytes, f) => {
    const b = new Uint8Array(bytes);
    f(new DataView(b.buffer));
    push(b);
  };
  const u32 = (v) => num(4, (d) => d.setUint32(0, v >>> 0, true));
  const u64 = (v) => num(8, (d) => d.setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true));
  const str = (s) => {
    const b = new TextEncoder().encode(String(s));
    u64(b.length);
    push(b);
  };
  const scalar = (t, v) => {
    switch (t) {
      case 0: return num(1, (d) => d.setUint8(0, Number(v)));
      case 1: return num(1, (d) => d.setInt8(0, Number(v)));
      case 2: return num(2, (d) => d.setUint16(0, Number(v), true));
      case 3: return num(2, (d) => d.setInt16(0, Number(v), true));
      case 4: return u32(Number(v));
      case 5: return num(4, (d) => d.setInt32(0, Number(v), true));
      case 6: return num(4, (d) => d.setFloat32(0, Number(v), true));
      case 7: return num(1, (d) => d.setUint8(0, v ? 1 : 0));
      case 8: return str(v);
      case 10: return u64(v);
      case 11: return num(8, (d) => d.setBigInt64(0, BigInt.asIntN(64, BigInt(v)), true));
      case 12: return num(8, (d) => d.setFloat64(0, Number(v), true));
      default: return u32(0); // an unknown type: its value is whatever the reader makes of what follows
    }
  };
  u32(0x46554747);
  u32(g.version);
  u64(counts.tensors ?? g.tensors.length);
  u64(counts.kv ?? g.kv.length);
  for (const e of g.kv) {
    str(e.key);
    u32(e.type);
    if (e.type === GGUF.ARRAY) {
      u32(e.elemType);
      u64(e.count ?? e.value.length);
      for (const v of e.value) scalar(e.elemType, v);
    } else scalar(e.type, e.value);
  }
  for (const t of g.tensors) {
    str(t.name);
    u32(t.ne.length);
    for (const d of t.ne) u64(d);
    u32(t.type);
    u64(t.offset);
  }
  const align = alignment ?? Number(g.kv.find((e) => e.key === 'general.alignment')?.value ?? 32);
  const pad = (Math.ceil(size / align) * align) - size;
  push(new Uint8Array(pad));
  push(g.data);
  const out = new Uint8Array(size);
  let o = 0;
  for (const c of chunks) (out.set(c, o), (o += c.length));
  return out;
}
