// Tables of adversarial values and the small helpers every target shares.

/** Marks a key to delete (a "missing" field). */
export const MISSING = Symbol('missing');

/** JSON-representable adversarial values (config.json, tokenizer.json, shard indexes). */
export const JSON_VALUES = [
  ['0', 0], ['-1', -1], ['1.5', 1.5], ['2^31', 2 ** 31], ['2^32', 2 ** 32], ['1e9', 1e9], ['1e300', 1e300], ['-1e300', -1e300],
  ['1e-300', 1e-300], ['-0.5', -0.5], ['"NaN"', 'NaN'], ['"1"', '1'], ['null', null], ['"abc"', 'abc'], ['[]', []], ['{}', {}],
  ['true', true], ['missing', MISSING],
];

/** The same, plus what only JavaScript callers can pass (generation options). */
export const JS_VALUES = [
  ...JSON_VALUES.filter(([n]) => n !== 'missing'),
  ['NaN', NaN], ['Infinity', Infinity], ['-Infinity', -Infinity], ['undefined', undefined], ['2^64', 2 ** 64], ['-2^53', -(2 ** 53)],
  ['1n', 1n], ['[null]', [null]], ['{valueOf}', { valueOf: 1 }],
];

export const describe = (v) => (v === MISSING ? 'missing' : typeof v === 'bigint' ? `${v}n` : Number.isNaN(v) ? 'NaN' : v === undefined ? 'undefined' : JSON.stringify(v) ?? String(v));

/** obj with obj[key] set to v (deleted for MISSING). */
export function setField(obj, key, v) {
  if (v === MISSING) delete obj[key];
  else obj[key] = v;
  return obj;
}

export const isPosInt = (v) => Number.isInteger(v) && v > 0;
export const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
export const clone = (j) => structuredClone(j);
export const enc = (s) => new TextEncoder().encode(s);
export const dec = (b) => new TextDecoder().decode(b);

/** Whether text parses as JSON (what a reader will make of a byte-flipped or cut file). */
export function parses(text) {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** The bytes with `k` random bits flipped in [from, to). */
export function flipBits(rng, bytes, k, from = 0, to = bytes.length) {
  const out = bytes.slice();
  const at = [];
  for (let i = 0; i < k; i++) {
    const p = rng.int(from, to);
    const bit = rng.int(0, 8);
    out[p] ^= 1 << bit;
    at.push(`${p}.${bit}`);
  }
  return { bytes: out, at: at.join(',') };
}
