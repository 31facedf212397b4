export { generateTokens, generateText, generateBatch, defaultStopIds, type GenerateOptions, type TokenStep, type TextChunk, type FinishReason } from './generate.js';
export { DecodingSession, type SessionOptions, type SessionStep } from './session.js';
export { processLogits, pickToken, Rng, DeviceSampler, type SamplingOptions } from './sampling.js';
export { chatCompletion, chatCompletionStream, type ChatCompletionRequest, type ChatCompletion, type ChatCompletionChunk } from './openai.js';
