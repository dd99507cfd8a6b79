#!/usr/bin/env python3
"""Reference for lorad's KTO loss (Sources/Model/Training/KTOLoss.swift), in numpy float64,
following TRL's KTOTrainer.kto_loss (Ethayarajh et al. 2024):
  kl = clamp(mean(policy_KL_logps - reference_KL_logps), min=0), detached;
  chosen:   desirable_weight   * (1 - sigmoid(beta * (logratio - kl)));
  rejected: undesirable_weight * (1 - sigmoid(beta * (kl - logratio)));
  loss = mean over the batch.
The weights lambda_D, lambda_U come from the counts (lambda_U = 1, lambda_D = n_U / n_D). The
per-example gradient dLoss/dlog pi_theta(y_i|x_i) is taken by central finite differences of that
loss (h = 1e-6, kl held fixed), not from a derivative formula.

Writes kto_reference.json with two batches: one with a positive KL estimate, one where the
estimate is negative and clamps to 0. Run: python3 make_kto_reference.py  (needs numpy)
"""
import json, os
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BETA = 0.1


def sigmoid(u):
    return 1 / (1 + np.exp(-u))


def loss(policy, ref, desirable, kl, lam_d, lam_u):
    r = policy - ref
    l = np.where(desirable, lam_d * (1 - sigmoid(BETA * (r - kl))), lam_u * (1 - sigmoid(BETA * (kl - r))))
    return l.mean()


def batch(rng, n, kl_shift):
    policy = rng.uniform(-120, -20, n)
    ref = policy - rng.normal(0, 8, n)  # log-ratios of several nats either way
    desirable = rng.random(n) < 0.6
    kl_ref = rng.uniform(-150, -40, n)
    kl_policy = kl_ref + rng.normal(kl_shift, 1.0, n)
    kl = max(0.0, float((kl_policy - kl_ref).mean()))
    n_d, n_u = int(desirable.sum()), int((~desirable).sum())
    lam_d, lam_u = (n_u / n_d, 1.0) if n_d and n_u else (1.0, 1.0)
    h = 1e-6
    grads = []
    for i in range(n):
        p, m = policy.copy(), policy.copy()
        p[i] += h
        m[i] -= h
        grads.append((loss(p, ref, desirable, kl, lam_d, lam_u) - loss(m, ref, desirable, kl, lam_d, lam_u)) / (2 * h))
    return {"policy": policy.tolist(), "reference": ref.tolist(), "desirable": desirable.tolist(),
            "kl_policy": kl_policy.tolist(), "kl_reference": kl_ref.tolist(), "z": kl,
            "desirable_weight": lam_d, "undesirable_weight": lam_u,
            "loss": float(loss(policy, ref, desirable, kl, lam_d, lam_u)), "weights": grads,
            "rewards": (BETA * (policy - ref)).tolist()}


def main():
    rng = np.random.default_rng(3)
    out = {"generator": "Tests/ModelTests/Fixtures/make_kto_reference.py", "beta": BETA,
           "batches": [batch(rng, 16, 2.0), batch(rng, 10, -3.0)]}
    with open(os.path.join(HERE, "kto_reference.json"), "w") as fp:
        json.dump(out, fp, indent=1)
    print([(b["z"], b["loss"]) for b in out["batches"]])


if __name__ == "__main__":
    main()
