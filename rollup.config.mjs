// Bundles the SDK (dist/kiln.js: browsers, Node, Deno; the wasm kernels are embedded) and the
// CLI (dist/cli.js). The `webgpu` package is loaded at run time in Node only, so it stays external;
// @huggingface/jinja (chat templates) is bundled, so browsers and Deno need no import map.
import { nodeResolve } from '@rollup/plugin-node-resolve';
import esbuild from 'rollup-plugin-esbuild';

const external = ['webgpu', 'comlink', /^node:/];
const plugins = [nodeResolve({ resolveOnly: ['@huggingface/jinja'] }), esbuild({ target: 'es2022', minify: false })];

export default [
  { input: 'src/index.ts', output: { file: 'dist/kiln.js', format: 'es', sourcemap: 'hidden' }, external, plugins },
  { input: 'src/cli/main.ts', output: { file: 'dist/cli.js', format: 'es', sourcemap: 'hidden' }, external, plugins },
];
