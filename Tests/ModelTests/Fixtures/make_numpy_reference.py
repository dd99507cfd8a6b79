#!/usr/bin/env python3
"""Exact-math reference for lorad's forward pass: the real model's weights dequantized with
gguf-py (an implementation independent of both lorad and llama.cpp's C code), then the
Llama forward in float64 numpy — no activation quantization, no float16 anywhere.

Writes numpy_logits.json: for each prompt (token ids), the top-20 (id, logit) of the last
position. lorad's float path must land very close; its int8 path (like llama.cpp's) within
the noise that 8-bit activations bring. Run: python3 make_numpy_reference.py  (needs gguf, numpy)
"""
import hashlib, json, os, sys
import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "../../../models/SmolLM2-135M-Instruct.Q4_1.gguf")
PROMPTS = [
    [504, 3575, 282, 4649, 314],  # "The capital of France is"
    [1604, 3987, 46477, 24, 94, 727],  # "def fibonacci(n):"
]

def main():
    r = GGUFReader(MODEL)
    f = lambda k: r.fields[k].contents()
    arch = f("general.architecture")
    L = f(f"{arch}.block_count"); dim = f(f"{arch}.embedding_length")
    H = f(f"{arch}.attention.head_count"); KV = f(f"{arch}.attention.head_count_kv")
    base = f(f"{arch}.rope.freq_base"); eps = f(f"{arch}.attention.layer_norm_rms_epsilon")
    hd = dim // H
    T = {t.name: t for t in r.tensors}
    cache = {}
    def W(name):
        if name not in cache:
            t = T[name]
            a = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float64)
            cache[name] = a.reshape([int(x) for x in reversed(t.shape)]) if a.ndim == 1 and len(t.shape) > 1 else a
        return cache[name]
    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w
    def forward(toks):
        n = len(toks)
        inv = base ** (-np.arange(0, hd, 2) / hd)
        ang = np.arange(n)[:, None] * inv[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        def rope(q):  # llama's "normal" RoPE: adjacent pairs rotate
            a, b = q[..., 0::2], q[..., 1::2]
            out = np.empty_like(q)
            out[..., 0::2] = a * cos - b * sin
            out[..., 1::2] = a * sin + b * cos
            return out
        emb = W("token_embd.weight")
        x = emb[toks]
        mask = np.triu(np.full((n, n), -np.inf), 1)
        for l in range(L):
            p = f"blk.{l}."
            h = rms(x, W(p + "attn_norm.weight"))
            q = rope((h @ W(p + "attn_q.weight").T).reshape(n, H, hd))
            k = rope((h @ W(p + "attn_k.weight").T).reshape(n, KV, hd))
            v = (h @ W(p + "attn_v.weight").T).reshape(n, KV, hd)
            out = np.zeros((n, H, hd))
            for hh in range(H):
                g = hh // (H // KV)
                s = q[:, hh] @ k[:, g].T / np.sqrt(hd) + mask
                s = np.exp(s - s.max(-1, keepdims=True))
                s /= s.sum(-1, keepdims=True)
                out[:, hh] = s @ v[:, g]
            x = x + out.reshape(n, dim) @ W(p + "attn_output.weight").T
            h = rms(x, W(p + "ffn_norm.weight"))
            gt = h @ W(p + "ffn_gate.weight").T
            x = x + ((gt / (1 + np.exp(-gt))) * (h @ W(p + "ffn_up.weight").T)) @ W(p + "ffn_down.weight").T
        head = W("output.weight") if "output.weight" in T else emb
        return rms(x, W("output_norm.weight"))[-1] @ head.T
    cases = []
    for toks in PROMPTS:
        logits = forward(toks)
        top = np.argsort(-logits, kind="stable")[:20]
        cases.append({"prompt_ids": toks, "top_logits": [[int(i), float(logits[i])] for i in top]})
        print(toks, "->", int(top[0]), float(logits[top[0]]), file=sys.stderr)
    sha = hashlib.sha256(open(MODEL, "rb").read()).hexdigest()
    out = {"generator": "Tests/ModelTests/Fixtures/make_numpy_reference.py", "model_sha256": sha,
           "method": "weights dequantized by gguf-py; float64 Llama forward in numpy; top-20 logits of the last position",
           "cases": cases}
    with open(os.path.join(HERE, "numpy_logits.json"), "w") as fp:
        json.dump(out, fp, indent=1)

if __name__ == "__main__":
    main()
