// llama.cpp's GGUF tensor names to kiln's parameter paths (Phi-3's fused attn_qkv and ffn_up
// split by rows).
import type { DecoderConfig } from './config.js';

/** Where a kiln parameter comes from in a GGUF file: a tensor, or a band of a fused tensor's rows. */
export interface GGUFSource {
  tensor: string;
  rows?: [number, number];
}

/** The GGUF tensor (and rows) behind each kiln parameter. Phi-3 files fuse q/k/v and gate/up. */
export function ggufSources(names: Iterable<string>, cfg: DecoderConfig): Map<string, GGUFSource> {
  const fixed: Record<string, string> = { 'token_embd.weight': 'model.embed_tokens.weight', 'output_norm.weight': 'model.norm.weight', 'output.weight': 'lm_head.weight' };
  const part: Record<string, string> = {
    attn_norm: 'input_layernorm', ffn_norm: 'post_attention_layernorm', attn_q: 'self_attn.q_proj', attn_k: 'self_attn.k_proj', attn_v: 'self_attn.v_proj',
    attn_output: 'self_attn.o_proj', ffn_gate: 'mlp.gate_proj', ffn_up: 'mlp.up_proj', ffn_down: 'mlp.down_proj',
  };
  const D = cfg.headDim ?? cfg.hiddenSize / cfg.numHeads;
  const [q, kv, I] = [cfg.numHeads * D, (cfg.numKVHeads ?? cfg.numHeads) * D, cfg.intermediateSize];
  const out = new Map<string, GGUFSource>();
  const all = new Set(names);
  for (const n of all) {
    if (fixed[n]) { out.set(fixed[n], { tensor: n }); continue; }
    const m = /^blk\.(\d+)\.(\w+)\.(weight|bias)$/.exec(n);
    if (!m) continue;
    const at = (p: string) => `model.layers.${m[1]}.${p}.${m[3]}`;
    if (m[2] === 'attn_qkv') {
      out.set(at('self_attn.q_proj'), { tensor: n, rows: [0, q] });
      out.set(at('self_attn.k_proj'), { tensor: n, rows: [q, q + kv] });
      out.set(at('self_attn.v_proj'), { tensor: n, rows: [q + kv, q + 2 * kv] });
    } else if (m[2] === 'ffn_up' && !all.has(`blk.${m[1]}.ffn_gate.${m[3]}`)) {
      // no ffn_gate beside it: ffn_up holds gate then up (Phi-3)
      out.set(at('mlp.gate_proj'), { tensor: n, rows: [0, I] });
      out.set(at('mlp.up_proj'), { tensor: n, rows: [I, 2 * I] });
    } else if (part[m[2]]) out.set(at(part[m[2]]), { tensor: n });
  }
  return out;
}

