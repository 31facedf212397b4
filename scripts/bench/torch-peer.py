#!/usr/bin/python3
"""PyTorch eager on CUDA as the peer on a machine with a real GPU (scripts/bench/real-gpu.ts runs
beside it): the Llama-shaped models of the generate benchmark, written in export-onnx.py, with
a KV cache, greedy decoding and the token read back each step, as kiln reads it back.
    python3 scripts/bench/torch-peer.py            # prints one JSON line per model
Random weights; f32 (TF32 off, as PyTorch's default for matmuls)."""
import importlib.util
import json
import os
import time

import torch

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("llama_bench", os.path.join(here, "export-onnx.py"))
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)

# name, (vocab, hidden, layers, heads, kv heads, intermediate), prompt, decode: as real-gpu.ts
MODELS = [("llama-shaped ~100M (random)", (32000, 640, 12, 10, 5, 1728), 128, 64),
          ("llama-shaped ~1.1B (random)", (32000, 2048, 16, 32, 8, 5632), 512, 64)]


def run(model, prompt, decode, dev):
    L, HKV, D = m.L, m.HKV, m.D
    ids = torch.tensor([[(i * 7 + 3) % m.V for i in range(prompt)]], device=dev)
    past = [torch.zeros(1, HKV, 0, D, device=dev) for _ in range(2 * L)]
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model(ids, torch.arange(prompt, device=dev)[None], *past)
    tok = int(out[0][0, -1].argmax())
    t1 = time.perf_counter()
    for s in range(decode - 1):
        out = model(torch.tensor([[tok]], device=dev), torch.tensor([[prompt + s]], device=dev), *out[1:])
        tok = int(out[0][0, -1].argmax())
    t2 = time.perf_counter()
    return prompt / (t1 - t0), (decode - 1) / (t2 - t1)


if __name__ == "__main__":
    dev = torch.device("cuda")
    torch.set_default_device(dev)  # the forward builds its causal mask with torch.arange
    for name, (V, HS, L, H, HKV, I), prompt, decode in MODELS:
        m.V, m.HS, m.L, m.H, m.HKV, m.I, m.D = V, HS, L, H, HKV, I, HS // H
        torch.manual_seed(0)
        with torch.no_grad():
            model = m.Model().to(dev).eval()
            run(model, 16, 4, dev)  # warm up
            pre, dec = run(model, prompt, decode, dev)
        print(json.dumps({"bench": "generate", "peer": f"pytorch {torch.__version__} eager cuda f32", "device": torch.cuda.get_device_name(), "model": name,
                          "prompt": prompt, "decode": decode, "prefillTokS": round(pre, 1), "decodeTokS": round(dec, 2)}), flush=True)
        del model
        torch.cuda.empty_cache()
