#!/usr/bin/env node
// The kiln command line: see `kiln help`. Built from src/cli by `npm run build`.
import { main } from '../dist/cli.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    // main never throws; this is the last guard, still one line
    console.error(`kiln: internal error: ${e?.message ?? e}`);
    process.exit(1);
  },
);
