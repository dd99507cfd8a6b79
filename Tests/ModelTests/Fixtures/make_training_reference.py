#!/usr/bin/env python3
"""Independent reference for lorad's LoRA training pass (Sources/Model/Training).

Writes, deterministically (numpy seed 2024):
  tiny_train.gguf        a tiny Llama (2 layers, dim 64, 4 heads / 2 KV heads, ffn 128, vocab 320,
                         tied output head) with random weights, quantized by gguf-py (Q4_1 blocks,
                         Q8_0 token embedding) and written with gguf-py's GGUFWriter;
  tiny_train_lora.f32    a rank-4 LoRA (alpha 8, scale 2) on q, k, v, o, gate, up, down of both
                         layers, raw little-endian float32 in lorad's LoRALayout order: for each
                         layer, for each module in that order, A (rank x cols) then B (rows x rank),
                         row-major; A and B both non-zero so both get a gradient;
  training_reference.json  for two sequences (prompt + completion, weights 1 and -0.6): each
                         completion token's log-probability, and the gradient of
                         L = sum_s weight_s * log pi(y_s | x_s) with respect to 6 entries (3 of A,
                         3 of B) of every module of every layer, by central finite differences of
                         a float64 forward (h = 1e-6).

The forward is numpy float64 over the weights as gguf-py dequantizes them from the written file
(the same recipe as make_numpy_reference.py): RMSNorm, q/k/v/o and gate/up/down each as
x @ (W + scale * B @ A).T, Llama RoPE (adjacent pairs), causal softmax attention with GQA,
SwiGLU, final norm, tied head, log-softmax. Nothing here uses lorad or llama.cpp code.
Run: python3 make_training_reference.py   (needs numpy and gguf)
"""
import json, os
import numpy as np
import gguf
from gguf import GGUFReader, GGUFWriter, GGMLQuantizationType as QT
from gguf.quants import dequantize, quantize

HERE = os.path.dirname(os.path.abspath(__file__))
GGUF_PATH = os.path.join(HERE, "tiny_train.gguf")
LORA_PATH = os.path.join(HERE, "tiny_train_lora.f32")
JSON_PATH = os.path.join(HERE, "training_reference.json")

L, DIM, H, KV, FFN, VOCAB, CTX = 2, 64, 4, 2, 128, 320, 128
HD = DIM // H
ROPE_BASE, EPS = 10000.0, 1e-5
RANK, ALPHA = 4, 8.0
SCALE = ALPHA / RANK
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
GGUF_NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
              "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
SHAPES = {"q_proj": (H * HD, DIM), "k_proj": (KV * HD, DIM), "v_proj": (KV * HD, DIM), "o_proj": (DIM, H * HD),
          "gate_proj": (FFN, DIM), "up_proj": (FFN, DIM), "down_proj": (DIM, FFN)}
SEQUENCES = [  # (tokens, prompt length, weight)
    ([5, 77, 120, 33, 200, 1, 9, 150, 42, 42, 260, 7, 99, 18, 301], 6, 1.0),
    ([17, 64, 3, 80, 11, 255, 128, 319, 0, 44, 45], 3, -0.6),
]


def write_model(rng):
    w = GGUFWriter(GGUF_PATH, "llama")
    w.add_name("tiny-train-reference")
    w.add_block_count(L)
    w.add_context_length(CTX)
    w.add_embedding_length(DIM)
    w.add_feed_forward_length(FFN)
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_rope_freq_base(ROPE_BASE)
    w.add_layer_norm_rms_eps(EPS)

    def matrix(name, rows, cols, scale, qtype=QT.Q4_1):
        f = (rng.standard_normal((rows, cols)) * scale).astype(np.float32)
        w.add_tensor(name, quantize(f, qtype), raw_dtype=qtype)

    def norm(name):
        w.add_tensor(name, (1 + 0.1 * rng.standard_normal(DIM)).astype(np.float32))

    matrix("token_embd.weight", VOCAB, DIM, 0.25, QT.Q8_0)
    norm("output_norm.weight")
    for l in range(L):
        p = f"blk.{l}."
        norm(p + "attn_norm.weight")
        for m in ["q_proj", "k_proj", "v_proj", "o_proj"]:
            rows, cols = SHAPES[m]
            matrix(p + GGUF_NAMES[m] + ".weight", rows, cols, 1 / np.sqrt(cols))
        norm(p + "ffn_norm.weight")
        for m in ["gate_proj", "up_proj", "down_proj"]:
            rows, cols = SHAPES[m]
            matrix(p + GGUF_NAMES[m] + ".weight", rows, cols, 1 / np.sqrt(cols))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_lora(rng):
    """Flat float32 vector in LoRALayout order, and (layer, module) -> (offset of A, offset of B)."""
    parts, offsets, off = [], {}, 0
    for l in range(L):
        for m in MODULES:
            rows, cols = SHAPES[m]
            a = rng.uniform(-1, 1, (RANK, cols)) / np.sqrt(cols)
            b = rng.uniform(-0.1, 0.1, (rows, RANK))
            offsets[(l, m)] = (off, off + RANK * cols)
            parts += [a.ravel(), b.ravel()]
            off += RANK * (rows + cols)
    return np.concatenate(parts).astype(np.float32), offsets


def load_weights():
    r = GGUFReader(GGUF_PATH)
    W = {}
    for t in r.tensors:
        a = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float64)
        W[t.name] = a.reshape([int(x) for x in reversed(t.shape)]) if len(t.shape) > 1 else a.reshape(-1)
    return W


def forward(W, lora, offsets, toks):
    """log p of each next token of `toks` (positions 0..n-2 predict 1..n-1), float64."""
    toks = np.asarray(toks)
    n = len(toks) - 1
    x = W["token_embd.weight"][toks[:n]]
    inv = ROPE_BASE ** (-np.arange(0, HD, 2) / HD)
    ang = np.arange(n)[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]

    def rope(q):
        a, b = q[..., 0::2], q[..., 1::2]
        out = np.empty_like(q)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
        return out

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS) * w

    def proj(x, l, m):
        rows, cols = SHAPES[m]
        oa, ob = offsets[(l, m)]
        A = lora[oa:oa + RANK * cols].reshape(RANK, cols)
        B = lora[ob:ob + rows * RANK].reshape(rows, RANK)
        return x @ (W[f"blk.{l}.{GGUF_NAMES[m]}.weight"] + SCALE * B @ A).T

    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(L):
        p = f"blk.{l}."
        h = rms(x, W[p + "attn_norm.weight"])
        q = rope(proj(h, l, "q_proj").reshape(n, H, HD))
        k = rope(proj(h, l, "k_proj").reshape(n, KV, HD))
        v = proj(h, l, "v_proj").reshape(n, KV, HD)
        out = np.zeros((n, H, HD))
        for hh in range(H):
            g = hh // (H // KV)
            s = q[:, hh] @ k[:, g].T / np.sqrt(HD) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            out[:, hh] = s @ v[:, g]
        x = x + proj(out.reshape(n, H * HD), l, "o_proj")
        h = rms(x, W[p + "ffn_norm.weight"])
        gt = proj(h, l, "gate_proj")
        x = x + proj((gt / (1 + np.exp(-gt))) * proj(h, l, "up_proj"), l, "down_proj")
    logits = rms(x, W["output_norm.weight"]) @ W["token_embd.weight"].T
    mx = logits.max(-1, keepdims=True)
    logp = logits - mx - np.log(np.exp(logits - mx).sum(-1, keepdims=True))
    return logp[np.arange(n), toks[1:]]


def objective(W, lora, offsets):
    return sum(wt * forward(W, lora, offsets, t)[pl - 1:].sum() for t, pl, wt in SEQUENCES)


def main():
    rng = np.random.default_rng(2024)
    write_model(rng)
    lora32, offsets = make_lora(rng)
    lora32.astype("<f4").tofile(LORA_PATH)
    lora = lora32.astype(np.float64)  # the float32 values, exactly, in float64
    W = load_weights()
    seqs = []
    for toks, pl, wt in SEQUENCES:
        lp = forward(W, lora, offsets, toks)[pl - 1:]
        seqs.append({"tokens": toks, "prompt_length": pl, "weight": wt, "token_logprobs": lp.tolist(),
                     "base_token_logprobs": forward(W, np.zeros_like(lora), offsets, toks)[pl - 1:].tolist()})
    h = 1e-6
    grads = []
    pick = np.random.default_rng(7)
    for l in range(L):
        for m in MODULES:
            rows, cols = SHAPES[m]
            oa, ob = offsets[(l, m)]
            for name, base, count in [("A", oa, RANK * cols), ("B", ob, rows * RANK)]:
                for i in sorted(pick.choice(count, 3, replace=False)):
                    e = base + int(i)
                    plus, minus = lora.copy(), lora.copy()
                    plus[e] += h
                    minus[e] -= h
                    g = (objective(W, plus, offsets) - objective(W, minus, offsets)) / (2 * h)
                    grads.append({"layer": l, "module": m, "factor": name, "index": int(i), "offset": e,
                                  "grad": g})
    out = {"generator": "Tests/ModelTests/Fixtures/make_training_reference.py",
           "method": "float64 numpy forward over gguf-py-dequantized weights of tiny_train.gguf with the LoRA of "
                     "tiny_train_lora.f32 (W + scale*B@A); gradient of sum_s weight_s*log pi(y_s|x_s) by central "
                     "finite differences, h=1e-6",
           "gguf_version": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0",
           "rank": RANK, "alpha": ALPHA, "modules": MODULES, "sequences": seqs, "gradients": grads,
           "objective": objective(W, lora, offsets)}
    with open(JSON_PATH, "w") as fp:
        json.dump(out, fp, indent=1)
    print(f"objective {out['objective']:.6f}, {len(grads)} gradient entries, "
          f"|g| max {max(abs(g['grad']) for g in grads):.4f}")


if __name__ == "__main__":
    main()
