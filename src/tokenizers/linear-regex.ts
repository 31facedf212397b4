// A linear-time matcher (a Pike VM: every thread of a Thompson NFA advanced in step, in priority
// order) for the tokenizer.json patterns that JavaScript's backtracking RegExp could take
// exponential time on, such as `(a+)+$`. It finds the match a backtracking engine finds (leftmost,
// then the first alternative / greedy choice) in O(text x pattern) time. It reads the JavaScript
// `u`-mode source that translateOnigPattern makes; each single-character atom (class, property,
// escape, literal) is tested by JavaScript itself, so character semantics are the same.

/** One instruction: CHAR tests a code point; SPLIT tries x before y; ASSERT tests the position. */
type Inst =
  | { op: 'char'; test: (cp: number) => boolean; next: number }
  | { op: 'split'; x: number; y: number }
  | { op: 'jmp'; x: number }
  | { op: 'assert'; kind: 'bol' | 'eol' | 'word' | 'nonword'; next: number }
  | { op: 'look'; prog: Inst[]; negate: boolean; next: number; id: number }
  | { op: 'match' };

type Node =
  | { t: 'char'; test: (cp: number) => boolean }
  | { t: 'cat'; xs: Node[] }
  | { t: 'alt'; xs: Node[] }
  | { t: 'rep'; x: Node; min: number; max: number; lazy: boolean }
  | { t: 'assert'; kind: 'bol' | 'eol' | 'word' | 'nonword' }
  | { t: 'look'; x: Node; negate: boolean };

/** Programs larger than this are refused (a counted repetition is expanded copy by copy). */
const MAX_INSTS = 100_000;

/** A tester for one single-character atom's source, answered by a JavaScript RegExp and cached per code point. */
function atomTest(src: string): (cp: number) => boolean {
  const re = new RegExp(`^(?:${src})$`, 'u');
  const cache = new Map<number, boolean>();
  return (cp) => {
    let v = cache.get(cp);
    if (v === undefined) cache.set(cp, (v = re.test(String.fromCodePoint(cp))));
    return v;
  };
}

function parse(src: string): Node {
  let i = 0;
  const fail = (msg: string): never => {
    throw new SyntaxError(`${msg} at ${i} of ${JSON.stringify(src)}`);
  };
  const alt = (): Node => {
    const xs = [seq()];
    while (src[i] === '|') {
      i++;
      xs.push(seq());
    }
    return xs.length === 1 ? xs[0] : { t: 'alt', xs };
  };
  const seq = (): Node => {
    const xs: Node[] = [];
    while (i < src.length && src[i] !== '|' && src[i] !== ')') {
      let x = atom();
      for (;;) {
        const q = /^(?:[*+?]|\{(\d+)(?:(,)(\d*))?\})/.exec(src.slice(i));
        if (!q) break;
        i += q[0].length;
        const [min, max] = q[0] === '*' ? [0, Infinity] : q[0] === '+' ? [1, Infinity] : q[0] === '?' ? [0, 1] : [Number(q[1]), q[2] ? (q[3] ? Number(q[3]) : Infinity) : Number(q[1])];
        const lazy = src[i] === '?';
        if (lazy) i++;
        if (x.t === 'assert' || x.t === 'look') fail('a quantified assertion');
        x = { t: 'rep', x, min, max, lazy };
      }
      xs.push(x);
    }
    return { t: 'cat', xs };
  };
  const atom = (): Node => {
    const c = src[i];
    if (c === '(') {
      let look: boolean | null = null;
      if (src.startsWith('(?:', i)) i += 3;
      else if (src.startsWith('(?=', i) || src.startsWith('(?!', i)) {
        look = src[i + 2] === '!';
        i += 3;
      } else if (src.startsWith('(?<=', i) || src.startsWith('(?<!', i)) fail('lookbehind is not supported');
      else if (src.startsWith('(?<', i)) i = src.indexOf('>', i) + 1;
      else if (src[i + 1] === '?') fail('unknown group');
      else i++;
      const x = alt();
      if (src[i] !== ')') fail('missing )');
      i++;
      return look === null ? x : { t: 'look', x, negate: look };
    }
    if (c === '[') {
      const start = i;
      for (i++; i < src.length && src[i] !== ']'; i++) if (src[i] === '\\') i++;
      if (src[i] !== ']') fail('missing ]');
      i++;
      return { t: 'char', test: atomTest(src.slice(start, i)) };
    }
    if (c === '^' || c === '$') {
      i++;
      return { t: 'assert', kind: c === '^' ? 'bol' : 'eol' };
    }
    if (c === '\\') {
      const n = src[i + 1];
      if (n === 'b' || n === 'B') {
        i += 2;
        return { t: 'assert', kind: n === 'b' ? 'word' : 'nonword' };
      }
      if (/[1-9k]/.test(n)) fail('backreferences are not supported');
      const m = /^\\(?:[pP]\{[^}]*\}|u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}(?:\\u[dD][c-fC-F][0-9a-fA-F]{2})?|x[0-9a-fA-F]{2}|c[a-zA-Z]|[\s\S])/u.exec(src.slice(i))!;
      i += m[0].length;
      return { t: 'char', test: atomTest(m[0]) };
    }
    if (c === '.') {
      i++;
      return { t: 'char', test: atomTest('.') };
    }
    const cp = src.codePointAt(i)!;
    i += cp > 0xffff ? 2 : 1;
    return { t: 'char', test: (x) => x === cp };
  };
  const node = alt();
  if (i < src.length) fail('unbalanced )');
  return node;
}

let looks = 0;

function compile(root: Node): Inst[] {
  const prog: Inst[] = [];
  const emit = (inst: Inst): number => {
    if (prog.length >= MAX_INSTS) throw new SyntaxError(`the pattern expands past ${MAX_INSTS} instructions`);
    prog.push(inst);
    return prog.length - 1;
  };
  const gen = (n: Node): void => {
    switch (n.t) {
      case 'char':
        emit({ op: 'char', test: n.test, next: prog.length + 1 });
        return;
      case 'assert':
        emit({ op: 'assert', kind: n.kind, next: prog.length + 1 });
        return;
      case 'look': {
        const sub = compile(n.x);
        emit({ op: 'look', prog: sub, negate: n.negate, next: prog.length + 1, id: looks++ });
        return;
      }
      case 'cat':
        for (const x of n.xs) gen(x);
        return;
      case 'alt': {
        // split L1, next; L1: x0; jmp end; next: split L2, ... ; the last alternative without a split
        const jumps: number[] = [];
        n.xs.forEach((x, k) => {
          if (k < n.xs.length - 1) {
            const s = emit({ op: 'split', x: prog.length + 1, y: -1 });
            gen(x);
            jumps.push(emit({ op: 'jmp', x: -1 }));
            (prog[s] as { y: number }).y = prog.length;
          } else gen(x);
        });
        for (const j of jumps) (prog[j] as { x: number }).x = prog.length;
        return;
      }
      case 'rep': {
        for (let k = 0; k < n.min; k++) gen(n.x);
        const order = (body: number, out: number): { x: number; y: number } => (n.lazy ? { x: out, y: body } : { x: body, y: out });
        if (n.max === Infinity) {
          const s = emit({ op: 'split', x: -1, y: -1 });
          gen(n.x);
          emit({ op: 'jmp', x: s });
          Object.assign(prog[s], order(s + 1, prog.length));
          return;
        }
        // (x(x(x)?)?)?: each optional copy skips to the end of all of them
        const splits: number[] = [];
        for (let k = n.min; k < n.max; k++) {
          splits.push(emit({ op: 'split', x: -1, y: -1 }));
          gen(n.x);
        }
        for (const s of splits) Object.assign(prog[s], order(s + 1, prog.length));
        return;
      }
    }
  };
  gen(root);
  emit({ op: 'match' });
  return prog;
}

const isWordCode = (s: string, i: number): boolean => {
  const c = s.charCodeAt(i);
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
};

/**
 * Runs `prog` over `s` from `from`: the first match a backtracking engine would report, as
 * [start, end], or null. `anchored`: only a match starting at `from`.
 */
function run(prog: Inst[], s: string, from: number, anchored: boolean, lookCache: Map<number, Map<number, boolean>>): [number, number] | null {
  const n = prog.length;
  const seen = new Int32Array(n).fill(-1);
  let stamp = 0;
  const holds = (inst: Inst, pos: number): boolean => {
    if (inst.op === 'assert') {
      if (inst.kind === 'bol') return pos === 0;
      if (inst.kind === 'eol') return pos === s.length;
      const b = (pos > 0 && isWordCode(s, pos - 1)) !== (pos < s.length && isWordCode(s, pos));
      return inst.kind === 'word' ? b : !b;
    }
    const l = inst as Extract<Inst, { op: 'look' }>;
    let cache = lookCache.get(l.id);
    if (!cache) lookCache.set(l.id, (cache = new Map()));
    let v = cache.get(pos);
    if (v === undefined) cache.set(pos, (v = run(l.prog, s, pos, true, lookCache) !== null));
    return v !== l.negate;
  };
  // the closure of pc at pos, appended to list in priority order (preorder: x before y)
  const add = (pcs: number[], starts: number[], pc0: number, start: number, pos: number): void => {
    const stack = [pc0];
    while (stack.length) {
      const pc = stack.pop()!;
      if (seen[pc] === stamp) continue;
      seen[pc] = stamp;
      const inst = prog[pc];
      switch (inst.op) {
        case 'jmp':
          stack.push(inst.x);
          break;
        case 'split':
          stack.push(inst.y, inst.x);
          break;
        case 'assert':
        case 'look':
          if (holds(inst, pos)) stack.push(inst.next);
          break;
        default:
          pcs.push(pc);
          starts.push(start);
      }
    }
  };
  let pcs: number[] = [];
  let starts: number[] = [];
  let match: [number, number] | null = null;
  for (let pos = from; ; ) {
    if (!match && (!anchored || pos === from)) {
      // a new start at pos: after every thread started earlier (lower priority)
      add(pcs, starts, 0, pos, pos);
    }
    if (!pcs.length) break;
    const cp = pos < s.length ? s.codePointAt(pos)! : -1;
    const next = pos + (cp > 0xffff ? 2 : 1);
    stamp++;
    const npcs: number[] = [];
    const nstarts: number[] = [];
    for (let k = 0; k < pcs.length; k++) {
      const inst = prog[pcs[k]];
      if (inst.op === 'match') {
        match = [starts[k], pos];
        break; // the threads after it have lower priority
      }
      if (cp >= 0 && (inst as Extract<Inst, { op: 'char' }>).test(cp)) add(npcs, nstarts, (inst as Extract<Inst, { op: 'char' }>).next, starts[k], next);
    }
    pcs = npcs;
    starts = nstarts;
    if (pos >= s.length) break; // nothing moves past the end
    pos = next;
  }
  return match;
}

/**
 * A RegExp whose exec runs the linear-time matcher: `exec`, `lastIndex`, `String.replace` and the
 * global flag work as for the RegExp it stands for (the spec's replace calls `exec`).
 */
export class LinearRegExp extends RegExp {
  private readonly prog: Inst[];

  constructor(source: string) {
    super(source, 'gu');
    this.prog = compile(parse(source));
  }

  override exec(s: string): RegExpExecArray | null {
    const from = this.lastIndex;
    if (from > s.length) {
      this.lastIndex = 0;
      return null;
    }
    const m = run(this.prog, s, from, false, new Map());
    if (!m) {
      this.lastIndex = 0;
      return null;
    }
    this.lastIndex = m[1];
    const out = [s.slice(m[0], m[1])] as unknown as RegExpExecArray;
    out.index = m[0];
    out.input = s;
    return out;
  }
}
