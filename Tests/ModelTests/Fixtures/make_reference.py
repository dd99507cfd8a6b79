#!/usr/bin/env python3
"""Reference figures from llama.cpp that lorad's tokenizer and forward are checked against.

Writes, next to this file:
  tokenizer.json   llama.cpp's token ids for ~55 strings, special tokens parsed and not
  greedy.json      32-token greedy continuations of 13 raw prompts; top-20 logits for 3 of them
  perplexity.json  PPL at ctx 512 on gpl3.txt, by llama-perplexity and by the same method here
  gpl3.txt         copy of /usr/share/common-licenses/GPL-3

Every JSON file opens with the llama-cpp-python version, the llama.cpp commit it vendors,
the model file name and its sha256. Re-running overwrites the files; the ids and PPL are
deterministic on a given CPU (greedy decoding runs with 2 threads).

Needs: pip install llama-cpp-python==0.3.36 numpy; bench/llamacpp (builds llama-perplexity).
Usage: python3 Tests/ModelTests/Fixtures/make_reference.py [--model PATH] [--skip-tool]
"""

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import llama_cpp
from llama_cpp import Llama

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
LLAMA_CPP_PYTHON = "0.3.36"
LLAMA_CPP_COMMIT = "0c1e57098"  # the llama.cpp tree vendored by llama-cpp-python 0.3.36
GREEDY_THREADS = 2
GREEDY_TOKENS = 32
TOP_LOGITS = 20
PPL_CTX = 512

# ---------------------------------------------------------------------------------------------
# Inputs

LONG_PARAGRAPH = (
    "The history of computing is a story of layers. At the bottom, electrons move through "
    "silicon; above them, logic gates combine into adders and registers; above those, an "
    "instruction set gives the machine a vocabulary. Compilers translate human intentions into "
    "that vocabulary, operating systems share the machine among many programs, and networks let "
    "machines talk to one another across oceans. Each layer hides the complexity of the one "
    "beneath it, which is why a student in 2024 can write a web server in an afternoon without "
    "knowing how a transistor works. Yet the abstractions leak: caches miss, packets drop, "
    "floating-point numbers round, and the programmer who understands the layers below is the "
    "one who can explain why the program that worked yesterday is 10x slower today."
)

TOKENIZER_TEXTS = [
    # empty, trivial
    "",
    "a",
    " ",
    "Hello world",
    "Hello, world!",
    # whitespace runs
    " leading space",
    "trailing space ",
    "two  spaces   three    four",
    "   ",
    "\t",
    "tab\tseparated\tvalues\t\t",
    "\n",
    "line one\nline two\n\nline four\n",
    "mixed \t \n\t\n  whitespace \r\n end",
    "trailing newlines\n\n\n",
    "windows\r\nline\r\nendings\r\n",
    "        indented eight",
    # code
    "def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n    return a + b\n\nprint(add(1, 2))\n",
    "#include <stdio.h>\n\nint main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    '{"name": "lorad", "version": [0, 1, 2], "nested": {"ok": true, "x": null}}',
    "for f in *.gguf; do sha256sum \"$f\" | cut -d' ' -f1; done 2>/dev/null && echo ok",
    "let x: [Int] = (0..<10).map { $0 * $0 } // squares",
    # numbers and digit runs
    "1 12 123 1234 12345 1234567890",
    "3.14159 2.71828 -42 +7 1e10 0x1F 1_000_000",
    "Phone: 555-123-4567, year 2024, 10,000,000 items, 99.9%",
    "00000000000000000000",
    "a1b22c333d4444",
    # contractions
    "It's don't they're we'll I'd you've I'm",
    "IT'S DON'T THEY'RE WE'LL I'D YOU'VE I'M",
    "'s 't 're 've 'm 'll 'd",
    "The dog's bone isn't the cat's toy, y'all.",
    # punctuation
    "Wait... what?!?! (yes) [no] {maybe} <tag> --- *** ### !!!",
    "a.b,c;d:e!f?g",
    "\"quoted\" 'single' `back` «guillemets» „low“ — en–dash … ellipsis",
    "https://example.com/path/to?query=1&x=y#frag and me@example.org",
    "# Title\n\n- item one\n- item two\n\n**bold** _italic_ `code`",
    "<div class=\"x\">Hi &amp; bye</div>",
    # emoji
    "I love 🦙 and 🐍! 😀😃😄",
    "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👩🏽‍💻 coder, ❤️ heart",
    "🇫🇷🇯🇵🇺🇸 flags",
    # scripts
    "我爱自然语言处理。今天天气很好！",
    "こんにちは、世界。カタカナとひらがなと漢字。",
    "안녕하세요, 세계! 한국어 토큰화 테스트입니다.",
    "مرحبا بالعالم. هذا اختبار للترميز.",
    "שלום עולם! זהו מבחן.",
    "नमस्ते दुनिया। यह एक परीक्षण है।",
    "สวัสดีชาวโลก นี่คือการทดสอบ",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "Café naïve résumé façade Ångström Zürich São Paulo Dvořák",
    "Καλημέρα κόσμε",
    "∑ x² ≤ ∞, α β γ → λ",
    "Tokyo東京Москва",
    "zero\u200bwidth\u00a0nbsp",
    # special tokens of this model inside text
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "text before <|endoftext|> text after",
    "<|im_end|><|im_end|>",
    "<|im_start|>",
    "<|im_start partial",
    "<repo_name>lorad<file_sep>main.swift",
    "<|IM_START|> is not special",
    # long
    LONG_PARAGRAPH,
]

GREEDY_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village by the sea,",
    "Here is a list of fruits:\n1.",
    "Question: What is the boiling point of water at sea level?\nAnswer:",
    "The quick brown fox",
    "#include <stdio.h>\n\nint main(void) {\n",
    "Translate to French: Good morning, how are you?\n",
    "1, 2, 3, 4, 5,",
    "In machine learning, a transformer is",
    '{"name": "Alice", "age":',
    "Dear Sir or Madam,\n\nI am writing to",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
]

# ---------------------------------------------------------------------------------------------
# Helpers


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def header(model_path):
    return {
        "generator": "Tests/ModelTests/Fixtures/make_reference.py",
        "llama_cpp_python": llama_cpp.__version__,
        "llama_cpp_commit": LLAMA_CPP_COMMIT,
        "model": model_path.name,
        "model_sha256": MODEL_SHA256,
    }


def write_json(name, top, cases_key=None):
    """Writes `top` with one case per line, so diffs of regenerated fixtures stay readable."""
    lines = ["{"]
    items = list(top.items())
    for n, (k, v) in enumerate(items):
        comma = "," if n + 1 < len(items) else ""
        if k == cases_key:
            lines.append(f"  {json.dumps(k)}: [")
            for m, case in enumerate(v):
                c = "," if m + 1 < len(v) else ""
                lines.append("    " + json.dumps(case, ensure_ascii=False) + c)
            lines.append("  ]" + comma)
        else:
            lines.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}{comma}")
    lines.append("}")
    (HERE / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {HERE / name}", file=sys.stderr)


def vocab_of(llm):
    return llama_cpp.llama_model_get_vocab(llm.model)


def is_eog(llm, token):
    return bool(llama_cpp.llama_vocab_is_eog(vocab_of(llm), token))


def eog_ids(llm):
    return [t for t in range(llm.n_vocab()) if is_eog(llm, t)]


def vocab_facts(llm):
    v = vocab_of(llm)
    return {
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(v)),
        "add_eos": bool(llama_cpp.llama_vocab_get_add_eos(v)),
        "bos_id": int(llama_cpp.llama_vocab_bos(v)),
        "eos_id": int(llama_cpp.llama_vocab_eos(v)),
        "eog_ids": eog_ids(llm),
    }


# ---------------------------------------------------------------------------------------------
# a. Tokenizer


def make_tokenizer(model_path):
    llm = Llama(model_path=str(model_path), vocab_only=True, verbose=False)
    cases = []
    for text in TOKENIZER_TEXTS:
        raw = text.encode("utf-8")
        cases.append({
            "text": text,
            "ids": llm.tokenize(raw, add_bos=False, special=True),
            "special_false_ids": llm.tokenize(raw, add_bos=False, special=False),
        })
    top = header(model_path)
    top["method"] = ("llama_tokenize(text, add_special=false, parse_special=true) -> ids; "
                     "parse_special=false -> special_false_ids")
    top.update(vocab_facts(llm))
    top["cases"] = cases
    write_json("tokenizer.json", top, "cases")


# ---------------------------------------------------------------------------------------------
# b. Greedy decoding


def make_greedy(model_path):
    llm = Llama(model_path=str(model_path), n_ctx=512, n_batch=512, n_threads=GREEDY_THREADS,
                n_threads_batch=GREEDY_THREADS, logits_all=True, verbose=False)
    cases = []
    for n, prompt in enumerate(GREEDY_PROMPTS):
        prompt_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        llm.reset()
        llm.eval(prompt_ids)
        case = {"prompt": prompt, "prompt_ids": prompt_ids}
        if n < 3:
            logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            top = np.argsort(-logits, kind="stable")[:TOP_LOGITS]
            case["top_logits"] = [[int(t), float(logits[t])] for t in top]
        ids, margins = [], []
        while len(ids) < GREEDY_TOKENS:
            logits = llm.scores[llm.n_tokens - 1]
            token = int(np.argmax(logits))  # first index among equal maxima
            top2 = np.partition(logits, -2)[-2:]
            margins.append(float(top2[1] - top2[0]))
            ids.append(token)
            if is_eog(llm, token):
                break
            llm.eval([token])
        case["ids"] = ids
        # How close the nearest call was: a port with slightly different rounding may flip a step
        # whose top-1/top-2 logit gap is this small, and diverge from there on.
        case["min_margin"] = [int(np.argmin(margins)), min(margins)]
        case["text"] = llm.detokenize(ids).decode("utf-8", errors="replace")
        cases.append(case)
        print(f"greedy {n}: {prompt!r} -> {case['text']!r}", file=sys.stderr)
    top = header(model_path)
    top["method"] = (f"prompt tokenized with add_special=false, parse_special=true; no chat "
                     f"template; n_ctx 512, n_threads {GREEDY_THREADS}; argmax of the float32 "
                     f"logits (lowest id on ties) for {GREEDY_TOKENS} tokens, stopping after an "
                     f"end-of-generation token (included in ids); top_logits are (id, logit) of "
                     f"the last prompt position, highest first; text is the detokenized ids "
                     f"without special-token text; min_margin is [step, logit gap] of the step "
                     f"whose top-1 and top-2 logits were closest")
    top.update(vocab_facts(llm))
    top["cases"] = cases
    write_json("greedy.json", top, "cases")


# ---------------------------------------------------------------------------------------------
# c. Perplexity


def perplexity_python(model_path, text_path):
    """llama-perplexity's method (tools/perplexity/perplexity.cpp, perplexity()), one chunk at a time."""
    threads = os.cpu_count() or 1
    llm = Llama(model_path=str(model_path), n_ctx=PPL_CTX, n_batch=PPL_CTX, n_ubatch=PPL_CTX,
                n_threads=threads, n_threads_batch=threads, logits_all=True, verbose=False)
    facts = vocab_facts(llm)
    tokens = llm.tokenize(text_path.read_bytes(), add_bos=True, special=False)
    n_chunk = len(tokens) // PPL_CTX
    first = PPL_CTX // 2
    nll, count, running = 0.0, 0, []
    for i in range(n_chunk):
        chunk = list(tokens[i * PPL_CTX:(i + 1) * PPL_CTX])
        if facts["add_bos"]:
            chunk[0] = facts["bos_id"]
        llm.reset()
        llm.eval(chunk)
        logits = np.array(llm.scores[first:PPL_CTX - 1], dtype=np.float64)  # (255, vocab)
        targets = np.array(chunk[first + 1:PPL_CTX])
        m = logits.max(axis=1, keepdims=True)
        logsumexp = np.log(np.exp(logits - m).sum(axis=1)) + m[:, 0]
        nll += float((logsumexp - logits[np.arange(len(targets)), targets]).sum())
        count += len(targets)
        running.append(round(math.exp(nll / count), 4))
    return {
        "ppl": math.exp(nll / count),
        "n_tokens": len(tokens),
        "n_chunks": n_chunk,
        "tokens_scored": count,
        "running_ppl": running,
        "threads": threads,
    }


def perplexity_tool(model_path, text_path, extra_args):
    """Runs llama.cpp's own llama-perplexity through bench/llamacpp and parses what it prints."""
    out = subprocess.run([str(REPO / "bench" / "llamacpp"), "perplexity", str(model_path),
                          str(PPL_CTX), str(text_path), *extra_args],
                         check=True, capture_output=True, text=True).stdout
    final = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", out)
    chunks = re.search(r"calculating perplexity over (\d+) chunks, n_ctx=(\d+), batch_size=(\d+), "
                       r"n_seq=(\d+)", out)
    running = [float(x) for x in re.findall(r"\[\d+\]([0-9.]+),", out)]
    if not final or not chunks:
        sys.exit("make_reference: could not parse llama-perplexity's output:\n" + out[-2000:])
    n_chunks = int(chunks.group(1))
    if len(running) != n_chunks:
        sys.exit(f"make_reference: llama-perplexity printed {len(running)} running estimates "
                 f"for {n_chunks} chunks")
    return {
        "ppl": float(final.group(1)),
        "ppl_stderr": float(final.group(2)),
        "n_chunks": n_chunks,
        "tokens_scored": n_chunks * (PPL_CTX - PPL_CTX // 2 - 1),
        "running_ppl": running,
        "batch_size": int(chunks.group(3)),
        "n_seq": int(chunks.group(4)),
        "command": " ".join([f"bench/llamacpp perplexity models/{model_path.name} {PPL_CTX}",
                             "Tests/ModelTests/Fixtures/gpl3.txt", *extra_args]),
    }


def make_perplexity(model_path, use_tool):
    text_path = HERE / "gpl3.txt"
    shutil.copyfile("/usr/share/common-licenses/GPL-3", text_path)
    print(f"wrote {text_path}", file=sys.stderr)
    py = perplexity_python(model_path, text_path)
    top = header(model_path)
    top["text_file"] = text_path.name
    top["text_sha256"] = sha256(text_path)
    top["n_ctx"] = PPL_CTX
    top["method"] = ("llama-perplexity's: tokenize the whole text with add_special=true, "
                     "parse_special=false (this model adds no BOS); non-overlapping chunks of "
                     "n_ctx tokens (remainder dropped); BOS replaces each chunk's first token "
                     "only if the model adds BOS; in each chunk tokens n_ctx/2+1 .. n_ctx-1 are "
                     "scored from the logits at the previous position (n_ctx/2-1 = 255 per "
                     "chunk); PPL = exp(mean NLL); running_ppl[k] is the estimate after chunk k+1")
    top["attention"] = ("f32 attention over llama.cpp's default f16 KV cache (flash attention off), "
                        "as in the Python API's default")
    if use_tool:
        # The headline figure: llama-perplexity with flash attention off, the same arithmetic as
        # the Python run (which must agree to the 4 decimals the tool prints).
        tool = perplexity_tool(model_path, text_path, ["-fa", "off"])
        if tool["n_chunks"] != py["n_chunks"]:
            sys.exit(f"make_reference: chunk counts differ: tool {tool['n_chunks']}, python {py['n_chunks']}")
        for a, b in [(tool["ppl"], py["ppl"])] + list(zip(tool["running_ppl"], py["running_ppl"])):
            if abs(a - b) > 2e-4 * a:
                sys.exit(f"make_reference: PPL differs: llama-perplexity {tool['ppl']} "
                         f"{tool['running_ppl']}, python {py['ppl']} {py['running_ppl']}")
        top["ppl"] = tool["ppl"]
        top["n_chunks"] = tool["n_chunks"]
        top["tokens_scored"] = tool["tokens_scored"]
        top["n_tokens"] = py["n_tokens"]
        top["llama_perplexity"] = tool
        # For the record: llama-perplexity as it runs by default, flash attention "auto" (on for
        # CPU), whose f16 attention arithmetic lands ~0.2% higher on this model.
        top["llama_perplexity_default_flash_attn"] = perplexity_tool(model_path, text_path, [])
    else:
        top["ppl"] = round(py["ppl"], 4)
        top["n_chunks"] = py["n_chunks"]
        top["tokens_scored"] = py["tokens_scored"]
        top["n_tokens"] = py["n_tokens"]
    top["python"] = py
    write_json("perplexity.json", top)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "models" / MODEL_NAME)
    ap.add_argument("--skip-tool", action="store_true",
                    help="compute the PPL only through the Python API, not llama-perplexity")
    args = ap.parse_args()
    model_path = args.model.resolve()
    if llama_cpp.__version__ != LLAMA_CPP_PYTHON:
        sys.exit(f"make_reference: need llama-cpp-python {LLAMA_CPP_PYTHON}, have "
                 f"{llama_cpp.__version__}; pip install llama-cpp-python=={LLAMA_CPP_PYTHON}")
    if not model_path.is_file():
        sys.exit(f"make_reference: no model at {model_path}; run models/fetch")
    if sha256(model_path) != MODEL_SHA256:
        sys.exit(f"make_reference: {model_path} is not the expected file (sha256 {MODEL_SHA256})")
    make_tokenizer(model_path)
    make_greedy(model_path)
    make_perplexity(model_path, use_tool=not args.skip_tool)


if __name__ == "__main__":
    main()
