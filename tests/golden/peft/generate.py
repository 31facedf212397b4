#!/usr/bin/python3
"""Writes tests/golden/peft/<arch>-<method>/: LoRA, rsLoRA and DoRA adapters for the tiny llama
and qwen2 checkpoints (tests/golden/checkpoints) in Hugging Face PEFT's exact file layout
(adapter_config.json with every LoraConfig field, keys sorted; adapter_model.safetensors with
keys base_model.model.<module>.lora_A.weight (r, in), .lora_B.weight (out, r),
.lora_magnitude_vector (out,), metadata {"format": "pt"}), hand-built since Debian's torch 1.13
has no peft, and golden.json: logits for a fixed input from the unmerged forward (PEFT's
lora.Linear / DoRA math, written out), the loss and the gradient of every adapter tensor for a
fixed batch, and the logits of the merged weights (PEFT's merge). Also expected-files.json: what
the script's own reader (read_adapter) finds in each adapter, for the test to compare kiln's
written files to. Run with Debian's python3-torch:
    /usr/bin/python3 tests/golden/peft/generate.py
CI never runs this: what it writes is committed.
"""
import json
import math
import os
import runpy
import struct

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
CKPT = os.path.join(HERE, "..", "checkpoints")
os.environ["KILN_GOLDEN_NO_WRITE"] = "1"
REF = runpy.run_path(os.path.join(HERE, "..", "generate.py"))
decoder_forward, enc = REF["decoder_forward"], REF["enc"]
G = torch.Generator().manual_seed(20261202)

ST_DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "U8": torch.uint8}
DT_ST = {v: k for k, v in ST_DT.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        buf = bytearray(raw[8 + n + a:8 + n + b])
        dt = ST_DT[e["dtype"]]
        t = torch.frombuffer(buf, dtype=torch.int16).view(dt) if dt == torch.bfloat16 else torch.frombuffer(buf, dtype=dt)
        out[name] = t.reshape(e["shape"]).clone()
    return out, meta


def write_safetensors(path, tensors, metadata):
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        b = t.numpy().tobytes()
        header[name] = {"dtype": DT_ST[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_checkpoint(arch):
    d = os.path.join(CKPT, arch)
    W = {}
    files = [f for f in sorted(os.listdir(d)) if f.endswith(".safetensors")]
    for f in files:
        W.update(read_safetensors(os.path.join(d, f))[0])
    return {k: v.float() for k, v in W.items()}


BASE = {"vocabSize": 40, "hiddenSize": 16, "numLayers": 2, "numHeads": 4, "numKVHeads": 2, "intermediateSize": 24, "maxPositionEmbeddings": 32, "normEps": 1e-6}
CFG = {"llama": BASE, "qwen2": {**BASE, "qkvBias": True, "tieWordEmbeddings": True, "ropeTheta": 1e6}}
HF_CLASS = {"llama": ("LlamaForCausalLM", "llama"), "qwen2": ("Qwen2ForCausalLM", "qwen2")}

# PEFT's LoraConfig.to_dict() fields (PEFT 0.18, runtime_config dropped) with their defaults
PEFT_FIELDS = {
    "alora_invocation_tokens": None, "alpha_pattern": {}, "arrow_config": None, "auto_mapping": None, "base_model_name_or_path": None, "bias": "none",
    "corda_config": None, "ensure_weight_tying": False, "eva_config": None, "exclude_modules": None, "fan_in_fan_out": False, "inference_mode": False,
    "init_lora_weights": True, "kasa_config": None, "layer_replication": None, "layers_pattern": None, "layers_to_transform": None, "loftq_config": {},
    "lora_alpha": 8, "lora_bias": False, "lora_dropout": 0.0, "lora_ga_config": None, "megatron_config": None, "megatron_core": "megatron.core",
    "modules_to_save": None, "monteclora_config": None, "peft_type": "LORA", "peft_version": None, "qalora_group_size": 16, "r": 8, "rank_pattern": {},
    "revision": None, "target_modules": None, "target_parameters": None, "task_type": None, "trainable_token_indices": None, "use_bdlora": None,
    "use_dora": False, "use_qalora": False, "use_rslora": False, "velora_config": None,
}

# the adapters: r=4 with some targets; rsLoRA with rank/alpha patterns; DoRA
METHODS = {
    "lora": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj", "down_proj"]},
    "rslora": {"r": 4, "lora_alpha": 8, "use_rslora": True, "target_modules": ["k_proj", "o_proj", "up_proj"], "rank_pattern": {"up_proj": 2}, "alpha_pattern": {"o_proj": 16}},
    "dora": {"r": 4, "lora_alpha": 8, "use_dora": True, "target_modules": ["q_proj", "v_proj", "gate_proj"], "layers_to_transform": [1]},
}


def pattern_key(patterns, key):
    for p in patterns:
        if __import__("re").match(rf"(.*\.)?({p})$", key):
            return p
    return key


def targets(cfg, conf):
    """PEFT's check_target_module_exists over the decoder's Linear names (list targets, layers_to_transform)."""
    names = []
    for i in range(cfg["numLayers"]):
        for n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"):
            names.append(f"model.layers.{i}.{n}")
    out = []
    for key in names:
        if not any(key.endswith("." + t) for t in conf["target_modules"]):
            continue
        lt = conf.get("layers_to_transform")
        if lt is not None and int(__import__("re").match(r".*?\.[^.]*\.(\d+)\.", key).group(1)) not in lt:
            continue
        out.append(key)
    return out


def make_adapter(cfg, W, conf):
    """Seeded adapter tensors in PEFT's file keys (A, B, m), and each target's rank and scaling."""
    tensors, layers = {}, {}
    for key in targets(cfg, conf):
        r = conf.get("rank_pattern", {}).get(pattern_key(conf.get("rank_pattern", {}), key), conf["r"])
        alpha = conf.get("alpha_pattern", {}).get(pattern_key(conf.get("alpha_pattern", {}), key), conf["lora_alpha"])
        s = alpha / math.sqrt(r) if conf.get("use_rslora") else alpha / r
        w = W[key + ".weight"]
        out_f, in_f = w.shape
        A = torch.randn(r, in_f, generator=G) * 0.3
        B = torch.randn(out_f, r, generator=G) * 0.2  # non-zero: a trained adapter
        p = "base_model.model." + key
        tensors[p + ".lora_A.weight"], tensors[p + ".lora_B.weight"] = A, B
        if conf.get("use_dora"):
            norm = torch.linalg.norm(w + s * (B @ A), dim=1)
            tensors[p + ".lora_magnitude_vector"] = norm * (1 + 0.2 * torch.randn(out_f, generator=G))  # as after some training
        layers[key] = s
    return tensors, layers


def patched_F(linear):
    """torch.nn.functional for decoder_forward, with F.linear's output passed through linear(x, w, b, y)."""

    class PatchedF:
        def __getattr__(self, name):
            return getattr(F, name)

        def linear(self, x, w, b=None):
            return linear(x, w, b, F.linear(x, w, b))

    return PatchedF()


def lora_forward(W, adapter, scales):
    """F for decoder_forward whose linear applies PEFT's lora.Linear forward to the targeted weights."""
    by_id = {id(W[k + ".weight"]): k for k in scales}

    def linear(x, w, b, y):
        key = by_id.get(id(w))
        if key is None:
            return y
        p = "base_model.model." + key
        A, B, s = adapter[p + ".lora_A.weight"], adapter[p + ".lora_B.weight"], scales[key]
        lora = F.linear(F.linear(x, A), B)
        m = adapter.get(p + ".lora_magnitude_vector")
        if m is None:
            return y + lora * s
        # DoRA (peft/tuners/lora/dora.py): the row norm detached; the base output less its bias reused
        norm = torch.linalg.norm(w + s * (B @ A).detach(), dim=1).detach()
        scale = (m / norm).view(1, -1)
        base = y - b if b is not None else y
        return y + (scale - 1) * base + scale * lora * s

    return patched_F(linear)


def merged_weights(W, adapter, scales):
    """PEFT's merge: W + s·B·A; DoRA: (m / ‖W + s·B·A‖) · (W + s·B·A)."""
    out = dict(W)
    for key, s in scales.items():
        p = "base_model.model." + key
        w = W[key + ".weight"] + s * (adapter[p + ".lora_B.weight"] @ adapter[p + ".lora_A.weight"])
        m = adapter.get(p + ".lora_magnitude_vector")
        if m is not None:
            w = (m / torch.linalg.norm(w, dim=1)).view(-1, 1) * w
        out[key + ".weight"] = w
    return out


def config_json(conf, arch):
    c = {**PEFT_FIELDS, **conf, "inference_mode": True}
    cls = HF_CLASS[arch]
    c["auto_mapping"] = {"base_model_class": cls[0], "parent_library": f"transformers.models.{cls[1]}.modeling_{cls[1]}"}
    c["base_model_name_or_path"] = f"tests/golden/checkpoints/{arch}"
    return json.dumps(c, indent=2, sort_keys=True)


def read_adapter(d):
    """The golden's own reader of a PEFT adapter folder: config fields, keys, shapes, dtypes; checks what PEFT's loader needs."""
    with open(os.path.join(d, "adapter_config.json")) as f:
        conf = json.load(f)
    assert conf["peft_type"] == "LORA", conf["peft_type"]
    unknown = set(conf) - set(PEFT_FIELDS)
    assert not unknown, f"fields PEFT does not know: {unknown}"
    tensors, meta = read_safetensors(os.path.join(d, "adapter_model.safetensors"))
    assert meta == {"format": "pt"}, meta
    for k, t in tensors.items():
        assert k.startswith("base_model.model."), k
        assert k.endswith((".lora_A.weight", ".lora_B.weight", ".lora_magnitude_vector")), k
        assert ".default." not in k, k
    return {
        "config": {k: conf[k] for k in ("peft_type", "r", "lora_alpha", "use_rslora", "use_dora", "bias", "inference_mode", "rank_pattern", "alpha_pattern", "layers_to_transform", "fan_in_fan_out", "init_lora_weights", "lora_dropout", "modules_to_save", "task_type")},
        "configKeys": sorted(conf),
        "targets": sorted(conf["target_modules"]),
        "tensors": {k: {"shape": list(t.shape), "dtype": DT_ST[t.dtype]} for k, t in sorted(tensors.items())},
    }


ids1 = torch.tensor([[1, 5, 12, 0, 7, 33, 21]], dtype=torch.int32)
batch = torch.tensor([[3, 9, 27, 4, 15, 30], [8, 2, 19, 36, 11, 6]], dtype=torch.int32)
labels = torch.tensor([[9, 27, 4, 15, 30, 1], [2, 19, 36, 11, 6, 22]], dtype=torch.int64)

expected = {}
for arch in ("llama", "qwen2"):
    cfg = CFG[arch]
    W = load_checkpoint(arch)
    for method, conf in METHODS.items():
        adapter, scales = make_adapter(cfg, W, conf)
        out_dir = os.path.join(HERE, f"{arch}-{method}")
        os.makedirs(out_dir, exist_ok=True)
        write_safetensors(os.path.join(out_dir, "adapter_model.safetensors"), adapter, {"format": "pt"})
        with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
            f.write(config_json(conf, arch))
        g = decoder_forward.__globals__
        F_orig = g["F"]
        leaves = {k: v.clone().requires_grad_(True) for k, v in adapter.items()}
        try:
            g["F"] = lora_forward(W, leaves, scales)
            with torch.no_grad():
                logits = decoder_forward(cfg, W, ids1)
            out = decoder_forward(cfg, W, batch)
            loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), labels.reshape(-1))
            loss.backward()
        finally:
            g["F"] = F_orig
        with torch.no_grad():
            merged = decoder_forward(cfg, merged_weights(W, adapter, scales), ids1)
            base = decoder_forward(cfg, W, ids1)
        assert (merged - logits).abs().max() < 1e-4 * logits.abs().max(), "merged != unmerged"
        assert (base - logits).abs().max() > 1e-2 * logits.abs().max(), "the adapter changes too little to test"
        golden = {"generator": "tests/golden/peft/generate.py", "torch": torch.__version__, "arch": arch, "method": method,
                  "ids": enc(ids1), "logits": enc(logits), "mergedLogits": enc(merged), "batch": enc(batch), "labels": enc(labels),
                  "loss": float(loss), "grads": {k: enc(v.grad) for k, v in sorted(leaves.items())}}
        with open(os.path.join(out_dir, "golden.json"), "w") as f:
            json.dump(golden, f, separators=(",", ":"))
        expected[f"{arch}-{method}"] = read_adapter(out_dir)
        print(f"{arch}-{method}: {len(adapter)} tensors, loss {float(loss):.4f}")


# ---- fused architectures: PEFT LoRAs on GPT-2's c_attn / c_proj (Conv1D) and Phi-3's qkv_proj / gate_up_proj
# in their Hugging Face module names, one dense A shared by the fused parts as real PEFT makes them. The
# reference runs decoder_forward on the split (kiln-named) weights; each part's LoRA is the shared A leaf
# and its rows of the B leaf, so the forward equals PEFT's on the fused module and autograd gives the
# gradients of the PEFT tensors themselves.
FUSED_CFG = {
    "gpt2": {k: v for k, v in BASE.items() if k != "normEps"} | {"norm": "layernorm", "positional": "learned", "mlp": "plain", "act": "gelu_tanh", "mlpBias": True, "qkvBias": True, "oBias": True, "tieWordEmbeddings": True, "numKVHeads": 4},
    "phi3": BASE,
}
HF_CLASS.update({"gpt2": ("GPT2LMHeadModel", "gpt2"), "phi3": ("Phi3ForCausalLM", "phi3")})
FUSED_CONF = {
    "gpt2": {"r": 4, "lora_alpha": 8, "target_modules": ["c_attn", "c_proj"], "fan_in_fan_out": True},
    "phi3": {"r": 4, "lora_alpha": 8, "target_modules": ["qkv_proj", "gate_up_proj", "down_proj"], "rank_pattern": {"gate_up_proj": 3}},
}


def fused_modules(arch, cfg):
    """HF module -> (is Conv1D, [(kiln weight name, row range)]) for each linear module of the checkpoint."""
    hs, H, Hkv = cfg["hiddenSize"], cfg["numHeads"], cfg.get("numKVHeads", cfg["numHeads"])
    D = hs // H
    q, kv, I = H * D, Hkv * D, cfg["intermediateSize"]
    out = {}
    for i in range(cfg["numLayers"]):
        p = f"model.layers.{i}."
        if arch == "gpt2":
            h = f"transformer.h.{i}."
            out[h + "attn.c_attn"] = (True, [(p + "self_attn.q_proj", 0, q), (p + "self_attn.k_proj", q, q + kv), (p + "self_attn.v_proj", q + kv, q + 2 * kv)])
            out[h + "attn.c_proj"] = (True, [(p + "self_attn.o_proj", 0, hs)])
            out[h + "mlp.c_fc"] = (True, [(p + "mlp.fc1", 0, I)])
            out[h + "mlp.c_proj"] = (True, [(p + "mlp.fc2", 0, hs)])
        else:
            out[p + "self_attn.qkv_proj"] = (False, [(p + "self_attn.q_proj", 0, q), (p + "self_attn.k_proj", q, q + kv), (p + "self_attn.v_proj", q + kv, q + 2 * kv)])
            out[p + "self_attn.o_proj"] = (False, [(p + "self_attn.o_proj", 0, hs)])
            out[p + "mlp.gate_up_proj"] = (False, [(p + "mlp.gate_proj", 0, I), (p + "mlp.up_proj", I, 2 * I)])
            out[p + "mlp.down_proj"] = (False, [(p + "mlp.down_proj", 0, hs)])
    return out


def from_hf(arch, cfg, H):
    """The checkpoint's tensors in kiln's names (split, untransposed): what decoder_forward reads."""
    W = {}
    if arch == "gpt2":
        W["model.embed_tokens.weight"], W["model.embed_positions.weight"] = H["transformer.wte.weight"], H["transformer.wpe.weight"]
        W["model.norm.weight"], W["model.norm.bias"] = H["transformer.ln_f.weight"], H["transformer.ln_f.bias"]
        for i in range(cfg["numLayers"]):
            p, h = f"model.layers.{i}.", f"transformer.h.{i}."
            for a, b in (("ln_1", "input_layernorm"), ("ln_2", "post_attention_layernorm")):
                W[p + b + ".weight"], W[p + b + ".bias"] = H[h + a + ".weight"], H[h + a + ".bias"]
    else:
        W = {k: v for k, v in H.items() if not k.endswith(("qkv_proj.weight", "gate_up_proj.weight"))}
    for mod, (conv, parts) in fused_modules(arch, cfg).items():
        w = H[mod + ".weight"].T if conv else H[mod + ".weight"]
        b = H.get(mod + ".bias")
        for kname, r0, r1 in parts:
            W[kname + ".weight"] = w[r0:r1].contiguous()
            if b is not None:
                W[kname + ".bias"] = b[r0:r1].contiguous()
    return W


for arch in ("gpt2", "phi3"):
    cfg, conf = FUSED_CFG[arch], FUSED_CONF[arch]
    H = load_checkpoint(arch)
    W = from_hf(arch, cfg, H)
    mods = fused_modules(arch, cfg)
    adapter, scales, parts_of = {}, {}, {}
    for mod, (conv, parts) in mods.items():
        if not any(mod.endswith("." + t) for t in conf["target_modules"]):
            continue
        r = conf.get("rank_pattern", {}).get(pattern_key(conf.get("rank_pattern", {}), mod), conf["r"])
        alpha = conf.get("alpha_pattern", {}).get(pattern_key(conf.get("alpha_pattern", {}), mod), conf["lora_alpha"])
        out_f, in_f = parts[-1][2], W[parts[0][0] + ".weight"].shape[1]
        pk = "base_model.model." + mod
        adapter[pk + ".lora_A.weight"] = torch.randn(r, in_f, generator=G) * 0.3
        adapter[pk + ".lora_B.weight"] = torch.randn(out_f, r, generator=G) * 0.2
        for kname, r0, r1 in parts:
            scales[kname] = alpha / r
            parts_of[kname] = (pk, r0, r1)
    leaves = {k: v.clone().requires_grad_(True) for k, v in adapter.items()}

    def part_lora(T):
        """kiln-name -> (A, B rows, s) from the PEFT tensors T."""
        return {kn: (T[pk + ".lora_A.weight"], T[pk + ".lora_B.weight"][r0:r1], scales[kn]) for kn, (pk, r0, r1) in parts_of.items()}

    def forward_with(T):
        by_id = {id(W[kn + ".weight"]): v for kn, v in part_lora(T).items()}

        def linear(x, w, b, y):
            l = by_id.get(id(w))
            return y if l is None else y + F.linear(F.linear(x, l[0]), l[1]) * l[2]

        return patched_F(linear)

    out_dir = os.path.join(HERE, f"{arch}-lora")
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "adapter_model.safetensors"), adapter, {"format": "pt"})
    with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
        f.write(config_json(conf, arch))
    g = decoder_forward.__globals__
    F_orig = g["F"]
    try:
        g["F"] = forward_with(adapter)
        with torch.no_grad():
            logits = decoder_forward(cfg, W, ids1)
        g["F"] = forward_with(leaves)
        out = decoder_forward(cfg, W, batch)
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), labels.reshape(-1))
        loss.backward()
    finally:
        g["F"] = F_orig
    with torch.no_grad():
        Wm = dict(W)
        for kn, (A, B, s) in part_lora(adapter).items():
            Wm[kn + ".weight"] = W[kn + ".weight"] + s * (B @ A)
        merged = decoder_forward(cfg, Wm, ids1)
        base = decoder_forward(cfg, W, ids1)
    assert (merged - logits).abs().max() < 1e-4 * logits.abs().max(), "merged != unmerged"
    assert (base - logits).abs().max() > 1e-2 * logits.abs().max(), "the adapter changes too little to test"
    golden = {"generator": "tests/golden/peft/generate.py", "torch": torch.__version__, "arch": arch, "method": "lora",
              "ids": enc(ids1), "logits": enc(logits), "mergedLogits": enc(merged), "batch": enc(batch), "labels": enc(labels),
              "loss": float(loss), "grads": {k: enc(v.grad) for k, v in sorted(leaves.items())}}
    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"))
    expected[f"{arch}-lora"] = read_adapter(out_dir)
    print(f"{arch}-lora: {len(adapter)} tensors, loss {float(loss):.4f}")

with open(os.path.join(HERE, "expected-files.json"), "w") as f:
    json.dump(expected, f, indent=1, sort_keys=True)
