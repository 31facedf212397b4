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
