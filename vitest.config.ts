import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1, execArgv: ['--expose-gc'] } }, // gc: the streaming test measures what is held, not what awaits collection
    testTimeout: 180_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
