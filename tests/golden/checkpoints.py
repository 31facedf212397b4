#!/usr/bin/python3
"""Writes tests/golden/checkpoints/<arch>/: tiny random Hugging Face checkpoints (config.json,
safetensors in each architecture's own names and layouts) with golden logits from reference
forwards written from the Hugging Face modeling code (generate.py's decoder_forward), for
batch 1, for a left-padded batch, and a greedy continuation. Run with Debian's python3-torch:
    /usr/bin/python3 tests/golden/checkpoints.py
CI never runs this: what it writes is committed.
"""
import json
import math
import os
import runpy
import struct

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ["KILN_GOLDEN_NO_WRITE"] = "1"
REF = runpy.run_path(os.path.join(HERE, "generate.py"))
decoder_forward, enc = REF["decoder_forward"], REF["enc"]
G = torch.Generator().manual_seed(20261129)


def rnd(*shape, scale=1.0):
    return torch.randn(shape, generator=G, dtype=torch.float32) * scale


DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.uint8: "U8"}


def save_safetensors(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        b = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def params(cfg):
    """Weights in kiln's (Llama-style) names, as decoder_forward reads them."""
    H, Hkv, hs, I, V = cfg["numHeads"], cfg.get("numKVHeads", cfg["numHeads"]), cfg["hiddenSize"], cfg["intermediateSize"], cfg["vocabSize"]
    D = cfg.get("headDim", hs // H)
    ln = cfg.get("norm") == "layernorm"
    W = {"model.embed_tokens.weight": rnd(V, hs, scale=0.5)}
    if cfg.get("positional") == "learned":
        W["model.embed_positions.weight"] = rnd(cfg["maxPositionEmbeddings"], hs, scale=0.1)

    def norm(p):
        W[p + ".weight"] = rnd(hs, scale=0.1) if cfg.get("normOffset") else 1 + rnd(hs, scale=0.1)
        if ln:
            W[p + ".bias"] = rnd(hs, scale=0.1)

    for i in range(cfg["numLayers"]):
        p = f"model.layers.{i}"
        norm(p + ".input_layernorm")
        for n, o in (("q_proj", H * D), ("k_proj", Hkv * D), ("v_proj", Hkv * D)):
            W[f"{p}.self_attn.{n}.weight"] = rnd(o, hs, scale=0.3)
            if cfg.get("qkvBias"):
                W[f"{p}.self_attn.{n}.bias"] = rnd(o, scale=0.1)
        W[f"{p}.self_attn.o_proj.weight"] = rnd(hs, H * D, scale=0.3)
        if cfg.get("oBias"):
            W[f"{p}.self_attn.o_proj.bias"] = rnd(hs, scale=0.1)
        norm(p + ".post_attention_layernorm")
        if cfg.get("moe"):
            E = cfg["moe"]["numExperts"]
            W[f"{p}.mlp.gate.weight"] = rnd(E, hs, scale=0.5)
            W[f"{p}.mlp.experts.gate_proj"], W[f"{p}.mlp.experts.up_proj"], W[f"{p}.mlp.experts.down_proj"] = rnd(E, I, hs, scale=0.3), rnd(E, I, hs, scale=0.3), rnd(E, hs, I, scale=0.3)
        elif cfg.get("mlp", "gated") == "gated":
            W[f"{p}.mlp.gate_proj.weight"], W[f"{p}.mlp.up_proj.weight"], W[f"{p}.mlp.down_proj.weight"] = rnd(I, hs, scale=0.3), rnd(I, hs, scale=0.3), rnd(hs, I, scale=0.3)
        else:
            W[f"{p}.mlp.fc1.weight"], W[f"{p}.mlp.fc1.bias"], W[f"{p}.mlp.fc2.weight"], W[f"{p}.mlp.fc2.bias"] = rnd(I, hs, scale=0.3), rnd(I, scale=0.1), rnd(hs, I, scale=0.3), rnd(hs, scale=0.1)
    norm("model.norm")
    if not cfg.get("tieWordEmbeddings"):
        W["lm_head.weight"] = rnd(V, hs, scale=0.3)
    return W


def to_hf(arch, cfg, W):
    """kiln names -> the architecture's checkpoint names and layouts (the inverse of the loader)."""
    if arch == "gpt2":
        out = {"transformer.wte.weight": W["model.embed_tokens.weight"], "transformer.wpe.weight": W["model.embed_positions.weight"],
               "transformer.ln_f.weight": W["model.norm.weight"], "transformer.ln_f.bias": W["model.norm.bias"]}
        T = cfg["maxPositionEmbeddings"]
        for i in range(cfg["numLayers"]):
            p, h = f"model.layers.{i}.", f"transformer.h.{i}."
            for a, b in (("ln_1", "input_layernorm"), ("ln_2", "post_attention_layernorm")):
                out[h + a + ".weight"], out[h + a + ".bias"] = W[p + b + ".weight"], W[p + b + ".bias"]
            out[h + "attn.c_attn.weight"] = torch.cat([W[p + f"self_attn.{n}_proj.weight"] for n in "qkv"], 0).T.contiguous()  # Conv1D: (in, out)
            out[h + "attn.c_attn.bias"] = torch.cat([W[p + f"self_attn.{n}_proj.bias"] for n in "qkv"], 0)
            out[h + "attn.c_proj.weight"] = W[p + "self_attn.o_proj.weight"].T.contiguous()
            out[h + "attn.c_proj.bias"] = W[p + "self_attn.o_proj.bias"]
            out[h + "mlp.c_fc.weight"], out[h + "mlp.c_fc.bias"] = W[p + "mlp.fc1.weight"].T.contiguous(), W[p + "mlp.fc1.bias"]
            out[h + "mlp.c_proj.weight"], out[h + "mlp.c_proj.bias"] = W[p + "mlp.fc2.weight"].T.contiguous(), W[p + "mlp.fc2.bias"]
            out[h + "attn.bias"] = torch.tril(torch.ones(T, T, dtype=torch.uint8))[None, None]  # old checkpoints' causal-mask buffer
        return out
    out = dict(W)
    for i in range(cfg["numLayers"]):
        p = f"model.layers.{i}."
        if arch == "phi3":
            out[p + "self_attn.qkv_proj.weight"] = torch.cat([out.pop(p + f"self_attn.{n}_proj.weight") for n in "qkv"], 0)
            out[p + "mlp.gate_up_proj.weight"] = torch.cat([out.pop(p + "mlp.gate_proj.weight"), out.pop(p + "mlp.up_proj.weight")], 0)
        if arch == "mixtral":
            out[p + "block_sparse_moe.gate.weight"] = out.pop(p + "mlp.gate.weight")
            for kiln, hf in (("gate_proj", "w1"), ("up_proj", "w3"), ("down_proj", "w2")):
                stacked = out.pop(p + f"mlp.experts.{kiln}")
                for e in range(stacked.shape[0]):
                    out[p + f"block_sparse_moe.experts.{e}.{hf}.weight"] = stacked[e].contiguous()
    return out


BASE = {"vocabSize": 40, "hiddenSize": 16, "numLayers": 2, "numHeads": 4, "numKVHeads": 2, "intermediateSize": 24, "maxPositionEmbeddings": 32}
HF_LLAMA = lambda c: {"vocab_size": c["vocabSize"], "hidden_size": c["hiddenSize"], "num_hidden_layers": c["numLayers"], "num_attention_heads": c["numHeads"],
                      "num_key_value_heads": c["numKVHeads"], "intermediate_size": c["intermediateSize"], "max_position_embeddings": c["maxPositionEmbeddings"],
                      "rms_norm_eps": 1e-6, "rope_theta": c.get("ropeTheta", 10000.0), "hidden_act": "silu", "tie_word_embeddings": bool(c.get("tieWordEmbeddings"))}
ARCHS = [
    # arch, kiln config for the reference, config.json extras, stored dtype, shards
    ("llama", {}, {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}, torch.float32, 2),
    ("mistral", {"slidingWindow": 4}, {"model_type": "mistral", "sliding_window": 4}, torch.float32, 1),
    ("qwen2", {"qkvBias": True, "tieWordEmbeddings": True, "ropeTheta": 1e6}, {"model_type": "qwen2", "tie_word_embeddings": True, "rope_theta": 1e6}, torch.float16, 1),
    ("gemma", {"normOffset": True, "act": "gelu_tanh", "tieWordEmbeddings": True, "headDim": 8, "embeddingScale": math.sqrt(16)},
     {"model_type": "gemma", "head_dim": 8, "hidden_act": "gelu_pytorch_tanh", "tie_word_embeddings": True}, torch.bfloat16, 1),
    ("phi3", {}, {"model_type": "phi3"}, torch.float32, 1),
    ("mixtral", {"moe": {"numExperts": 4, "topK": 2}}, {"model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2}, torch.float32, 1),
    ("gpt2", {"norm": "layernorm", "positional": "learned", "mlp": "plain", "act": "gelu_tanh", "mlpBias": True, "qkvBias": True, "oBias": True, "tieWordEmbeddings": True, "numKVHeads": 4},
     None, torch.float32, 1),
]

ids1 = torch.tensor([[1, 5, 12, 0, 7, 33, 21]], dtype=torch.int32)
idsB = torch.tensor([[0, 0, 0, 4, 9, 30, 2], [3, 3, 9, 2, 11, 38, 17]], dtype=torch.int32)
maskB = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]], dtype=torch.int32)
posB = (maskB.cumsum(-1) - 1).clamp(min=0).int()  # transformers' generate: cumsum - 1, pads at 0

for arch, extra, hf_extra, dtype, shards in ARCHS:
    cfg = {**BASE, **extra}
    W = params(cfg)
    W = {k: v.to(dtype).float() for k, v in W.items()}  # the reference sees exactly the stored values
    if arch == "gpt2":
        hf_cfg = {"model_type": "gpt2", "vocab_size": cfg["vocabSize"], "n_embd": cfg["hiddenSize"], "n_layer": cfg["numLayers"], "n_head": cfg["numHeads"],
                  "n_inner": cfg["intermediateSize"], "n_positions": cfg["maxPositionEmbeddings"], "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}
        cfg["normEps"] = 1e-5
    else:
        hf_cfg = {**HF_LLAMA(cfg), **hf_extra}
        cfg["normEps"] = 1e-6
    with torch.no_grad():
        logits1 = decoder_forward(cfg, W, ids1)
        logitsB = decoder_forward(cfg, W, idsB, mask=maskB, pos=posB)
        seq = ids1.clone()
        for _ in range(6):  # greedy continuation by full forwards
            nxt = decoder_forward(cfg, W, seq)[:, -1].argmax(-1).int()
            seq = torch.cat([seq, nxt[:, None]], 1)
    out_dir = os.path.join(HERE, "checkpoints", arch)
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        os.remove(os.path.join(out_dir, f))
    hf = {k: (v.to(dtype) if v.dtype == torch.float32 else v) for k, v in to_hf(arch, cfg, W).items()}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf_cfg, f, indent=1)
    if shards == 1:
        save_safetensors(os.path.join(out_dir, "model.safetensors"), hf, {"format": "pt"})
    else:
        names = sorted(hf)
        weight_map = {}
        for s in range(shards):
            part = names[s::shards]
            fn = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            save_safetensors(os.path.join(out_dir, fn), {n: hf[n] for n in part}, {"format": "pt"})
            weight_map.update({n: fn for n in part})
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": sum(t.numel() * t.element_size() for t in hf.values())}, "weight_map": weight_map}, f, indent=1)
    golden = {"generator": "tests/golden/checkpoints.py", "torch": torch.__version__, "arch": arch, "dtype": DT[dtype],
              "ids": enc(ids1), "logits": enc(logits1), "paddedIds": enc(idsB), "paddedMask": enc(maskB), "paddedPositions": enc(posB),
              "paddedLogits": enc(logitsB), "greedy": enc(seq)}
    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"))
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"{arch}: {len(hf)} tensors ({DT[dtype]}, {shards} file(s)), {size // 1024} KiB")


# =============================================================================================
# GGUF: a Llama-shaped model whose rows are long enough for the k-quants (256), each matrix in
# another ggml type, with a byte-level BPE tokenizer in the metadata. Quantizers written from
# llama.cpp's reference layouts; the golden logits come from the dequantized weights (so they test
# the dequantization exactly) and from the float weights (the quantization error).
import numpy as np

GGML = {"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 8, "Q4_K": 12, "Q6_K": 14, "BF16": 30}


def f16(x):
    return np.asarray(x, dtype=np.float16)


def q8_0(w):  # blocks of 32: f16 d, 32 x int8
    b = w.reshape(-1, 32)
    d = np.abs(b).max(1) / 127
    q = np.where(d[:, None] > 0, np.round(b / np.where(d > 0, d, 1)[:, None]), 0).astype(np.int8)
    dh = f16(d)
    raw = b"".join(dh[i].tobytes() + q[i].tobytes() for i in range(len(b)))
    deq = dh.astype(np.float32)[:, None] * q.astype(np.float32)
    return raw, deq.reshape(w.shape)


def q4_0(w):  # blocks of 32: f16 d, 16 bytes of nibbles (j and j+16), value = d * (q - 8)
    b = w.reshape(-1, 32)
    idx = np.abs(b).argmax(1)
    mx = b[np.arange(len(b)), idx]
    d = mx / -8
    inv = np.where(d != 0, 1 / np.where(d != 0, d, 1), 0)
    q = np.clip(np.floor(b * inv[:, None] + 8.5), 0, 15).astype(np.uint8)
    packed = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    dh = f16(d)
    raw = b"".join(dh[i].tobytes() + packed[i].tobytes() for i in range(len(b)))
    deq = dh.astype(np.float32)[:, None] * (q.astype(np.float32) - 8)
    return raw, deq.reshape(w.shape)


def q4_k(w):  # super-blocks of 256: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles
    raws, deqs = [], []
    for sb in w.reshape(-1, 256):
        blocks = sb.reshape(8, 32)
        mn = np.minimum(blocks.min(1), 0)
        sc = (blocks.max(1) - mn) / 15
        d = sc.max() / 63 if sc.max() > 0 else 0
        dmin = (-mn).max() / 63 if (-mn).max() > 0 else 0
        dh, dminh = f16(d), f16(dmin)
        ls = np.clip(np.round(sc / dh.astype(np.float32) if dh else 0 * sc), 0, 63).astype(np.uint8) if dh else np.zeros(8, np.uint8)
        lm = np.clip(np.round(-mn / dminh.astype(np.float32)), 0, 63).astype(np.uint8) if dminh else np.zeros(8, np.uint8)
        scales = np.zeros(12, np.uint8)
        for j in range(8):
            if j < 4:
                scales[j] = ls[j]
                scales[j + 4] = lm[j]
            else:
                scales[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4)
                scales[j - 4] |= (ls[j] >> 4) << 6
                scales[j] |= (lm[j] >> 4) << 6
        deq = np.zeros(256, np.float32)
        qs = np.zeros(128, np.uint8)
        for j in range(8):
            dd = np.float32(dh) * ls[j]
            mm = np.float32(dminh) * lm[j]
            q = np.clip(np.round((blocks[j] + mm) / dd), 0, 15).astype(np.uint8) if dd > 0 else np.zeros(32, np.uint8)
            deq[j * 32:(j + 1) * 32] = dd * q - mm
            half, lo = j // 2, j % 2
            if lo == 0:
                qs[half * 32:(half + 1) * 32] |= q
            else:
                qs[half * 32:(half + 1) * 32] |= q << 4
        raws.append(dh.tobytes() + dminh.tobytes() + scales.tobytes() + qs.tobytes())
        deqs.append(deq)
    return b"".join(raws), np.concatenate(deqs).reshape(w.shape)


def q6_k(w):  # super-blocks of 256: 128 ql, 64 qh, 16 int8 scales, f16 d; value = d * sc * (q - 32)
    raws, deqs = [], []
    for sb in w.reshape(-1, 256):
        blocks = sb.reshape(16, 16)
        scale = np.abs(blocks).max(1) / 31
        d = np.abs(scale).max() / 127 if scale.max() > 0 else 0
        dh = f16(d)
        sc = np.clip(np.round(scale / np.float32(dh)), -128, 127).astype(np.int8) if dh else np.zeros(16, np.int8)
        q = np.zeros(256, np.int32)
        deq = np.zeros(256, np.float32)
        for i in range(16):
            s = np.float32(dh) * sc[i]
            qq = np.clip(np.round(blocks[i] / s), -32, 31).astype(np.int32) if s != 0 else np.zeros(16, np.int32)
            q[i * 16:(i + 1) * 16] = qq + 32
            deq[i * 16:(i + 1) * 16] = s * qq
        ql = np.zeros(128, np.uint8)
        qh = np.zeros(64, np.uint8)
        for n in (0, 128):
            for l in range(32):
                q1, q2, q3, q4 = q[n + l], q[n + l + 32], q[n + l + 64], q[n + l + 96]
                ql[n // 2 + l] = (q1 & 0xF) | ((q3 & 0xF) << 4)
                ql[n // 2 + l + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4)
                qh[n // 4 + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
        raws.append(ql.tobytes() + qh.tobytes() + sc.tobytes() + dh.tobytes())
        deqs.append(deq)
    return b"".join(raws), np.concatenate(deqs).reshape(w.shape)


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_value(v):
    if isinstance(v, bool):
        return struct.pack("<I", 7) + struct.pack("<?", v)
    if isinstance(v, int):
        return struct.pack("<I", 4) + struct.pack("<I", v)
    if isinstance(v, float):
        return struct.pack("<I", 6) + struct.pack("<f", v)
    if isinstance(v, str):
        return struct.pack("<I", 8) + gguf_str(v)
    if isinstance(v, tuple):  # (element type, values)
        t, vals = v
        body = {"str": lambda x: gguf_str(x), "f32": lambda x: struct.pack("<f", x), "i32": lambda x: struct.pack("<i", x)}[t]
        code = {"str": 8, "f32": 6, "i32": 5}[t]
        return struct.pack("<I", 9) + struct.pack("<IQ", code, len(vals)) + b"".join(body(x) for x in vals)
    raise TypeError(v)


def write_gguf(path, meta, tensors, align=32):
    """tensors: name -> (ggml type name, torch shape, raw bytes)."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta))
    for k, v in meta.items():
        head += gguf_str(k) + gguf_value(v)
    infos, data, off = b"", b"", 0
    for name, (t, shape, raw) in tensors.items():
        ne = list(reversed(shape))  # ggml: the fastest-varying dimension first
        infos += gguf_str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne) + struct.pack("<IQ", GGML[t], off)
        pad = (-len(raw)) % align
        data += raw + b"\0" * pad
        off += len(raw) + pad
    body = head + infos
    body += b"\0" * ((-len(body)) % align)
    with open(path, "wb") as f:
        f.write(body + data)


def byte_level_bpe(text, n_merges):
    """A tiny byte-level BPE trained naively (most frequent pair, ties by first occurrence)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    b2c = {b: chr(c) for b, c in zip(bs, cs)}
    tokens = [b2c[b] for b in range(256)]
    words = [[b2c[b] for b in (" " + w).encode()] for w in text.split()]
    merges = []
    for _ in range(n_merges):
        counts = {}
        for w in words:
            for a, b in zip(w, w[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + 1
        if not counts:
            break
        (a, b) = max(counts, key=lambda p: counts[p])
        merges.append(f"{a} {b}")
        tokens.append(a + b)
        for w in words:
            i = 0
            while i < len(w) - 1:
                if w[i] == a and w[i + 1] == b:
                    w[i:i + 2] = [a + b]
                i += 1
    return tokens, merges


def gguf_model(arch, fname):
    text = open("/usr/share/common-licenses/GPL-3").read()[:20000]
    tokens, merges = byte_level_bpe(text, 44)
    tokens.append("<|end|>")
    V = len(tokens)
    cfg = {"vocabSize": V, "hiddenSize": 256, "numLayers": 1, "numHeads": 4, "numKVHeads": 2, "intermediateSize": 512, "maxPositionEmbeddings": 64, "normEps": 1e-5}
    if arch == "qwen2":
        cfg.update({"qkvBias": True, "ropeTheta": 1e6})
    if arch == "gemma":  # head dim from attention.key_length, (1 + w) norms, GeGLU, scaled embeddings, tied head
        cfg.update({"normOffset": True, "act": "gelu_tanh", "tieWordEmbeddings": True, "headDim": 48, "embeddingScale": math.sqrt(256)})
    W = params(cfg)
    for n, w in W.items():  # projections at std 1/sqrt(fan-in), as a trained model's are about
        if w.dim() == 2 and "embed" not in n:
            W[n] = w / 0.3 / math.sqrt(w.shape[1])
    # phi3 files hold q, k, v as one attn_qkv and gate, up as one ffn_up (rows stacked in that order)
    fused = {"model.layers.0.self_attn.qkv_proj.weight": ["q_proj", "k_proj", "v_proj"], "model.layers.0.mlp.gate_up_proj.weight": ["gate_proj", "up_proj"]}
    if arch == "phi3":
        for fname_, parts in fused.items():
            pre = fname_.rsplit(".", 2)[0]
            full = [f"{pre}.{q}.weight" for q in parts]
            W[fname_] = torch.cat([W.pop(q) for q in full], 0)
    kinds = {"model.embed_tokens.weight": "F16", "self_attn.qkv_proj": "Q4_K", "mlp.gate_up_proj": "Q6_K", "self_attn.q_proj": "Q4_K", "self_attn.k_proj": "Q6_K", "self_attn.v_proj": "Q8_0", "self_attn.o_proj": "Q4_0",
             "mlp.gate_proj": "Q4_K", "mlp.up_proj": "Q6_K", "mlp.down_proj": "Q8_0", "lm_head.weight": "BF16" if arch == "llama" else "Q6_K"}
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    for s, g in (("input_layernorm", "attn_norm"), ("post_attention_layernorm", "ffn_norm"), ("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"),
                 ("self_attn.v_proj", "attn_v"), ("self_attn.o_proj", "attn_output"), ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"), ("mlp.down_proj", "ffn_down")):
        names[f"model.layers.0.{s}.weight"] = f"blk.0.{g}.weight"
        names[f"model.layers.0.{s}.bias"] = f"blk.0.{g}.bias"
    names["model.layers.0.self_attn.qkv_proj.weight"] = "blk.0.attn_qkv.weight"
    names["model.layers.0.mlp.gate_up_proj.weight"] = "blk.0.ffn_up.weight"
    H, Hkv, D = 4, 2, cfg.get("headDim", 64)

    def permute(w, n_head):  # llama.cpp's convert reorders Q/K rows for ggml's pairwise RoPE
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    def unpermute(w, n_head):
        return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    x = np.arange(2 * 64 * 3, dtype=np.float32).reshape(2 * 64, 3)
    assert (unpermute(permute(x, 2), 2) == x).all()
    deqW, tens = {}, {}
    for name, w in W.items():
        kind = next((v for k, v in kinds.items() if k in name), "F32") if name.endswith("weight") else "F32"
        a = w.numpy().astype(np.float32)
        if arch == "gemma" and name.endswith("norm.weight"):  # llama.cpp's converter stores Gemma's norms as 1 + w
            a = a + 1
        if arch == "llama" and name.endswith("q_proj.weight"):
            a = permute(a, H)
        if arch == "llama" and name.endswith("k_proj.weight"):
            a = permute(a, Hkv)
        if kind == "F32":
            raw, deq = a.tobytes(), a
        elif kind == "F16":
            raw, deq = f16(a).tobytes(), f16(a).astype(np.float32)
        elif kind == "BF16":
            t = torch.from_numpy(a).bfloat16()
            raw, deq = t.view(torch.int16).numpy().tobytes(), t.float().numpy()
        else:
            raw, deq = {"Q8_0": q8_0, "Q4_0": q4_0, "Q4_K": q4_k, "Q6_K": q6_k}[kind](a)
        tens[names[name]] = (kind, list(a.shape), raw)
        d = torch.from_numpy(np.ascontiguousarray(deq))
        if arch == "llama" and name.endswith("q_proj.weight"):  # undo the reorder for the (rotate-half) reference
            d = torch.from_numpy(np.ascontiguousarray(unpermute(d.numpy(), H)))
        if arch == "llama" and name.endswith("k_proj.weight"):
            d = torch.from_numpy(np.ascontiguousarray(unpermute(d.numpy(), Hkv)))
        if arch == "gemma" and name.endswith("norm.weight"):
            d = w  # the reference applies 1 + w itself
        if name in fused:  # the reference reads the separate projections
            sizes = {"q_proj": H * D, "k_proj": Hkv * D, "v_proj": Hkv * D, "gate_proj": cfg["intermediateSize"], "up_proj": cfg["intermediateSize"]}
            pre = name.rsplit(".", 2)[0]
            for part, piece in zip(fused[name], torch.split(d, [sizes[q] for q in fused[name]], 0)):
                deqW[f"{pre}.{part}.weight"] = piece.contiguous()
            continue
        deqW[name] = d
    a_ = arch
    meta = {"general.architecture": arch, "general.name": "kiln tiny", "general.alignment": 32, f"{a_}.context_length": 64, f"{a_}.embedding_length": 256,
            f"{a_}.block_count": 1, f"{a_}.feed_forward_length": 512, f"{a_}.attention.head_count": 4, f"{a_}.attention.head_count_kv": 2,
            f"{a_}.rope.freq_base": cfg.get("ropeTheta", 10000.0), f"{a_}.attention.layer_norm_rms_epsilon": 1e-5, f"{a_}.vocab_size": V,
            "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2", "tokenizer.ggml.tokens": ("str", tokens),
            "tokenizer.ggml.token_type": ("i32", [1] * (V - 1) + [3]), "tokenizer.ggml.merges": ("str", merges),
            "tokenizer.ggml.bos_token_id": V - 1, "tokenizer.ggml.eos_token_id": V - 1,
            **({f"{a_}.attention.key_length": D, f"{a_}.attention.value_length": D} if arch == "gemma" else {}),
            **({f"{a_}.rope.dimension_count": D} if arch == "phi3" else {}),
            "tokenizer.chat_template": "{% for m in messages %}<{{ m.role }}>{{ m.content }}<|end|>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"}
    out_dir = os.path.join(HERE, "checkpoints", "gguf")
    os.makedirs(out_dir, exist_ok=True)
    write_gguf(os.path.join(out_dir, fname), meta, tens)
    ids = torch.tensor([[5, 77, 200, 31, 290, 3, 101]], dtype=torch.int32)
    if arch == "phi3":  # the float reference reads the separate projections too
        for fname_, parts in fused.items():
            pre = fname_.rsplit(".", 2)[0]
            sizes = {"q_proj": H * D, "k_proj": Hkv * D, "v_proj": Hkv * D, "gate_proj": cfg["intermediateSize"], "up_proj": cfg["intermediateSize"]}
            for part, piece in zip(parts, torch.split(W.pop(fname_), [sizes[q] for q in parts], 0)):
                W[f"{pre}.{part}.weight"] = piece.contiguous()
    with torch.no_grad():
        logits_deq = decoder_forward(cfg, deqW, ids)
        logits_f32 = decoder_forward(cfg, W, ids)
    with open(os.path.join(out_dir, "golden.json" if arch == "llama" else f"golden-{arch}.json"), "w") as f:
        json.dump({"generator": "tests/golden/checkpoints.py", "ids": enc(ids), "logits": enc(logits_deq), "floatLogits": enc(logits_f32),
                   "tokens": tokens, "merges": merges, "types": {k: v[0] for k, v in tens.items()}}, f, separators=(",", ":"))
    print(f"gguf {arch}: {len(tens)} tensors, {os.path.getsize(os.path.join(out_dir, fname)) // 1024} KiB")


gguf_model("llama", "tiny-llama.gguf")
gguf_model("qwen2", "tiny-qwen2.gguf")
gguf_model("gemma", "tiny-gemma.gguf")
gguf_model("phi3", "tiny-phi3.gguf")
