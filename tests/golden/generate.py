#!/usr/bin/python3
"""Writes tests/golden/ops.json: seeded inputs, outputs and input gradients from PyTorch.

Each case runs one op; the gradient is of sum(out * upstream) for a seeded upstream tensor, so
every element's gradient is exercised. Run with Debian's python3-torch (1.13):
    /usr/bin/python3 tests/golden/generate.py
CI never runs this: the JSON it writes is committed.
"""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.manual_seed(0)
G = torch.Generator().manual_seed(1234)
CASES = []


def rnd(*shape, lo=None, hi=None):
    shape = tuple(shape)
    if lo is not None:
        return lo + (hi - lo) * torch.rand(shape, generator=G)
    return torch.randn(shape, generator=G, dtype=torch.float32)


def enc(t):
    if t.dtype in (torch.int64, torch.int32):
        return {"shape": list(t.shape), "dtype": "i32", "data": [int(v) for v in t.flatten().tolist()]}
    # JSON has no inf/nan: those travel as strings
    num = lambda v: float("%.9g" % v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return {"shape": list(t.shape), "dtype": "f32", "data": [num(v) for v in t.detach().flatten().tolist()]}


def case(name, op, inputs, fn, args=None, grad=True, prep=None, tol=None):
    """inputs: list of tensors (float ones get gradients); prep: per-input view to apply first ('t': transpose last two dims)."""
    leaves = [x.clone().requires_grad_(grad and x.dtype == torch.float32) for x in inputs]
    views = []
    for i, x in enumerate(leaves):
        p = (prep or {}).get(str(i))
        views.append(x.transpose(-2, -1) if p == "t" else x)
    out = fn(*views)
    entry = {"name": name, "op": op, "args": args or {}, "inputs": [enc(x) for x in inputs], "output": enc(out)}
    if prep:
        entry["prep"] = prep
    if tol:
        entry["tol"] = tol
    if grad and out.dtype == torch.float32 and any(l.requires_grad for l in leaves):
        up = rnd(*out.shape)
        (out * up).sum().backward()
        entry["upstream"] = enc(up)
        entry["grads"] = [enc(l.grad) if l.grad is not None else None for l in leaves]
    CASES.append(entry)


# ---- unary pointwise
unary = {
    "neg": (torch.neg, None), "exp": (torch.exp, None), "log": (torch.log, (0.1, 3.0)),
    "sqrt": (torch.sqrt, (0.1, 3.0)), "rsqrt": (torch.rsqrt, (0.1, 3.0)), "abs": (torch.abs, None),
    "tanh": (torch.tanh, None), "sigmoid": (torch.sigmoid, None), "relu": (torch.relu, None),
    "silu": (F.silu, None), "gelu": (F.gelu, None), "geluTanh": (lambda x: F.gelu(x, approximate="tanh"), None),
    "square": (torch.square, None), "sin": (torch.sin, None), "cos": (torch.cos, None),
}
for op, (fn, rng) in unary.items():
    x = rnd(3, 7) * 2 if rng is None else rnd(3, 7, lo=rng[0], hi=rng[1])
    # WGSL bounds sin/cos only to 2^-11 absolute error on [-pi, pi] (SwiftShader uses that slack)
    case(f"{op}[3,7]", op, [x], fn, tol={"atol": 5e-4, "rtol": 1e-4} if op in ("sin", "cos") else None)
case("clamp[5,3]", "clamp", [rnd(5, 3)], lambda x: torch.clamp(x, -0.5, 0.7), {"min": -0.5, "max": 0.7})
case("powScalar2.5[4,4]", "powScalar", [rnd(4, 4, lo=0.2, hi=2.0)], lambda x: x ** 2.5, {"p": 2.5})
case("powScalar3neg[4,4]", "powScalar", [rnd(4, 4)], lambda x: x ** 3, {"p": 3})
case("exp[1]", "exp", [rnd(1)], torch.exp)
case("tanh[big]", "tanh", [torch.tensor([-60.0, -20.0, -1.0, 0.0, 1.0, 20.0, 60.0])], torch.tanh)
case("exp[transposed 6,5]", "exp", [rnd(6, 5)], torch.exp, prep={"0": "t"})

# ---- binary pointwise with broadcasting
binary = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "maximum": torch.maximum, "minimum": torch.minimum}
shapes = [((2, 1, 5), (3, 1)), ((4, 1, 3, 1), (1, 5, 1, 2)), ((7,), (7,)), ((1,), (2, 3)), ((2, 3, 4), ())]
for op, fn in binary.items():
    for sa, sb in shapes:
        b = rnd(*sb) if op != "div" else rnd(*sb, lo=0.5, hi=2.0)
        case(f"{op}{list(sa)}x{list(sb)}", op, [rnd(*sa), b], fn)
case("pow[3,4]x[4]", "pow", [rnd(3, 4, lo=0.3, hi=2.0), rnd(4)], torch.pow)
case("mul[transposed 5,3]x[5,3]", "mul", [rnd(3, 5), rnd(5, 3)], torch.mul, prep={"0": "t"})
case("add[transposed]x[transposed]", "add", [rnd(4, 6), rnd(4, 6)], torch.add, prep={"0": "t", "1": "t"})

# ---- reductions
x = rnd(3, 4, 5)
for axes in ([0], [1], [2], [0, 2], None):
    for keep in (False, True):
        kw = {} if axes is None else {"dim": axes, "keepdim": keep}
        tag = "all" if axes is None else axes
        if axes is None and keep:
            continue
        case(f"sum{tag}{'k' if keep else ''}", "sum", [x], (lambda v, kw=kw: v.sum(**kw)), {"axes": axes, "keepdim": keep})
        case(f"mean{tag}{'k' if keep else ''}", "mean", [x], (lambda v, kw=kw: v.mean(**kw)), {"axes": axes, "keepdim": keep})
case("amax[1]", "max", [x], lambda v: torch.amax(v, dim=1), {"axes": [1]})
case("amin[0,2]k", "min", [x], lambda v: torch.amin(v, dim=(0, 2), keepdim=True), {"axes": [0, 2], "keepdim": True})
case("amax ties", "max", [torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])], lambda v: torch.amax(v, dim=1), {"axes": [1]})
case("logsumexp[2]", "logsumexp", [x], lambda v: torch.logsumexp(v, dim=2), {"axes": [2]})
case("logsumexp[0,1]", "logsumexp", [x * 30], lambda v: torch.logsumexp(v, dim=(0, 1)), {"axes": [0, 1]})
case("var[1]", "var", [x], lambda v: torch.var(v, dim=1), {"axes": [1], "correction": 1})
case("var[0,2]pop", "var", [x], lambda v: torch.var(v, dim=(0, 2), unbiased=False), {"axes": [0, 2], "correction": 0})
case("std[2]", "std", [x], lambda v: torch.std(v, dim=2), {"axes": [2], "correction": 1})
case("argmax[1]", "argmax", [x], lambda v: torch.argmax(v, dim=1).int(), {"axis": 1}, grad=False)
case("argmin[-1]", "argmin", [x], lambda v: torch.argmin(v, dim=-1).int(), {"axis": -1}, grad=False)
case("sum[1000]", "sum", [rnd(1000)], lambda v: v.sum(), {"axes": None, "keepdim": False})
case("sum[transposed]", "sum", [rnd(5, 9)], lambda v: v.sum(dim=1), {"axes": [1], "keepdim": False}, prep={"0": "t"})
for axis in (-1, 1, 0):
    case(f"softmax[{axis}]", "softmax", [x * 3], lambda v, a=axis: torch.softmax(v, dim=a), {"axis": axis})
    case(f"logSoftmax[{axis}]", "logSoftmax", [x * 3], lambda v, a=axis: torch.log_softmax(v, dim=a), {"axis": axis})
case("softmax[1,513]", "softmax", [rnd(2, 513) * 4], lambda v: torch.softmax(v, dim=-1), {"axis": -1})

# ---- matmul (awkward shapes; K up to 4096; transposed operands; vectors; batch broadcast)
mm = [((1, 1), (1, 1)), ((7, 13), (13, 5)), ((65, 67), (67, 63)), ((3, 4096), (4096, 5)), ((2, 1, 5, 7), (3, 7, 4)),
      ((13,), (13, 6)), ((6, 13), (13,)), ((4, 3, 17), (17, 9)), ((1, 129), (129, 1))]
for sa, sb in mm:
    tol = {"atol": 2e-3, "rtol": 1e-3} if 4096 in sa else None
    case(f"matmul{list(sa)}x{list(sb)}", "matmul", [rnd(*sa), rnd(*sb)], torch.matmul, tol=tol)
case("matmul A^T", "matmul", [rnd(11, 6), rnd(11, 7)], torch.matmul, prep={"0": "t"})
case("matmul B^T", "matmul", [rnd(6, 11), rnd(7, 11)], torch.matmul, prep={"1": "t"})
case("matmul batched B^T", "matmul", [rnd(2, 5, 9), rnd(2, 8, 9)], torch.matmul, prep={"1": "t"})
case("linear", "linear", [rnd(2, 3, 10), rnd(6, 10), rnd(6)], F.linear)
case("linear nobias", "linear", [rnd(4, 10), rnd(3, 10)], F.linear)

# ---- layout ops
case("permute", "permute", [rnd(2, 3, 4)], lambda v: v.permute(2, 0, 1).contiguous() * 1, {"dims": [2, 0, 1]})
case("slice step", "slice", [rnd(4, 10)], lambda v: v[:, 1:9:3], {"dim": 1, "start": 1, "end": 9, "step": 3})
case("slice neg", "slice", [rnd(6, 3)], lambda v: v[-4:-1], {"dim": 0, "start": -4, "end": -1, "step": 1})
case("select", "select", [rnd(3, 4, 5)], lambda v: v[:, 2], {"dim": 1, "index": 2})
case("reshape of transposed", "reshape", [rnd(3, 4)], lambda v: v.reshape(2, 6), {"shape": [2, 6]}, prep={"0": "t"})
case("expand", "expand", [rnd(3, 1)], lambda v: v.expand(2, 3, 4), {"shape": [2, 3, 4]})
case("concat1", "concat", [rnd(2, 3), rnd(2, 5), rnd(2, 1)], lambda a, b, c: torch.cat([a, b, c], 1), {"dim": 1})
case("concat0", "concat", [rnd(1, 4), rnd(3, 4)], lambda a, b: torch.cat([a, b], 0), {"dim": 0})
case("stack", "stack", [rnd(2, 3), rnd(2, 3)], lambda a, b: torch.stack([a, b], 1), {"dim": 1})
case("split", "split", [rnd(7, 2)], lambda v: torch.cat([s * (i + 1) for i, s in enumerate(torch.split(v, 3, 0))], 0), {"size": 3, "dim": 0})

# ---- indexing
idx = torch.tensor([2, 0, 2, 4], dtype=torch.int32)
case("indexSelect0", "indexSelect", [rnd(5, 3), idx], lambda v, i: torch.index_select(v, 0, i.long()), {"dim": 0})
case("indexSelect1", "indexSelect", [rnd(2, 5, 3), idx], lambda v, i: torch.index_select(v, 1, i.long()), {"dim": 1})
gi = torch.tensor([[0, 2, 1], [1, 1, 0]], dtype=torch.int32)
case("gather1", "gather", [rnd(2, 3), gi], lambda v, i: torch.gather(v, 1, i.long()), {"dim": 1})
case("gather0", "gather", [rnd(3, 3), gi], lambda v, i: torch.gather(v, 0, i.long()), {"dim": 0})
ids = torch.tensor([[1, 3, 3], [0, 6, 1]], dtype=torch.int32)
case("embedding", "embedding", [ids, rnd(7, 4)], lambda i, w: F.embedding(i.long(), w))
si = torch.tensor([[0, 1, 0], [2, 0, 0]], dtype=torch.int32)
case("scatterAdd0", "scatterAdd", [rnd(3, 3), si, rnd(2, 3)], lambda x, i, s: torch.scatter_add(x, 0, i.long(), s), {"dim": 0})
cond = (rnd(3, 4) > 0).float()
case("where", "where", [cond, rnd(3, 4), rnd(4)], lambda c, a, b: torch.where(c != 0, a, b))
case("maskedFill", "maskedFill", [rnd(3, 4), (rnd(1, 4) > 0).float()], lambda x, m: x.masked_fill(m != 0, -2.5), {"value": -2.5})

# ---- dtypes: values survive f16/bf16 storage exactly as torch rounds them
vals = torch.tensor([0.0, -0.0, 1.0, -2.5, 3.14159, 65504.0, 1e-5, 6e-8, 1e5, -1e-3, 0.1, 123.456, 1e30])
case("roundtrip f16", "roundtrip", [vals], lambda v: v.half().float(), {"dtype": "f16"}, grad=False)
case("roundtrip bf16", "roundtrip", [vals], lambda v: v.bfloat16().float(), {"dtype": "bf16"}, grad=False)
case("cast i32", "castInt", [torch.tensor([1.7, -1.7, 0.2, -0.2, 5.0])], lambda v: v.int(), grad=False)

# ---- cross-entropy (fused) with ignore index and label smoothing
logits = rnd(6, 11) * 2
tgt = torch.tensor([3, -100, 0, 10, 5, -100], dtype=torch.int32)
for red in ("mean", "sum", "none"):
    for ls in (0.0, 0.1):
        case(f"crossEntropy {red} ls{ls}", "crossEntropy", [logits, tgt],
             lambda x, t, red=red, ls=ls: F.cross_entropy(x, t.long(), ignore_index=-100, label_smoothing=ls, reduction=red),
             {"reduction": red, "labelSmoothing": ls, "ignoreIndex": -100})
case("crossEntropy 3d", "crossEntropy", [rnd(2, 3, 7), torch.tensor([[1, 2, 6], [0, -1, 3]], dtype=torch.int32)],
     lambda x, t: F.cross_entropy(x.reshape(-1, 7), t.long().reshape(-1), ignore_index=-1), {"ignoreIndex": -1})

# ---- normalisation (written out as in the Hugging Face modeling code; torch 1.13 has no RMSNorm)
def rms_norm(x, w, eps, offset=False):
    h = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return h * ((1.0 + w) if offset else w)


case("rmsNorm", "rmsNorm", [rnd(2, 3, 8), rnd(8)], lambda x, w: rms_norm(x, w, 1e-6), {"eps": 1e-6})
case("rmsNorm offset (Gemma)", "rmsNorm", [rnd(4, 16), rnd(16) * 0.1], lambda x, w: rms_norm(x, w, 1e-6, True), {"eps": 1e-6, "offset": True})
case("layerNorm", "layerNorm", [rnd(3, 10), rnd(10), rnd(10)], lambda x, w, b: F.layer_norm(x, (10,), w, b, 1e-5), {"shape": [10], "eps": 1e-5})
case("layerNorm 2 axes", "layerNorm", [rnd(2, 3, 4, 5) * 3 + 1, rnd(4, 5), rnd(4, 5)], lambda x, w, b: F.layer_norm(x, (4, 5), w, b, 1e-5), {"shape": [4, 5], "eps": 1e-5})
case("layerNorm no affine", "layerNorm", [rnd(5, 7)], lambda x: F.layer_norm(x, (7,), None, None, 1e-5), {"shape": [7], "eps": 1e-5})
case("groupNorm", "groupNorm", [rnd(2, 6, 3, 2), rnd(6), rnd(6)], lambda x, w, b: F.group_norm(x, 3, w, b, 1e-5), {"groups": 3, "eps": 1e-5})

def write(name):
    if os.environ.get("KILN_GOLDEN_NO_WRITE"):  # imported by checkpoints.py for its references
        CASES.clear()
        return
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    with open(out, "w") as f:
        json.dump({"generator": "tests/golden/generate.py", "torch": torch.__version__, "cases": CASES}, f, separators=(",", ":"))
    print(f"wrote {len(CASES)} cases to {out} ({os.path.getsize(out) // 1024} KiB)")
    CASES.clear()


write("ops.json")

# =============================================================================================
# nn.json: transformer parts, with references written from the papers and the Hugging Face
# modeling code (torch 1.13 has no SDPA, RoPE or GQA helpers).


def rope_inv_freq(dim, theta=10000.0, scaling=None, seq_len=0, max_pos=2048):
    base = theta
    if scaling and scaling["type"] == "dynamic":
        orig = scaling.get("originalMaxPositionEmbeddings", max_pos)
        if seq_len > orig:
            base = base * ((scaling["factor"] * seq_len / orig) - (scaling["factor"] - 1)) ** (dim / (dim - 2))
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    att = 1.0
    if scaling is None:
        return inv, att
    t = scaling["type"]
    if t == "linear":
        inv = inv / scaling["factor"]
    elif t == "llama3":  # transformers _compute_llama3_parameters
        f, lo, hi, old = scaling["factor"], scaling["lowFreqFactor"], scaling["highFreqFactor"], scaling["originalMaxPositionEmbeddings"]
        low_wl, high_wl = old / lo, old / hi
        wl = 2 * math.pi / inv
        out = torch.where(wl > low_wl, inv / f, inv)
        smooth = (old / wl - lo) / (hi - lo)
        smoothed = (1 - smooth) * out / f + smooth * out
        is_medium = ~(wl < high_wl) * ~(wl > low_wl)
        inv = torch.where(is_medium, smoothed, out)
    elif t == "yarn":  # transformers _compute_yarn_parameters
        f, old = scaling["factor"], scaling["originalMaxPositionEmbeddings"]
        beta_fast, beta_slow = scaling.get("betaFast", 32), scaling.get("betaSlow", 1)
        att = 0.1 * math.log(f) + 1.0 if f > 1 else 1.0
        corr = lambda rot: (dim * math.log(old / (rot * 2 * math.pi))) / (2 * math.log(base))
        low, high = max(math.floor(corr(beta_fast)), 0), min(math.ceil(corr(beta_slow)), dim - 1)
        if low == high:
            high += 0.001
        ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low), 0, 1)
        extrap = 1 - ramp
        inv = (inv / f) * (1 - extrap) + inv * extrap
    return inv, att


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x, pos, dim, layout="half", **kw):
    inv, att = rope_inv_freq(dim, **kw)
    freqs = pos.double()[..., None] * inv  # (B|T, T, dim/2)
    if layout == "half":
        emb = torch.cat((freqs, freqs), dim=-1)
    else:
        emb = torch.repeat_interleave(freqs, 2, dim=-1)
    cos, sin = (emb.cos() * att).float(), (emb.sin() * att).float()
    if pos.dim() == 2:
        cos, sin = cos[:, None], sin[:, None]
    xr, rest = x[..., :dim], x[..., dim:]
    if layout == "half":
        rot = rotate_half(xr)
    else:
        a, b = xr[..., 0::2], xr[..., 1::2]
        rot = torch.stack((-b, a), dim=-1).flatten(-2)
    return torch.cat((xr * cos + rot * sin, rest), dim=-1)


x = rnd(2, 3, 5, 8)
pos = torch.tensor([[0, 1, 2, 3, 4], [7, 8, 9, 0, 1]], dtype=torch.int32)
case("rope half", "rope", [x, pos], lambda x, p: apply_rope(x, p, 8), {"headDim": 8})
case("rope partial", "rope", [x, pos], lambda x, p: apply_rope(x, p, 4), {"headDim": 8, "rotaryDim": 4})
case("rope interleaved", "rope", [x, pos], lambda x, p: apply_rope(x, p, 8, "interleaved"), {"headDim": 8, "layout": "interleaved"})
case("rope theta 1e6, 1-D positions", "rope", [x, torch.arange(100, 105, dtype=torch.int32)], lambda x, p: apply_rope(x, p, 8, theta=1e6), {"headDim": 8, "theta": 1e6})
for sc in ({"type": "linear", "factor": 4.0},
           {"type": "llama3", "factor": 8.0, "lowFreqFactor": 1.0, "highFreqFactor": 4.0, "originalMaxPositionEmbeddings": 64},
           {"type": "yarn", "factor": 4.0, "originalMaxPositionEmbeddings": 64},
           {"type": "dynamic", "factor": 2.0, "originalMaxPositionEmbeddings": 4}):
    big = torch.tensor([[1000, 2000, 3000, 4000, 5000], [5, 6, 7, 8, 9]], dtype=torch.int32)
    # dynamic NTK rescales for the longest sequence seen: max position + 1 (transformers' dynamic_rope_update)
    seq = int(big.max()) + 1 if sc["type"] == "dynamic" else 0
    case(f"rope {sc['type']}", "rope", [x, big], lambda x, p, sc=sc, seq=seq: apply_rope(x, p, 8, scaling=sc, seq_len=seq),
         {"headDim": 8, "scaling": sc, "maxPosition": seq or 6000}, tol={"atol": 2e-4, "rtol": 1e-4})


def sdpa(q, k, v, mask=None, bias=None, causal=False, window=None, scale=None):
    B, H, Tq, D = q.shape
    Hkv, Tk = k.shape[1], k.shape[2]
    k = k.repeat_interleave(H // Hkv, dim=1)  # transformers repeat_kv
    v = v.repeat_interleave(H // Hkv, dim=1)
    s = q @ k.transpose(-1, -2) * (scale if scale is not None else 1 / math.sqrt(D))
    if bias is not None:
        s = s + bias
    keep = torch.ones(Tq, Tk)
    if causal or window:
        i = torch.arange(Tq)[:, None] + (Tk - Tq)
        j = torch.arange(Tk)[None, :]
        keep = ((j <= i) & ((i - j) < (window or 10**9))).float()
    if mask is not None:
        keep = keep * mask
    s = s.masked_fill(keep == 0, torch.finfo(torch.float32).min)
    return torch.softmax(s, -1) @ v


def alibi_slopes(n):
    def p2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]
    if math.log2(n).is_integer():
        return p2(n)
    c = 2 ** math.floor(math.log2(n))
    return p2(c) + p2(2 * c)[0::2][: n - c]


q, k_, v = rnd(2, 4, 5, 8), rnd(2, 4, 5, 8), rnd(2, 4, 5, 8)
case("sdpa MHA causal", "sdpa", [q, k_, v], lambda q, k, v: sdpa(q, k, v, causal=True), {"causal": True})
case("sdpa MHA full", "sdpa", [q, k_, v], lambda q, k, v: sdpa(q, k, v), {"causal": False})
kg, vg = rnd(2, 2, 7, 8), rnd(2, 2, 7, 6)
pad = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1]], dtype=torch.float32)
case("sdpa GQA causal+padding (KV longer than Q)", "sdpa", [q, kg, vg, pad], lambda q, k, v, m: sdpa(q, k, v, mask=m[:, None, None, :], causal=True), {"causal": True, "padding": True})
km, vm = rnd(2, 1, 5, 8), rnd(2, 1, 5, 8)
case("sdpa MQA sliding window 2", "sdpa", [q, km, vm], lambda q, k, v: sdpa(q, k, v, causal=True, window=2), {"causal": True, "window": 2})
case("sdpa scale", "sdpa", [q, k_, v], lambda q, k, v: sdpa(q, k, v, scale=0.05), {"scale": 0.05})
slopes = torch.tensor(alibi_slopes(4))
alibi = slopes[:, None, None] * (torch.arange(5)[None, None, :] - torch.arange(5)[None, :, None])
case("sdpa ALiBi", "sdpa", [q, k_, v], lambda q, k, v: sdpa(q, k, v, bias=alibi, causal=True), {"causal": True, "alibi": True})
doc = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 2, 2]], dtype=torch.int32)
case("sdpa document mask", "sdpa", [q, k_, v, doc], lambda q, k, v, d: sdpa(q, k, v, mask=(d[:, None, :, None] == d[:, None, None, :]).float(), causal=True), {"causal": True, "doc": True})
case("alibi slopes 6 heads", "alibiSlopes", [torch.zeros(1)], lambda z: torch.tensor(alibi_slopes(6)), {"heads": 6}, grad=False)

# an attention layer (GQA, qkv bias as Qwen2) with RoPE, weights as inputs so every gradient is checked
B, T, Hd, H, Hkv, D = 2, 5, 16, 4, 2, 4
xs = rnd(B, T, Hd)
Wq, bq, Wk, bk, Wv, bv, Wo = rnd(H * D, Hd) * 0.3, rnd(H * D) * 0.1, rnd(Hkv * D, Hd) * 0.3, rnd(Hkv * D) * 0.1, rnd(Hkv * D, Hd) * 0.3, rnd(Hkv * D) * 0.1, rnd(Hd, H * D) * 0.3
posA = torch.tensor([[0, 1, 2, 3, 4], [0, 1, 2, 0, 1]], dtype=torch.int32)


def attention_layer(x, wq, bq, wk, bk, wv, bv, wo, p):
    heads = lambda t, h: t.view(B, T, h, D).transpose(1, 2)
    q = apply_rope(heads(F.linear(x, wq, bq), H), p, D)
    k = apply_rope(heads(F.linear(x, wk, bk), Hkv), p, D)
    v = heads(F.linear(x, wv, bv), Hkv)
    o = sdpa(q, k, v, causal=True)
    return F.linear(o.transpose(1, 2).reshape(B, T, H * D), wo)


case("Attention GQA + RoPE + qkv bias", "attention", [xs, Wq, bq, Wk, bk, Wv, bv, Wo, posA], attention_layer,
     {"hiddenSize": Hd, "numHeads": H, "numKVHeads": Hkv, "headDim": D})

# feed-forward
xf = rnd(2, 3, 6)
Wg, Wu, Wd = rnd(10, 6) * 0.4, rnd(10, 6) * 0.4, rnd(6, 10) * 0.4
case("SwiGLU", "gatedMLP", [xf, Wg, Wu, Wd], lambda x, g, u, d: F.linear(F.silu(F.linear(x, g)) * F.linear(x, u), d), {"act": "silu"})
case("GeGLU", "gatedMLP", [xf, Wg, Wu, Wd], lambda x, g, u, d: F.linear(F.gelu(F.linear(x, g), approximate="tanh") * F.linear(x, u), d), {"act": "gelu_tanh"})
W1, b1, W2, b2 = rnd(10, 6) * 0.4, rnd(10) * 0.1, rnd(6, 10) * 0.4, rnd(6) * 0.1
case("MLP gelu", "mlp", [xf, W1, b1, W2, b2], lambda x, w1, b1, w2, b2: F.linear(F.gelu(F.linear(x, w1, b1)), w2, b2), {"act": "gelu"})
case("MLP relu", "mlp", [xf, W1, b1, W2, b2], lambda x, w1, b1, w2, b2: F.linear(F.relu(F.linear(x, w1, b1)), w2, b2), {"act": "relu"})


# Mixture of Experts: Mixtral routing (softmax, top-k, renormalise), per-expert capacity filled in
# token order, Switch load balancing as transformers' load_balancing_loss_func, ST-MoE z-loss.
def moe_ref(x, Wr, Wg, Wu, Wd, k, cf=None, act=F.silu):
    N, H = x.shape
    E = Wr.shape[0]
    logits = x @ Wr.T
    probs = torch.softmax(logits, -1)
    w, idx = torch.topk(probs, k, -1)
    w = w / w.sum(-1, keepdim=True)
    C = N if cf is None else max(1, math.ceil(cf * N * k / E))
    count, dropped, rows = [0] * E, 0, []
    for t in range(N):
        acc = torch.zeros(H)
        for j in range(k):
            e = int(idx[t, j])
            if count[e] < C:
                count[e] += 1
                h = act(x[t] @ Wg[e].T) * (x[t] @ Wu[e].T)
                acc = acc + w[t, j] * (h @ Wd[e].T)
            else:
                dropped += 1
        rows.append(acc)
    out = torch.stack(rows)
    f = F.one_hot(idx, E).float().mean(0)
    aux = E * (f * probs.mean(0)).sum()
    z = torch.logsumexp(logits, -1).pow(2).mean()
    return torch.cat([out.flatten(), aux[None], z[None], torch.tensor([float(dropped)])])


Hm, Im, Em = 6, 5, 4
xm = rnd(7, Hm)
Wr, Wg_, Wu_, Wd_ = rnd(Em, Hm), rnd(Em, Im, Hm) * 0.4, rnd(Em, Im, Hm) * 0.4, rnd(Em, Hm, Im) * 0.4
case("MoE top-2 dropless", "moe", [xm, Wr, Wg_, Wu_, Wd_], lambda *a: moe_ref(*a, 2), {"experts": Em, "topK": 2})
case("MoE top-2 capacity 0.5 (drops)", "moe", [xm, Wr, Wg_, Wu_, Wd_], lambda *a: moe_ref(*a, 2, 0.5), {"experts": Em, "topK": 2, "capacityFactor": 0.5})
case("MoE top-1 capacity 1.0", "moe", [xm, Wr, Wg_, Wu_, Wd_], lambda *a: moe_ref(*a, 1, 1.0), {"experts": Em, "topK": 1, "capacityFactor": 1.0})
cs = rnd(3, 5, 4)
case("cumsum 1", "cumsum", [cs], lambda v: torch.cumsum(v, 1), {"axis": 1})
case("cumsum 0 reverse exclusive", "cumsum", [cs], lambda v: torch.flip(torch.cumsum(torch.flip(v, [0]), 0), [0]) - v, {"axis": 0, "reverse": True, "exclusive": True})
case("topk 3", "topk", [rnd(4, 9)], lambda v: torch.topk(v, 3, -1).values, {"k": 3})

write("nn.json")


# =============================================================================================
# models.json: tiny decoders in three architecture shapes, forward written from the Hugging Face
# modeling code (Llama, GPT-2, Gemma), with the logits and every parameter's gradient.


def decoder_forward(cfg, W, ids, mask=None, pos=None):
    """mask: (B, T) attention_mask (1 token, 0 padding); pos: (B, T) position ids."""
    B, T = ids.shape
    H, Hkv, D = cfg["numHeads"], cfg.get("numKVHeads", cfg["numHeads"]), cfg.get("headDim", cfg["hiddenSize"] // cfg["numHeads"])
    eps = cfg.get("normEps", 1e-5 if cfg.get("norm") == "layernorm" else 1e-6)

    def norm(x, p):
        if cfg.get("norm") == "layernorm":
            return F.layer_norm(x, (x.shape[-1],), W[p + ".weight"], W[p + ".bias"], eps)
        return rms_norm(x, W[p + ".weight"], eps, cfg.get("normOffset", False))

    def lin(x, p, bias=False):
        return F.linear(x, W[p + ".weight"], W.get(p + ".bias") if bias else None)

    if pos is None:
        pos = torch.arange(T, dtype=torch.int32)
    keep = None if mask is None else mask[:, None, None, :].float()
    h = F.embedding(ids.long(), W["model.embed_tokens.weight"])
    if cfg.get("embeddingScale"):
        h = h * cfg["embeddingScale"]
    if cfg.get("positional") == "learned":
        h = h + W["model.embed_positions.weight"][pos.long()]
    act = {"silu": F.silu, "gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "relu": F.relu}[cfg.get("act", "gelu" if cfg.get("mlp") == "plain" else "silu")]
    for i in range(cfg["numLayers"]):
        p = f"model.layers.{i}"
        x = norm(h, p + ".input_layernorm")
        heads = lambda t, n: t.view(B, T, n, D).transpose(1, 2)
        qkv_b = cfg.get("qkvBias", False)
        q, k, v = heads(lin(x, p + ".self_attn.q_proj", qkv_b), H), heads(lin(x, p + ".self_attn.k_proj", qkv_b), Hkv), heads(lin(x, p + ".self_attn.v_proj", qkv_b), Hkv)
        if cfg.get("positional", "rope") == "rope":
            q, k = apply_rope(q, pos, D, theta=cfg.get("ropeTheta", 10000.0)), apply_rope(k, pos, D, theta=cfg.get("ropeTheta", 10000.0))
        o = sdpa(q, k, v, mask=keep, causal=True, window=cfg.get("slidingWindow")).transpose(1, 2).reshape(B, T, H * D)
        h = h + lin(o, p + ".self_attn.o_proj", cfg.get("oBias", False))
        x = norm(h, p + ".post_attention_layernorm")
        if cfg.get("moe"):
            mo = cfg["moe"]
            r = moe_ref(x.reshape(-1, x.shape[-1]), W[p + ".mlp.gate.weight"], W[p + ".mlp.experts.gate_proj"], W[p + ".mlp.experts.up_proj"], W[p + ".mlp.experts.down_proj"], mo["topK"], mo.get("capacityFactor"))
            n_out = x.numel()
            m = r[:n_out].view(x.shape)
            AUX.append(r[n_out] * 0.01)
        elif cfg.get("mlp", "gated") == "gated":
            m = lin(act(lin(x, p + ".mlp.gate_proj")) * lin(x, p + ".mlp.up_proj"), p + ".mlp.down_proj")
        else:
            m = lin(act(lin(x, p + ".mlp.fc1", True)), p + ".mlp.fc2", True)
        h = h + m
    h = norm(h, "model.norm")
    out_w = W["model.embed_tokens.weight"] if cfg.get("tieWordEmbeddings") else W["lm_head.weight"]
    return F.linear(h, out_w)


def decoder_params(cfg):
    H, Hkv = cfg["numHeads"], cfg.get("numKVHeads", cfg["numHeads"])
    D = cfg.get("headDim", cfg["hiddenSize"] // H)
    hs, I, V = cfg["hiddenSize"], cfg["intermediateSize"], cfg["vocabSize"]
    ln = cfg.get("norm") == "layernorm"
    W = {"model.embed_tokens.weight": rnd(V, hs) * 0.5}
    if cfg.get("positional") == "learned":
        W["model.embed_positions.weight"] = rnd(cfg["maxPositionEmbeddings"], hs) * 0.1
    def norm_p(p):
        W[p + ".weight"] = 1 + rnd(hs) * 0.1 if not cfg.get("normOffset") else rnd(hs) * 0.1
        if ln:
            W[p + ".bias"] = rnd(hs) * 0.1
    for i in range(cfg["numLayers"]):
        p = f"model.layers.{i}"
        norm_p(p + ".input_layernorm")
        for n, o in (("q_proj", H * D), ("k_proj", Hkv * D), ("v_proj", Hkv * D)):
            W[f"{p}.self_attn.{n}.weight"] = rnd(o, hs) * 0.3
            if cfg.get("qkvBias"):
                W[f"{p}.self_attn.{n}.bias"] = rnd(o) * 0.1
        W[f"{p}.self_attn.o_proj.weight"] = rnd(hs, H * D) * 0.3
        if cfg.get("oBias"):
            W[f"{p}.self_attn.o_proj.bias"] = rnd(hs) * 0.1
        norm_p(p + ".post_attention_layernorm")
        if cfg.get("moe"):
            E = cfg["moe"]["numExperts"]
            W[f"{p}.mlp.gate.weight"] = rnd(E, hs) * 0.5
            W[f"{p}.mlp.experts.gate_proj"], W[f"{p}.mlp.experts.up_proj"], W[f"{p}.mlp.experts.down_proj"] = rnd(E, I, hs) * 0.3, rnd(E, I, hs) * 0.3, rnd(E, hs, I) * 0.3
        elif cfg.get("mlp", "gated") == "gated":
            W[f"{p}.mlp.gate_proj.weight"], W[f"{p}.mlp.up_proj.weight"], W[f"{p}.mlp.down_proj.weight"] = rnd(I, hs) * 0.3, rnd(I, hs) * 0.3, rnd(hs, I) * 0.3
        else:
            W[f"{p}.mlp.fc1.weight"], W[f"{p}.mlp.fc1.bias"], W[f"{p}.mlp.fc2.weight"], W[f"{p}.mlp.fc2.bias"] = rnd(I, hs) * 0.3, rnd(I) * 0.1, rnd(hs, I) * 0.3, rnd(hs) * 0.1
    norm_p("model.norm")
    if not cfg.get("tieWordEmbeddings"):
        W["lm_head.weight"] = rnd(V, hs) * 0.3
    return W


MODELS = []
AUX = []
base = {"vocabSize": 13, "hiddenSize": 8, "numLayers": 2, "numHeads": 2, "intermediateSize": 12, "maxPositionEmbeddings": 16}
for name, extra in (("llama (GQA)", {"numKVHeads": 1}),
                    ("qwen2 (qkv bias, tied, theta 1e6)", {"qkvBias": True, "tieWordEmbeddings": True, "ropeTheta": 1e6}),
                    ("gpt2", {"norm": "layernorm", "positional": "learned", "mlp": "plain", "act": "gelu_tanh", "mlpBias": True, "qkvBias": True, "oBias": True, "tieWordEmbeddings": True}),
                    ("gemma (offset norm, GeGLU, headDim 6, embedding scale)", {"normOffset": True, "act": "gelu_tanh", "tieWordEmbeddings": True, "headDim": 6, "embeddingScale": math.sqrt(8), "numKVHeads": 1}),
                    ("mixtral (MoE top-2 of 4, capacity 1.0, aux loss)", {"numKVHeads": 1, "moe": {"numExperts": 4, "topK": 2, "capacityFactor": 1.0}})):
    cfg = {**base, **extra}
    W = {k: v.requires_grad_() for k, v in decoder_params(cfg).items()}
    ids = torch.tensor([[1, 5, 12, 0, 7], [3, 3, 9, 2, 11]], dtype=torch.int32)
    AUX.clear()
    logits = decoder_forward(cfg, W, ids)
    up = rnd(*logits.shape)
    loss = (logits * up).sum() + (sum(AUX) if AUX else 0)
    loss.backward()
    MODELS.append({"name": name, "config": cfg, "inputIds": enc(ids), "weights": {k: enc(v) for k, v in W.items()},
                   "logits": enc(logits), "upstream": enc(up), "grads": {k: enc(v.grad) for k, v in W.items()},
                   "auxLoss": float(sum(AUX)) if AUX else None})

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models.json")
if not os.environ.get("KILN_GOLDEN_NO_WRITE"):
    with open(out, "w") as f:
        json.dump({"generator": "tests/golden/generate.py", "torch": torch.__version__, "models": MODELS}, f, separators=(",", ":"))
    print(f"wrote {len(MODELS)} models to {out} ({os.path.getsize(out) // 1024} KiB)")
