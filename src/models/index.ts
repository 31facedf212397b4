export * from './config.js';
export * from './transformer.js';
