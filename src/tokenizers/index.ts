export { Tokenizer, DecodeStream } from './tokenizer.js';
export type { Encoding, EncodeOptions, BatchOptions, TruncationOptions, PaddingOptions, DecodeOptions } from './tokenizer.js';
export type { AddedToken } from './added.js';
export type { ChatMessage, ChatTemplateOptions } from './chat.js';
export { trainBpe } from './train.js';
export type { TrainBpeOptions } from './train.js';
