export * from './module.js';
export * from './init.js';
export * from './layers.js';
export * from './norm.js';
export * from './positional.js';
export * from './mlp.js';
export * from './attention.js';
export * from './checkpoint.js';
