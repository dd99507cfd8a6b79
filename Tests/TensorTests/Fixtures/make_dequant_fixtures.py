#!/usr/bin/env python3
"""Dequantization fixtures for TensorTests, computed independently of lorad's C kernels.

For each ggml type, builds random raw blocks with numpy (random quant bytes; finite f16 scales;
for F16/BF16 random finite bit patterns including zeros and subnormals) and dequantizes them with
gguf-py (`gguf.quants.dequantize`, pip package `gguf`). Writes, per type:
  dequant_<TYPE>.raw  the raw blocks, exactly as they sit in a GGUF file
  dequant_<TYPE>.f32  the expected floats, little-endian float32
Deterministic (seed 20240611). Run from anywhere: python3 make_dequant_fixtures.py
"""
import os

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize
from gguf.constants import GGML_QUANT_SIZES

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20240611)


def f16_bytes(values):
    return np.asarray(values, dtype=np.float16).view(np.uint8).reshape(-1, 2)


def random_blocks(qtype, nblocks):
    """(nblocks, type_size) uint8: random quant bytes with sensible finite scale fields."""
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(nblocks, type_size), dtype=np.uint8)
    scale = lambda lo, hi: f16_bytes(rng.uniform(lo, hi, nblocks) * rng.choice([1, 1, 1, 0.001], nblocks))
    if qtype in (T.Q4_0, T.Q8_0):
        raw[:, 0:2] = scale(-2, 2)                   # d (Q4_0 scales are negative when the max is)
    elif qtype == T.Q4_1:
        raw[:, 0:2] = scale(0, 2)                    # d
        raw[:, 2:4] = scale(-4, 4)                   # m
    elif qtype == T.Q4_K:
        raw[:, 0:2] = scale(0, 0.1)                  # d
        raw[:, 2:4] = scale(0, 0.1)                  # dmin
    elif qtype == T.Q6_K:
        raw[:, -2:] = scale(-0.1, 0.1)               # d (last field)
    return raw


def random_halves(qtype, n):
    """n random finite 16-bit floats (F16 or BF16), with some zeros and subnormals."""
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint32)
    if qtype == T.F16:
        finite = (bits & 0x7C00) != 0x7C00           # exponent all ones: inf / NaN
    else:
        finite = (bits & 0x7F80) != 0x7F80
    bits = np.where(finite, bits, bits & 0x83FF)     # clear the exponent: a subnormal instead
    bits[:8] = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00]
    return bits.astype(np.uint16).view(np.uint8)


def main():
    cases = [(T.F16, 512), (T.BF16, 512), (T.Q4_0, 48), (T.Q4_1, 48), (T.Q8_0, 48), (T.Q4_K, 6), (T.Q6_K, 6)]
    for qtype, count in cases:
        if qtype in (T.F16, T.BF16):
            raw = random_halves(qtype, count)        # count elements
        else:
            raw = random_blocks(qtype, count)        # count blocks
        if qtype == T.F16:
            expected = raw.view(np.float16).astype(np.float32)
        else:
            expected = dequantize(raw, qtype).reshape(-1).astype(np.float32)
        assert np.all(np.isfinite(expected)), qtype.name
        raw.reshape(-1).tofile(os.path.join(HERE, f"dequant_{qtype.name}.raw"))
        expected.astype("<f4").tofile(os.path.join(HERE, f"dequant_{qtype.name}.f32"))
        print(f"{qtype.name}: {raw.size} bytes -> {expected.size} floats")


if __name__ == "__main__":
    main()
