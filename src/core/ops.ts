// The functional op surface (torch names in camelCase). Importing this module also installs the
// Tensor methods.
import './methods.js';
export * from './ops/creation.js';
export * from './ops/index.js';
export * from './ops/loss.js';
export * from './ops/matmul.js';
export { abs, add, cast, ceil, clamp, cos, div, eq, exp, floor, ge, gelu, gt, log, lt, maskedFill, maximum, minimum, mul, neg, pow, relu, round, rsqrt, sigmoid, sign, silu, siluMul, sin, sqrt, square, sub, tanh, where } from './ops/pointwise.js';
export { argmax, argmin, cumsum, type CumsumOptions, logSoftmax, logsumexp, max, mean, min, softmax, std, sum, sumTo, variance, type ReduceOptions, type VarOptions } from './ops/reduce.js';
export * from './ops/shape.js';
