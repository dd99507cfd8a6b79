#!/usr/bin/env python3
"""Reference for lorad's AdamW (Sources/Model/Training/AdamW.swift): PyTorch's torch.optim.AdamW
step written out in numpy float64 (decoupled weight decay, bias-corrected moments, eps added to
the bias-corrected sqrt(v)), after global-norm gradient clipping (torch.nn.utils.clip_grad_norm_:
scale by max_norm / (norm + 1e-6) when norm > max_norm -- lorad scales by max_norm / norm; the
1e-6 is below float32 resolution at these norms and is left out here too).

Writes adamw_reference.json: 128 starting parameters (float32 values), 4 steps of gradients
(the second and fourth with norms above the clip), the settings, and after each step the
parameters, m and v, and the gradient norm before clipping.
Run: python3 make_adamw_reference.py  (needs numpy)
"""
import json, os
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
N = 128
LR, B1, B2, EPS, WD, CLIP = 1e-2, 0.9, 0.999, 1e-8, 0.1, 1.0


def main():
    rng = np.random.default_rng(11)
    p = rng.uniform(-0.5, 0.5, N).astype(np.float32).astype(np.float64)
    grads = []
    for step, scale in enumerate([0.05, 0.5, 0.01, 2.0]):
        grads.append((rng.standard_normal(N) * scale).astype(np.float32).astype(np.float64))
    m = np.zeros(N)
    v = np.zeros(N)
    steps = []
    p0 = p.copy()
    for t, g in enumerate(grads, start=1):
        norm = float(np.sqrt((g * g).sum()))
        if norm > CLIP:
            g = g * (CLIP / norm)
        p = p * (1 - LR * WD)
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        bc1, bc2 = 1 - B1 ** t, 1 - B2 ** t
        p = p - (LR / bc1) * m / (np.sqrt(v) / np.sqrt(bc2) + EPS)
        steps.append({"grad_norm": norm, "params": p.tolist(), "m": m.tolist(), "v": v.tolist()})
    out = {"generator": "Tests/ModelTests/Fixtures/make_adamw_reference.py",
           "settings": {"lr": LR, "beta1": B1, "beta2": B2, "eps": EPS, "weight_decay": WD, "max_grad_norm": CLIP},
           "params0": p0.tolist(), "grads": [g.tolist() for g in grads], "steps": steps}
    with open(os.path.join(HERE, "adamw_reference.json"), "w") as fp:
        json.dump(out, fp, indent=1)


if __name__ == "__main__":
    main()
