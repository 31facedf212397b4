// kiln: run and fine-tune transformer language models on the user's device.
export { KilnError, type KilnErrorCode } from './core/errors.js';
export { type DType, DTYPES, encode, decode } from './core/dtype.js';
export { Tensor, tidy, keep, type GradHook } from './core/tensor.js';
export { noGrad, isGradEnabled, customOp, backward, type CustomFunction, type FunctionCtx, type BackwardOptions } from './core/autograd.js';
export * from './core/ops.js';
export { init, use, getBackend, createBackend, probeBackends, setGpuProvider, type BackendProbe, type InitResult } from './core/runtime.js';
export type { Backend, BackendName, MemoryStats } from './backend/backend.js';
export { WasmBackend, wasmSimdSupported } from './backend/wasm/wasm-backend.js';
export { WebGPUBackend, type AdapterReport } from './backend/webgpu/webgpu-backend.js';
export { Optimizer, SGD, AdamW, type SGDOptions, type AdamWOptions } from './train/optim.js';
export * as nn from './nn/index.js';
export * as models from './models/index.js';
export * from './tokenizers/index.js';
export { packSequences, type PackOptions, type PackedRows, type PackStrategy } from './data/packing.js';
export { parseRows, tokenizeRows, shuffled, trainValidationSplit, type Row, type TokenizedDocument, type TokenizeOptions } from './data/dataset.js';
export { loadModel, type LoadedModel, type LoadOptions, type ModelFiles } from './models/load.js';
export { configFromHF, SUPPORTED_MODEL_TYPES } from './models/hf.js';
export * from './generation/index.js';
