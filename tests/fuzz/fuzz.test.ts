// The fuzz suite inside `npm test`: the harness must flag deliberate failures (a hang, a
// TypeError, a trap, a crash, NaN logits, runaway memory, a broken process), then a bounded run
// over every target must end each case in a KilnError or a correct result. The full run is
// `npm run test:fuzz` (scripts/fuzz.mjs); both need dist/ (`npm run build`).
import { describe, expect, it } from 'vitest';
import { FAILURES, TARGETS, runCases } from './harness.mjs';
import { selfTestCases } from './selftest.mjs';

interface Outcome { target: string; index: number; class: string; want?: string; desc: string; detail?: string }

describe('fuzz', () => {
  it('the harness classifies deliberate failures', { timeout: 120_000 }, async () => {
    const n = selfTestCases({ checkpoints: { llama: {} }, tokenizers: {} }).length;
    const res = (await runCases(Array.from({ length: n }, (_, index) => ({ target: 'selftest', index })), { seed: 1, workers: 1 })) as Outcome[];
    expect(res.map((r) => `${r.desc}: ${r.class}`)).toEqual(res.map((r) => `${r.desc}: ${r.want}`));
  });

  it('mutated files and options end in a KilnError or a correct result', { timeout: 600_000 }, async () => {
    const cases = Number(process.env.FUZZ_CASES ?? 15);
    const seed = Number(process.env.FUZZ_SEED ?? 1);
    const list = Array.from({ length: cases }, (_, index) => TARGETS.map((target: string) => ({ target, index }))).flat();
    const res = (await runCases(list, { seed, workers: 1 })) as Outcome[];
    const failed = res.filter((r) => FAILURES.includes(r.class)).map((r) => `${r.class}: ${r.target} #${r.index} ${r.desc.slice(0, 160)} -> ${String(r.detail).slice(0, 160)} (node scripts/fuzz.mjs --target ${r.target} --seed ${seed} --case ${r.index})`);
    expect(failed).toEqual([]);
    expect(res.filter((r) => r.class === 'ok').length).toBeGreaterThan(0);
  });
});
