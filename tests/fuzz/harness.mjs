// The fuzz harness: makes each case (target, seed, index) from a seeded generator, writes its files
// to a folder of its own, runs it in a worker process (2 at most) with a timeout and a memory
// watch, and classifies the outcome. A worker that crashes, hangs or fails a case is replaced, so
// one case never poisons the next. Workers import the built bundle: run `npm run build` first.
import { fork, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Rng } from './rng.mjs';
import { checkpointTargets, loadCheckpoints } from './targets/checkpoint.mjs';
import { ggufTargets, loadGGUFs } from './targets/gguf.mjs';
import { baseTokenizers, tokenizerTargets } from './targets/tokenizer.mjs';
import { generationTargets } from './targets/generation.mjs';
import { selfTestCases } from './selftest.mjs';

const root = new URL('../..', import.meta.url).pathname;
export const TARGETS = ['safetensors', 'gguf', 'config', 'shards', 'tokenizer', 'generation'];
/** A WebGPU case's time allowance over a wasm one's: SwiftShader compiles each new pipeline on the CPU. */
const WEBGPU_SLOWER = 5;
export const FAILURES = ['exception', 'trap', 'crash', 'timeout', 'memory', 'nan', 'bad-result', 'poisoned', 'accepted-invalid', 'rejected-valid'];

let bases = null;
async function loadBases() {
  if (bases) return bases;
  const kiln = await import(join(root, 'dist/kiln.js'));
  const ck = join(root, 'tests/golden/checkpoints');
  bases = { checkpoints: loadCheckpoints(ck), ggufs: loadGGUFs(join(ck, 'gguf')), tokenizers: baseTokenizers(kiln) };
  return bases;
}

/** The case (target, seed, index): { desc, kind, files, job, expect[, want, timeoutMs, maxRssMb] }. */
export async function makeCase(target, seed, index) {
  const b = await loadBases();
  const rng = new Rng(target, seed, index);
  const c = target === 'selftest' ? selfTestCases(b)[index]
    : target === 'gguf' ? ggufTargets.gguf(rng, b.ggufs)
    : target === 'tokenizer' ? tokenizerTargets.tokenizer(rng, b.tokenizers)
    : target === 'generation' ? generationTargets.generation(rng)
    : checkpointTargets[target]?.(rng, b.checkpoints);
  if (!c) throw new Error(`unknown fuzz target '${target}' (${[...TARGETS, 'selftest'].join(', ')})`);
  return { target, seed, index, ...c };
}

/** Writes a case's files: bytes, FIFOs, symlinks and folders; @CASE@ in a .json file is the case's folder. */
export function writeCase(dir, files) {
  for (const [name, f] of Object.entries(files)) {
    const p = join(dir, name);
    mkdirSync(dirname(p), { recursive: true });
    if (f instanceof Uint8Array) writeFileSync(p, name.endsWith('.json') ? Buffer.from(Buffer.from(f).toString('utf8').replaceAll('@CASE@', dir)) : f);
    else if (f.fifo) {
      if (spawnSync('mkfifo', [p]).status !== 0) throw new Error(`mkfifo ${p} failed`);
    } else if (f.symlink) symlinkSync(f.symlink, p);
    else if (f.dir) mkdirSync(p, { recursive: true });
  }
}

const rssMb = (pid) => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
};

/** CPU seconds a process has used (user + system), from /proc; null where there is no /proc. */
const cpuSeconds = (pid) => {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return null;
  }
};

class Worker {
  constructor(opts) {
    this.opts = opts;
    this.cases = 0;
    this.stderr = '';
    this.proc = fork(join(root, 'tests/fuzz/worker.mjs'), [], {
      execArgv: [`--max-old-space-size=${opts.heapMb}`],
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp/kiln-xdg' },
    });
    this.proc.stdout.on('data', () => {});
    this.proc.stderr.on('data', (d) => (this.stderr = (this.stderr + d).slice(-4000)));
    this.exited = new Promise((res) => this.proc.on('exit', (code, signal) => res({ code, signal })));
    this.ready = new Promise((res, rej) => {
      this.proc.once('message', (m) => (m.ready ? res() : rej(new Error('worker did not start'))));
      this.exited.then(({ code, signal }) => rej(new Error(`a fuzz worker exited while starting (${code ?? signal}): ${this.stderr.slice(-1000)}`)));
    });
    this.ready.catch(() => {});
    this.strays = [];
    this.proc.on('message', (m) => m.id === -1 && this.strays.push(m.stray));
  }
  kill() {
    try {
      this.proc.kill('SIGKILL');
    } catch {}
  }

  /** Runs one case: resolves to the worker's reply, or { status: timeout | memory | crash }. */
  async run(c, dir) {
    await this.ready;
    this.cases++;
    this.stderr = '';
    const id = this.cases;
    const timeoutMs = c.timeoutMs ?? this.opts.timeoutMs * (c.job.backend === 'webgpu' ? WEBGPU_SLOWER : 1);
    const maxRss = c.maxRssMb ?? this.opts.maxRssMb;
    const t0 = performance.now();
    let timer;
    let poll;
    let peak = 0;
    const cpu0 = cpuSeconds(this.proc.pid);
    const cpuAt = []; // [ms, cpu seconds], to tell a blocked or spinning process from a starved one
    const outcome = await new Promise((resolve) => {
      const onMsg = (m) => m.id === id && resolve(m);
      this.proc.on('message', onMsg);
      timer = setTimeout(() => {
        const now = performance.now();
        const cpu = cpuSeconds(this.proc.pid);
        const before = cpuAt.find(([t]) => t >= now - 1000);
        // spinning: it had the CPU for half the time (wasm cases need well under a second of it;
        // WebGPU's first pipelines on SwiftShader may take many); blocked: no CPU in the last second
        const spinning = c.job.backend !== 'webgpu' && cpu !== null && cpu0 !== null && cpu - cpu0 > timeoutMs / 2000;
        const blocked = cpu !== null && before && cpu - before[1] < 0.02;
        resolve({ status: 'timeout', detail: `no answer in ${timeoutMs} ms${spinning ? ', busy on the CPU' : blocked ? ', blocked (no CPU used in its last second)' : ''}`, sure: spinning || blocked });
      }, timeoutMs);
      poll = setInterval(() => {
        const r = rssMb(this.proc.pid);
        peak = Math.max(peak, r);
        cpuAt.push([performance.now(), cpuSeconds(this.proc.pid)]);
        if (cpuAt.length > 80) cpuAt.shift();
        if (r > maxRss) resolve({ status: 'memory', detail: `resident memory ${Math.round(r)} MB > ${maxRss} MB` });
      }, 25);
      this.exited.then(({ code, signal }) => {
        const oom = /heap out of memory|Reached heap limit|Array buffer allocation failed|Cannot allocate/.test(this.stderr);
        resolve({ status: oom ? 'memory' : 'crash', detail: `worker exited (${signal ?? `code ${code}`}): ${this.stderr.trim().split('\n').slice(-4).join(' | ').slice(0, 400)}` });
      });
      this.proc.send({ id, job: c.job, dir });
      this.onMsg = onMsg;
    });
    clearTimeout(timer);
    clearInterval(poll);
    this.proc.off('message', this.onMsg);
    return { ...outcome, ms: Math.round(performance.now() - t0), peakRssMb: Math.round(peak) };
  }
}

/** A worker's reply and the case's expectation -> the outcome's class. */
export function classify(c, r) {
  if (r.status === 'ok' && c.expect === 'invalid') return 'accepted-invalid';
  if (r.status === 'kiln-error' && c.expect === 'valid') return 'rejected-valid';
  return r.status;
}

/**
 * Runs cases [{target, index}] for one seed; returns the outcomes in case order.
 * opts: seed, workers (2), timeoutMs, maxRssMb, heapMb, budgetS (stop dispatching past it), onResult.
 */
export async function runCases(list, opts) {
  const o = { workers: 2, timeoutMs: 4000, maxRssMb: 2048, heapMb: 1024, budgetS: Infinity, recycleEvery: 30, ...opts };
  const base = mkdtempSync(join(tmpdir(), 'kiln-fuzz-'));
  const deadline = performance.now() + o.budgetS * 1000;
  const results = new Array(list.length);
  let next = 0;
  const pool = Array.from({ length: Math.min(o.workers, list.length) }, () => null);
  const lane = async (w) => {
    for (;;) {
      const i = next++;
      if (i >= list.length) break;
      const { target, index } = list[i];
      const c = await makeCase(target, o.seed, index);
      if (performance.now() > deadline) {
        results[i] = { ...c, files: undefined, class: 'skipped', detail: 'past the time budget' };
        continue;
      }
      pool[w] ??= new Worker(o);
      const dir = join(base, `${target}-${index}`);
      writeCase(dir, c.files);
      let r = await pool[w].run(c, dir);
      if (r.status === 'timeout' && !r.sure && !c.timeoutMs && o.confirmTimeouts !== false) {
        // a timeout that may be a busy machine (the worker neither spun nor sat blocked) is
        // confirmed in a fresh worker with twice the time
        pool[w].kill();
        pool[w] = new Worker(o);
        const again = await pool[w].run({ ...c, timeoutMs: 2 * o.timeoutMs * (c.job.backend === 'webgpu' ? WEBGPU_SLOWER : 1) }, dir);
        r = again.status === 'timeout' ? { ...again, detail: `no answer in ${o.timeoutMs} ms, nor in ${2 * o.timeoutMs} ms in a fresh worker` } : { ...again, slow: true };
      }
      const cls = classify(c, r);
      results[i] = { ...c, files: undefined, class: cls, ...r };
      rmSync(dir, { recursive: true, force: true });
      o.onResult?.(results[i]);
      // a failed case may have left the process in any state: the next case gets a fresh one
      if (FAILURES.includes(cls) || pool[w].cases >= o.recycleEvery) {
        pool[w].kill();
        pool[w] = null;
      } else if (pool[w].strays.length) {
        results[i] = { ...results[i], class: 'exception', detail: `after the case returned: ${pool[w].strays[0].detail}` };
        pool[w].kill();
        pool[w] = null;
      }
    }
  };
  try {
    await Promise.all(pool.map((_, w) => lane(w)));
  } finally {
    for (const w of pool) w?.kill();
    rmSync(base, { recursive: true, force: true });
  }
  return results;
}

/** Counts per target: cases, ok, kiln-error, skipped and each failure class. */
export function summarize(results) {
  const by = {};
  for (const r of results) {
    const t = (by[r.target] ??= { cases: 0, ok: 0, 'kiln-error': 0, skipped: 0, failures: 0, byClass: {}, kilnCodes: {} });
    t.cases++;
    if (r.class === 'ok' || r.class === 'kiln-error' || r.class === 'skipped') t[r.class]++;
    else {
      t.failures++;
      t.byClass[r.class] = (t.byClass[r.class] ?? 0) + 1;
    }
    if (r.class === 'kiln-error') t.kilnCodes[r.code] = (t.kilnCodes[r.code] ?? 0) + 1;
  }
  return by;
}
