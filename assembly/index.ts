// kiln's WebAssembly kernels. Memory is owned by the host (src/backend/wasm): it hands in raw
// pointers and a uniform block laid out as in ./layout. No AssemblyScript runtime is used.
export { pointwise } from './pointwise.gen';
export { matmul, matmulScratchBytes } from './matmul';
export { reduceRows, softmaxRows } from './reduce';
export { gather, scatterAdd } from './gather';
export { crossEntropyFwd, crossEntropyBwd } from './loss';

/** First byte the host allocator may use. */
export function heapBase(): usize { return (__heap_base + 63) & ~(<usize>63); }
export { cumsum } from './scan';
export { flashFwd, flashBwdDq, flashBwdDkv, flashBwd } from './attention';
export { normFwd, normBwd } from './norm';
export { qmatmul8, qmatmul4, qmatmulQ4K, qmatmulQ6K, qdequant } from './quant';
export { sample } from './sample';
export { rope } from './rope';
