// The fuzz suite: seeded mutations of safetensors, GGUF, config.json, shard indexes,
// tokenizer.json and generation options, each case in a worker process with a timeout and a memory
// watch. A case must end in a KilnError or a correct result; anything else is a failure, written
// to .cache/fuzz-failures.jsonl with the command that replays it. Exits 1 on any failure.
//
//   node scripts/fuzz.mjs [--cases N] [--seed S] [--targets a,b] [--timeout MS] [--budget S]
//   node scripts/fuzz.mjs --target gguf --seed S --case I     one case, in detail
//   node scripts/fuzz.mjs --self-test                         the harness must flag deliberate failures
// Env: FUZZ_CASES (per target, default 200), FUZZ_SEED (default 1), FUZZ_BUDGET_S (default 200).
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FAILURES, TARGETS, makeCase, runCases, summarize } from '../tests/fuzz/harness.mjs';
import { selfTestCases } from '../tests/fuzz/selftest.mjs';

const { values: a } = parseArgs({
  options: {
    cases: { type: 'string' }, seed: { type: 'string' }, targets: { type: 'string' }, target: { type: 'string' }, case: { type: 'string' },
    timeout: { type: 'string' }, budget: { type: 'string' }, workers: { type: 'string' }, 'self-test': { type: 'boolean' }, quiet: { type: 'boolean' },
  },
});
// the workers run the built bundle: say so when it is missing or older than the sources
if (!existsSync('dist/kiln.js')) {
  console.error('fuzz: dist/kiln.js is missing: run `npm run build` first');
  process.exit(1);
}
const newest = (d) => Math.max(...readdirSync(d, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(`${d}/${e.name}`) : statSync(`${d}/${e.name}`).mtimeMs)));
if (newest('src') > statSync('dist/kiln.js').mtimeMs) console.warn('fuzz: warning: src/ is newer than dist/kiln.js (run `npm run build`)');
process.env.XDG_RUNTIME_DIR ??= '/tmp/kiln-xdg';
mkdirSync(process.env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
const seed = Number(a.seed ?? process.env.FUZZ_SEED ?? 1);
const opts = { seed, timeoutMs: Number(a.timeout ?? 4000), workers: Number(a.workers ?? 2), budgetS: Number(a.budget ?? process.env.FUZZ_BUDGET_S ?? 200) };

if (a['self-test']) {
  const n = selfTestCases({ checkpoints: { llama: {} }, tokenizers: {} }).length;
  const res = await runCases(Array.from({ length: n }, (_, index) => ({ target: 'selftest', index })), { ...opts, budgetS: Infinity });
  let bad = 0;
  for (const r of res) {
    const ok = r.class === r.want;
    bad += ok ? 0 : 1;
    console.log(`${ok ? 'ok  ' : 'MISS'} ${r.desc}: wanted ${r.want}, got ${r.class} (${String(r.detail ?? '').slice(0, 100)})`);
  }
  console.log(JSON.stringify({ fuzzSelfTest: { cases: res.length, misclassified: bad } }));
  process.exit(bad ? 1 : 0);
}

if (a.case !== undefined) {
  // one case, in detail
  const target = a.target ?? 'safetensors';
  const c = await makeCase(target, seed, Number(a.case));
  console.log(`${target} seed ${seed} case ${a.case}: ${c.desc}  (expect ${c.expect})`);
  const [r] = await runCases([{ target, index: Number(a.case) }], { ...opts, budgetS: Infinity });
  console.log(`-> ${r.class}${r.code ? ` (${r.code})` : ''}: ${r.detail ?? ''}\n${r.stack ?? ''}`);
  process.exit(FAILURES.includes(r.class) ? 1 : 0);
}

const targets = (a.target ?? a.targets)?.split(',') ?? TARGETS;
const n = Number(a.cases ?? process.env.FUZZ_CASES ?? 200);
// interleaved, so a budget cut takes from every target alike
const list = [];
for (let index = 0; index < n; index++) for (const target of targets) list.push({ target, index });
const t0 = performance.now();
let done = 0;
const results = await runCases(list, {
  ...opts,
  onResult: (r) => {
    done++;
    if (!a.quiet && FAILURES.includes(r.class)) console.log(`FAIL ${r.class.padEnd(16)} ${r.target} #${r.index}: ${r.desc.slice(0, 160)}\n     ${String(r.detail ?? '').slice(0, 240)}`);
    if (!a.quiet && done % 100 === 0) console.log(`... ${done}/${list.length} cases, ${Math.round((performance.now() - t0) / 1000)} s`);
  },
});
const seconds = Math.round((performance.now() - t0) / 1000);
const by = summarize(results);

const cols = ['cases', 'ok', 'kiln-error', 'skipped', 'failures'];
console.log(`\nfuzz seed ${seed}, ${n} cases per target, ${seconds} s`);
console.log(['target'.padEnd(12), ...cols.map((c) => c.padStart(10)), '  failures by class'].join(''));
const total = { cases: 0, ok: 0, 'kiln-error': 0, skipped: 0, failures: 0, byClass: {} };
for (const [t, s] of Object.entries(by)) {
  for (const c of cols) total[c] += s[c];
  for (const [k, v] of Object.entries(s.byClass)) total.byClass[k] = (total.byClass[k] ?? 0) + v;
  console.log([t.padEnd(12), ...cols.map((c) => String(s[c]).padStart(10)), '  ', Object.entries(s.byClass).map(([k, v]) => `${k} ${v}`).join(', ')].join(''));
}
console.log(['total'.padEnd(12), ...cols.map((c) => String(total[c]).padStart(10)), '  ', Object.entries(total.byClass).map(([k, v]) => `${k} ${v}`).join(', ')].join(''));

const failures = results.filter((r) => FAILURES.includes(r.class));
// the same bug found many times reads as one: failures grouped by class and message (numbers and paths blanked)
const groups = new Map();
for (const r of failures) {
  const sig = `${r.class} ${r.target}: ${String(r.detail ?? '').replace(/\/tmp\/\S+/g, 'PATH').replace(/-?\d[\d.e+]*/g, 'N').slice(0, 110)}`;
  if (!groups.has(sig)) groups.set(sig, { n: 0, r });
  groups.get(sig).n++;
}
if (failures.length) {
  console.log(`\n${groups.size} distinct failures (class, target, message), each with one case that shows it:`);
  for (const [sig, { n, r }] of [...groups].sort((x, y) => y[1].n - x[1].n)) console.log(`${String(n).padStart(4)}  ${sig}\n        e.g. #${r.index} ${r.desc.slice(0, 140)}`);
}
mkdirSync('.cache', { recursive: true });
writeFileSync('.cache/fuzz-failures.jsonl', failures.map((r) => JSON.stringify({ target: r.target, seed, index: r.index, class: r.class, desc: r.desc, expect: r.expect, detail: r.detail, code: r.code, stack: r.stack, repro: `node scripts/fuzz.mjs --target ${r.target} --seed ${seed} --case ${r.index}` })).join('\n') + (failures.length ? '\n' : ''));
const slow = results.filter((r) => r.slow).length;
console.log(JSON.stringify({ fuzz: { seed, casesPerTarget: n, seconds, ...Object.fromEntries(cols.map((c) => [c, total[c]])), distinctFailures: groups.size, byClass: total.byClass, slowButDone: slow, targets: by } }));
if (failures.length) console.log(`${failures.length} failures written to .cache/fuzz-failures.jsonl`);
process.exit(failures.length ? 1 : 0);
