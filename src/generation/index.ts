export { generateTokens, generateText, defaultStopIds, type GenerateOptions, type TokenStep, type TextChunk, type FinishReason } from './generate.js';
export { processLogits, pickToken, Rng, type SamplingOptions } from './sampling.js';
