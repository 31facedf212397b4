// Uniform layouts, in 32-bit words. This file is valid AssemblyScript and TypeScript: the AS
// kernels read their uniforms at these indices and src/kernels/* writes them (and the WGSL reads
// them) at the same ones, so the two backends cannot drift apart.
export const MAX_RANK = 8;

// pointwise: out = f(in0, in1, in2) over a broadcast shape, every operand a strided view
export const PW_N = 0;
export const PW_RANK = 1;
export const PW_OP = 2;
export const PW_FAST = 3; // 1 when every operand is f32 and contiguous over the same shape
export const PW_OFF = 4; // 4 words: out, in0, in1, in2 element offsets
export const PW_DT = 8; // 4 words: dtype codes of out, in0, in1, in2
export const PW_SHAPE = 12; // MAX_RANK words
export const PW_STRIDES = 20; // 4 x MAX_RANK words: out, in0, in1, in2
export const PW_P0 = 52; // f32
export const PW_P1 = 53; // f32
export const PW_WORDS = 56;

// matmul: C (batch, M, N) contiguous = A (batch, M, K) @ B (batch, K, N), A and B strided
export const MM_BATCH = 0;
export const MM_M = 1;
export const MM_N = 2;
export const MM_K = 3;
export const MM_OFF_A = 4;
export const MM_OFF_B = 5;
export const MM_OFF_C = 6;
export const MM_SA = 8; // 3 words: batch, m, k strides of A
export const MM_SB = 11; // 3 words: batch, k, n strides of B
export const MM_WORDS = 16;

// row-wise reductions and softmax over contiguous (rows, R)
export const RD_ROWS = 0;
export const RD_R = 1;
export const RD_OP = 2;
export const RD_OFF = 3;
export const RD_WORDS = 4;
export const REDUCE_SUM = 0;
export const REDUCE_MAX = 1;
export const REDUCE_MIN = 2;
export const REDUCE_ARGMAX = 3;
export const REDUCE_LSE = 4;
export const REDUCE_ARGMIN = 5;

// gather / scatter-add along one axis of a contiguous (outer, D, inner) tensor
export const GA_OUTER = 0;
export const GA_L = 1;
export const GA_INNER = 2;
export const GA_D = 3;
export const GA_MODE = 4; // 0: index is 1-D of length L (indexSelect); 1: index is (outer, L, inner) (gather)
export const GA_OFF_IN = 5;
export const GA_OFF_IDX = 6;
export const GA_WORDS = 8;

// cross-entropy over contiguous logits (N, C) with i32 targets (N)
export const CE_N = 0;
export const CE_C = 1;
export const CE_IGNORE = 2; // i32
export const CE_OFF_X = 3;
export const CE_OFF_T = 4;
export const CE_SMOOTH = 5; // f32 label smoothing
export const CE_WORDS = 8;

// cumulative sum along the middle axis of a contiguous (outer, L, inner) view
export const SC_OUTER = 0;
export const SC_L = 1;
export const SC_INNER = 2;
export const SC_REVERSE = 3; // 1: from the end (the backward of a forward scan)
export const SC_EXCLUSIVE = 4; // 1: each element gets the sum of the ones before it
export const SC_OFF = 5;
export const SC_WORDS = 8;

// fused attention over contiguous q (B, H, Tq, D), k and v (B, Hkv, Tk, D)
export const FA_B = 0;
export const FA_H = 1;
export const FA_HKV = 2;
export const FA_TQ = 3;
export const FA_TK = 4;
export const FA_D = 5;
export const FA_SCALE = 6; // f32
export const FA_FLAGS = 7; // FA_CAUSAL | FA_SEG
export const FA_WINDOW = 8; // sliding window (0: none)
export const FA_OFF_Q = 9;
export const FA_OFF_K = 10;
export const FA_OFF_V = 11;
export const FA_SOFTCAP = 12; // f32: cap * tanh(s / cap) on scores (0: none)
export const FA_OFF_BM = 13; // where the block mask starts in the aux buffer
export const FA_OFF_HP = 14; // where the per-head f32 parameters start in the aux buffer
export const FA_NKB = 15; // key blocks per row of the block mask
export const FA_P = 16; // 4 f32 parameters of the score/mask modifiers
export const FA_DROP_THRESHOLD = 20; // u32: a probability is dropped when its hash falls below this
export const FA_DROP_SEED = 21; // u32
export const FA_DROP_SCALE = 22; // f32: 1 / (1 - p) for the kept ones
export const FA_KV_CAP = 23; // forward only: rows per (batch, head) in the K/V buffers, a pre-allocated cache (0: Tk)
export const FA_WORDS = 24;
export const FA_CAUSAL = 1;
/** segment ids (B, Tq) then (B, Tk) at the start of the aux buffer: a key is visible when its segment equals the query's and is >= 0 (padding is -1) */
export const FA_SEG = 2;
/** a score modifier (FlexAttention score_mod) is applied */
export const FA_SCOREMOD = 4;
/** a mask modifier (FlexAttention mask_mod) is applied */
export const FA_MASKMOD = 8;
/** the aux buffer holds a (query block, key block) mask: blocks with 0 are skipped */
export const FA_BLOCKMASK = 16;
/** attention dropout from a counter-based hash of (seed, b, h, q, kv): the backward regenerates the mask */
export const FA_DROPOUT = 32;
/** flex block sizes (queries and keys) the block mask is computed for */
export const FA_BLOCK = 64;

// row normalisation (RMSNorm, LayerNorm) over the last dim of a contiguous (rows, D) view
export const NM_ROWS = 0;
export const NM_D = 1;
export const NM_EPS = 2; // f32
export const NM_LAYER = 3; // 1: LayerNorm (subtract the mean); 0: RMSNorm
export const NM_OFFSET = 4; // 1: scale by (1 + w) (Gemma)
export const NM_HAS_W = 5;
export const NM_HAS_B = 6;
export const NM_OFF_X = 7;
export const NM_WORDS = 8;

// quantized matmul: y (M, N) = x (M, K) @ dequant(W)^T, W's blocks as assembly/quant.ts lays them out;
// dequantize: y (N, K) = dequant(W), the format in QM_TYPE
export const QM_M = 0;
export const QM_N = 1;
export const QM_K = 2;
export const QM_OFF_X = 3;
export const QM_TYPE = 4; // 0 Q8_0, 1 Q4_0, 2 Q4_K, 3 Q6_K
export const QM_WORDS = 5;

// rotary position embedding, fused: y (B, H, T, D) contiguous = rope(x view) at position ids
export const RP_B = 0;
export const RP_H = 1;
export const RP_T = 2;
export const RP_D = 3;
export const RP_RD = 4; // rotary dims (the rest pass through)
export const RP_OFF_X = 5;
export const RP_SX = 6; // 4 words: strides of x over (B, H, T, D)
export const RP_OFF_P = 10;
export const RP_SPB = 11; // position ids' stride over B (0: one row shared by the batch)
export const RP_INTERLEAVED = 12; // 1: pairs (2i, 2i+1) (GPT-J); 0: halves (i, i + rd/2) (Llama, NeoX)
export const RP_SIGN = 13; // f32: 1 forward, -1 backward (the inverse rotation)
export const RP_NPOS = 14; // rows of the cos / sin tables: a position id outside them is ERR_INDEX
export const RP_WORDS = 15;

// sampling the next token on the device, one row of logits per workgroup (src/kernels/sample.ts)
export const SP_V = 0;
export const SP_OFF = 1; // element offset of the logits (rows of V follow one another)
export const SP_GREEDY = 2; // 1: argmax of the penalized scores (no temperature or warpers)
export const SP_TOPK = 3; // 0: off
export const SP_TEMP = 4; // f32
export const SP_TOPP = 5; // f32, 1: off
export const SP_MINP = 6; // f32, 0: off
export const SP_REP = 7; // f32 repetition penalty, 1: off
export const SP_FREQ = 8; // f32
export const SP_PRES = 9; // f32
export const SP_ROWS = 10;
export const SP_WORDS = 11;

// error codes kernels report (WASM: return value; WebGPU: the status buffer)
export const ERR_INDEX = 1;
