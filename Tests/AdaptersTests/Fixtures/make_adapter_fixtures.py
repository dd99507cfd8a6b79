#!/usr/bin/env python3
"""Writes the LoRA adapter fixtures and llama.cpp's perplexities with them.

Two random adapters for SmolLM2-135M-Instruct (llama: 30 layers, dim 576, 9 heads / 3 kv heads
of 64, ffn 1536), each in both formats with the same numbers (every value is an f16 value):

  rank8_all/            PEFT directory, F16 safetensors. r=8, lora_alpha=16 -> scale 2, on all
                        seven projections of layers 0, 9, 18, 27 (target_modules as a list of
                        names + layers_to_transform).
  rank8_all.gguf        the same as a llama.cpp GGUF LoRA (F16, adapter.lora.alpha = 16).
  rank4_qv/             PEFT directory, F32 safetensors. q_proj and v_proj of layers 0, 3, ..., 27
                        (target_modules as a regex string), r=16 / lora_alpha=32 overridden by
                        rank_pattern {q_proj: 4, v_proj: 4} and alpha_pattern {q_proj: 8, v_proj: 8},
                        use_rslora -> scale 8 / sqrt(4) = 4.
  rank4_qv.gguf         the same as a GGUF LoRA (F16). llama.cpp knows neither patterns nor rsLoRA:
                        its scale is alpha / r, so alpha = 16 gives the same 4.
  gpl3_4chunks.txt      the start of Tests/ModelTests/Fixtures/gpl3.txt: its first 2048 tokens
                        (4 chunks of 512) are exactly those of the whole file, and it has fewer
                        than 2560 tokens, so llama-perplexity scores 4 chunks.
  adapter_perplexity.json
                        llama-perplexity (-c 512 -fa off -t 2) on gpl3_4chunks.txt with no adapter,
                        and with each GGUF file at --lora (user scale 1) and --lora-scaled FILE:0.5;
                        final PPL, stderr and running PPL after each chunk.

No torch or peft: safetensors is written by hand (8-byte little-endian header length, JSON
header padded to 8 bytes, data), GGUF with gguf-py as convert_lora_to_gguf.py does
(lora_a: numpy (r, in) -> ne [in, r]; lora_b: numpy (out, r) -> ne [r, out]).

Needs: numpy, gguf, llama-cpp-python 0.3.36 (tokenizer only); bench/llamacpp (builds llama-perplexity).
Usage: python3 Tests/AdaptersTests/Fixtures/make_adapter_fixtures.py [--model PATH] [--skip-tool]
"""

import argparse
import hashlib
import json
import math
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import gguf

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
LLAMA_CPP_PYTHON = "0.3.36"
LLAMA_CPP_COMMIT = "0c1e57098"
CTX = 512
CHUNKS = 4
THREADS = 2

# SmolLM2-135M: (rows = out, cols = in) of each projection's weight.
DIM, QDIM, KVDIM, FFN, LAYERS = 576, 576, 192, 1536, 30
SHAPES = {
    "q_proj": (QDIM, DIM), "k_proj": (KVDIM, DIM), "v_proj": (KVDIM, DIM), "o_proj": (DIM, QDIM),
    "gate_proj": (FFN, DIM), "up_proj": (FFN, DIM), "down_proj": (DIM, FFN),
}
GGUF_NAME = {
    "q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
    "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down",
}
GROUP = {m: ("self_attn" if m in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp") for m in SHAPES}

# The two adapters. `b_std` sets how far each moves the model: B ~ N(0, b_std^2),
# A ~ N(0, 1/in) (the magnitude of PEFT's Kaiming init), so a ΔW entry is ~ scale·b_std·sqrt(r/in).
ADAPTERS = [
    {
        "name": "rank8_all", "seed": 8, "layers": list(range(0, LAYERS, 9)), "modules": list(SHAPES),
        "rank": 8, "scale": 2.0, "b_std": 0.15, "safetensors_dtype": "F16",
        "config": {
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": BASE_MODEL,
            "r": 8, "lora_alpha": 16, "use_rslora": False,
            "target_modules": list(SHAPES), "layers_to_transform": list(range(0, LAYERS, 9)),
            "rank_pattern": {}, "alpha_pattern": {}, "bias": "none", "lora_dropout": 0.05,
            "fan_in_fan_out": False, "inference_mode": True,
        },
        "gguf_alpha": 16.0,
    },
    {
        "name": "rank4_qv", "seed": 4, "layers": list(range(0, LAYERS, 3)), "modules": ["q_proj", "v_proj"],
        "rank": 4, "scale": 4.0, "b_std": 0.08, "safetensors_dtype": "F32",
        "config": {
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": BASE_MODEL,
            "r": 16, "lora_alpha": 32, "use_rslora": True,
            "target_modules": r".*\.layers\.(0|3|6|9|12|15|18|21|24|27)\.self_attn\.(q_proj|v_proj)",
            "rank_pattern": {"q_proj": 4, "v_proj": 4}, "alpha_pattern": {"q_proj": 8, "v_proj": 8},
            "bias": "none", "lora_dropout": 0.0, "fan_in_fan_out": False, "inference_mode": True,
        },
        "gguf_alpha": 16.0,
    },
]


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_pairs(spec):
    """{(layer, module): (A (r, in), B (out, r))} as float16, deterministic for the seed."""
    rng = np.random.default_rng(spec["seed"])
    r = spec["rank"]
    pairs = {}
    for layer in spec["layers"]:
        for m in spec["modules"]:
            rows, cols = SHAPES[m]
            a = rng.normal(0.0, 1.0 / math.sqrt(cols), size=(r, cols)).astype(np.float16)
            b = rng.normal(0.0, spec["b_std"], size=(rows, r)).astype(np.float16)
            pairs[(layer, m)] = (a, b)
    return pairs


def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, np.ndarray); dtype 'F16' or 'F32'."""
    np_dtype = {"F16": "<f2", "F32": "<f4"}[dtype]
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors:
        data = np.ascontiguousarray(arr.astype(np_dtype)).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_peft(spec, pairs):
    d = HERE / spec["name"]
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    tensors = []
    for (layer, m), (a, b) in sorted(pairs.items()):
        stem = f"base_model.model.model.layers.{layer}.{GROUP[m]}.{m}"
        tensors.append((stem + ".lora_A.weight", a))
        tensors.append((stem + ".lora_B.weight", b))
    write_safetensors(d / "adapter_model.safetensors", tensors, spec["safetensors_dtype"])
    (d / "adapter_config.json").write_text(json.dumps(spec["config"], indent=2) + "\n")


def write_gguf(spec, pairs):
    path = HERE / (spec["name"] + ".gguf")
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_name(spec["name"])
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, spec["gguf_alpha"])
    for (layer, m), (a, b) in sorted(pairs.items()):
        stem = f"blk.{layer}.{GGUF_NAME[m]}.weight"
        w.add_tensor(stem + ".lora_a", a)  # numpy (r, in) -> ne [in, r]
        w.add_tensor(stem + ".lora_b", b)  # numpy (out, r) -> ne [r, out]
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def short_text(model_path):
    """The shortest prefix of gpl3.txt whose first CHUNKS*CTX tokens are the whole file's."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(model_path), vocab_only=True, verbose=False)
    full = (REPO / "Tests/ModelTests/Fixtures/gpl3.txt").read_bytes()
    toks = llm.tokenize(full, add_bos=True, special=False)
    need = CHUNKS * CTX
    for extra in range(8, 400, 8):
        text = llm.detokenize(toks[: need + extra])
        if not full.startswith(text):
            continue
        t2 = llm.tokenize(text, add_bos=True, special=False)
        if t2[:need] == toks[:need] and need <= len(t2) < (CHUNKS + 1) * CTX:
            return text, len(t2)
    sys.exit("make_adapter_fixtures: no prefix of gpl3.txt keeps the first chunks' tokens")


def llama_perplexity(model_path, text_path, extra):
    subprocess.run([str(REPO / "bench/llamacpp"), "build"], check=True)
    exe = REPO / "bench/.llama/build/bin/llama-perplexity"
    cmd = [str(exe), "-m", str(model_path), "-c", str(CTX), "-f", str(text_path), "-t", str(THREADS),
           "-fa", "off", *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    text = out.stdout + out.stderr
    final = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", text)
    chunks = re.search(r"calculating perplexity over (\d+) chunks", text)
    running = [float(x) for x in re.findall(r"\[\d+\]([0-9.]+),", text)]
    if not final or not chunks or len(running) != int(chunks.group(1)):
        sys.exit("make_adapter_fixtures: could not parse llama-perplexity's output:\n" + text[-3000:])
    shown = ["llama-perplexity", "-m", "models/" + MODEL_NAME, "-c", str(CTX), "-f",
             str(text_path.relative_to(REPO)), "-t", str(THREADS), "-fa", "off",
             *[str(Path(x).relative_to(REPO)) if x.startswith(str(REPO)) else x for x in extra]]
    res = {"ppl": float(final.group(1)), "ppl_stderr": float(final.group(2)), "n_chunks": int(chunks.group(1)),
           "running_ppl": running, "command": " ".join(shown)}
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(REPO / "models" / MODEL_NAME))
    ap.add_argument("--skip-tool", action="store_true", help="write the adapters only")
    args = ap.parse_args()
    model = Path(args.model).resolve()
    if sha256(model) != MODEL_SHA256:
        sys.exit(f"make_adapter_fixtures: {model} is not the expected {MODEL_NAME}")

    text, n_tokens = short_text(model)
    text_path = HERE / "gpl3_4chunks.txt"
    text_path.write_bytes(text)

    report = {
        "generator": "Tests/AdaptersTests/Fixtures/make_adapter_fixtures.py",
        "llama_cpp_python": LLAMA_CPP_PYTHON, "llama_cpp_commit": LLAMA_CPP_COMMIT,
        "model": MODEL_NAME, "model_sha256": MODEL_SHA256,
        "text_file": text_path.name, "text_sha256": sha256(text_path), "n_tokens": n_tokens,
        "n_ctx": CTX, "threads": THREADS,
        "method": "llama-perplexity -c 512 -fa off -t 2 (f16 KV cache); 4 chunks of 512 tokens, tokens 257..511 "
                  "of each scored; running_ppl[k] is the estimate after chunk k+1",
        "llama_cpp_scale": "per tensor: user_scale * adapter.lora.alpha / r, r = lora_b ne[0] "
                           "(user_scale alone if alpha is 0); --lora is user_scale 1",
        "adapters": {},
    }
    specs = {}
    for spec in ADAPTERS:
        pairs = make_pairs(spec)
        write_peft(spec, pairs)
        g = write_gguf(spec, pairs)
        specs[spec["name"]] = g
        report["adapters"][spec["name"]] = {
            "peft": spec["name"], "gguf": g.name, "seed": spec["seed"], "layers": spec["layers"],
            "modules": spec["modules"], "rank": spec["rank"], "scale": spec["scale"],
            "gguf_alpha": spec["gguf_alpha"], "safetensors_dtype": spec["safetensors_dtype"], "gguf_dtype": "F16",
            "a_std": "1/sqrt(in)", "b_std": spec["b_std"], "tensors": 2 * len(pairs),
        }

    if not args.skip_tool:
        report["base"] = llama_perplexity(model, text_path, [])
        for name, g in specs.items():
            a = report["adapters"][name]
            a["scale_1"] = llama_perplexity(model, text_path, ["--lora", str(g)])
            a["scale_0.5"] = llama_perplexity(model, text_path, ["--lora-scaled", f"{g}:0.5"])
            if not a["scale_0.5"]["ppl"] != report["base"]["ppl"] != a["scale_1"]["ppl"]:
                sys.exit(f"make_adapter_fixtures: {name} did not change llama-perplexity's PPL; was it applied?")
            print(f"{name}: base {report['base']['ppl']}, scale 1 {a['scale_1']['ppl']}, "
                  f"scale 0.5 {a['scale_0.5']['ppl']}", file=sys.stderr)
        (HERE / "adapter_perplexity.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
