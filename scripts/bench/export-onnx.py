#!/usr/bin/python3
"""Exports the generate benchmark's Llama-shaped model (random weights) to ONNX with a KV cache,
for onnxruntime-web to run side by side with kiln:
    /usr/bin/python3 scripts/bench/export-onnx.py OUT.onnx
Inputs: input_ids (1, T) int64, position_ids (1, T) int64, past_key_i / past_value_i
(1, Hkv, P, D); outputs: logits (1, T, V), present_key_i / present_value_i (1, Hkv, P + T, D).
The forward is written as transformers' Llama (rotate-half RoPE, GQA, SwiGLU, RMSNorm).
"""
import math
import sys

import torch
import torch.nn as nn

V, HS, L, H, HKV, I = 32000, 640, 12, 10, 5, 1728
D = HS // H
torch.manual_seed(0)


class RMS(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(HS))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


def rotate_half(x):
    return torch.cat((-x[..., D // 2:], x[..., : D // 2]), -1)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm, self.post_attention_layernorm = RMS(), RMS()
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(HS, H * D, bias=False), nn.Linear(HS, HKV * D, bias=False), nn.Linear(HS, HKV * D, bias=False)
        self.o_proj = nn.Linear(H * D, HS, bias=False)
        self.gate_proj, self.up_proj, self.down_proj = nn.Linear(HS, I, bias=False), nn.Linear(HS, I, bias=False), nn.Linear(I, HS, bias=False)

    def forward(self, h, cos, sin, pk, pv):
        B, T, _ = h.shape
        x = self.input_layernorm(h)
        q = self.q_proj(x).view(B, T, H, D).transpose(1, 2)
        k = self.k_proj(x).view(B, T, HKV, D).transpose(1, 2)
        v = self.v_proj(x).view(B, T, HKV, D).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = torch.cat([pk, k], 2)
        v = torch.cat([pv, v], 2)
        P = pk.shape[2]
        # transformers' repeat_kv: (B, Hkv, S, D) -> (B, H, S, D)
        kr = k.unsqueeze(2).expand(-1, -1, H // HKV, -1, -1).reshape(B, H, k.shape[2], D)
        vr = v.unsqueeze(2).expand(-1, -1, H // HKV, -1, -1).reshape(B, H, v.shape[2], D)
        s = q @ kr.transpose(-1, -2) / math.sqrt(D)
        i = torch.arange(T)[:, None] + P
        j = torch.arange(P + T)[None, :]
        s = s.masked_fill(j > i, float("-inf"))
        o = (torch.softmax(s, -1) @ vr).transpose(1, 2).reshape(B, T, H * D)
        h = h + self.o_proj(o)
        x = self.post_attention_layernorm(h)
        return h + self.down_proj(torch.nn.functional.silu(self.gate_proj(x)) * self.up_proj(x)), k, v


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(V, HS)
        self.layers = nn.ModuleList([Layer() for _ in range(L)])
        self.norm = RMS()
        self.lm_head = nn.Linear(HS, V, bias=False)
        self.register_buffer("inv_freq", 1.0 / (10000.0 ** (torch.arange(0, D, 2).float() / D)), persistent=False)

    def forward(self, input_ids, position_ids, *past):
        h = self.embed_tokens(input_ids)
        f = position_ids[..., None].float() * self.inv_freq
        emb = torch.cat([f, f], -1)[:, None]
        cos, sin = emb.cos(), emb.sin()
        presents = []
        for n, layer in enumerate(self.layers):
            h, k, v = layer(h, cos, sin, past[2 * n], past[2 * n + 1])
            presents += [k, v]
        return (self.lm_head(self.norm(h)), *presents)


if __name__ == "__main__":
    out = sys.argv[1]
    m = Model().eval()
    ids = torch.zeros(1, 3, dtype=torch.int64)
    pos = torch.arange(3)[None]
    past = [torch.zeros(1, HKV, 2, D) for _ in range(2 * L)]
    names_past = [f"past_{kv}_{n}" for n in range(L) for kv in ("key", "value")]
    names_present = [f"present_{kv}_{n}" for n in range(L) for kv in ("key", "value")]
    dyn = {"input_ids": {1: "T"}, "position_ids": {1: "T"}, "logits": {1: "T"}}
    for n in names_past:
        dyn[n] = {2: "P"}
    for n in names_present:
        dyn[n] = {2: "PT"}
    with torch.no_grad():
        torch.onnx.export(m, (ids, pos, *past), out, input_names=["input_ids", "position_ids", *names_past],
                          output_names=["logits", *names_present], dynamic_axes=dyn, opset_version=14)
    print(f"wrote {out}: {sum(p.numel() for p in m.parameters()) / 1e6:.1f}M parameters")
