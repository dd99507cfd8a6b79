#!/usr/bin/env python3
"""Reference for lorad's DPO and REINFORCE losses (Sources/Learning/Learner/PreferenceLosses.swift),
in numpy float64.

DPO (TRL's DPOTrainer, sigmoid loss): h = beta * ((pi_w - ref_w) - (pi_l - ref_l)),
loss = mean over pairs of -log sigmoid(h). Pairs: per prompt, the i-th up with the i-th down.

REINFORCE, leave-one-out baseline (RLOO) with the KL penalty folded into the reward:
r'_i = r_i - beta * (pi_i - ref_i) (r = +1 up, -1 down), A_i = r'_i - mean_{j != i} r'_j (held fixed),
loss = -mean_i A_i * pi_i.

The per-sequence weights dLoss/dpi_i are central finite differences (h = 1e-6) of those losses,
not a derivative formula (for REINFORCE the advantages are computed once and held fixed, as a
detached baseline is). Run: python3 make_loss_reference.py  (needs numpy); writes loss_reference.json.
"""
import json, os
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BETA = 0.1


def log_sigmoid(u):
    return -np.logaddexp(0, -u)


def dpo_pairs(prompts, desirable):
    ups, downs, order = {}, {}, []
    for i, (k, d) in enumerate(zip(prompts, desirable)):
        if k not in ups and k not in downs:
            order.append(k)
        (ups if d else downs).setdefault(k, []).append(i)
    return [(c, r) for k in order for c, r in zip(ups.get(k, []), downs.get(k, []))]


def dpo_loss(policy, ref, pairs):
    h = np.array([BETA * ((policy[c] - ref[c]) - (policy[r] - ref[r])) for c, r in pairs])
    return float(-log_sigmoid(h).mean())


def rloo_advantages(policy, ref, desirable):
    shaped = np.where(desirable, 1.0, -1.0) - BETA * (policy - ref)
    n = len(shaped)
    return shaped - (shaped.sum() - shaped) / (n - 1)


def fd(f, x):
    h, out = 1e-6, []
    for i in range(len(x)):
        p, m = x.copy(), x.copy()
        p[i] += h
        m[i] -= h
        out.append((f(p) - f(m)) / (2 * h))
    return out


def main():
    rng = np.random.default_rng(5)
    n = 14
    policy = rng.uniform(-90, -10, n)
    ref = policy - rng.normal(0, 6, n)
    desirable = rng.random(n) < 0.5
    prompts = rng.integers(0, 5, n)
    pairs = dpo_pairs(prompts.tolist(), desirable.tolist())
    adv = rloo_advantages(policy, ref, desirable)
    rl = lambda p: float(-(adv * p).mean())
    out = {
        "generator": "Tests/LearningTests/Fixtures/make_loss_reference.py", "beta": BETA,
        "policy": policy.tolist(), "reference": ref.tolist(), "desirable": desirable.tolist(),
        "prompts": prompts.tolist(),
        "dpo": {"pairs": [[c, r] for c, r in pairs], "loss": dpo_loss(policy, ref, pairs),
                "weights": fd(lambda p: dpo_loss(p, ref, pairs), policy)},
        "reinforce": {"advantages": adv.tolist(), "loss": rl(policy), "weights": fd(rl, policy)},
    }
    with open(os.path.join(HERE, "loss_reference.json"), "w") as fp:
        json.dump(out, fp, indent=1)
    print(len(pairs), out["dpo"]["loss"], out["reinforce"]["loss"])


if __name__ == "__main__":
    main()
