#!/usr/bin/env python3
"""Reference positions of HeldOutSplit (the learner's train / held-out split by request id).

An independent implementation of the same definition: FNV-1a 64 over the id's UTF-8 bytes,
then splitmix64's finalizer, then the top 53 bits divided by 2^53. Writes held_out.json next
to this script: [{"request": ..., "hash": "<16 hex digits>", "position": ...}, ...]; the test
compares the hash exactly and the position (a float printed by Python) to within 1e-15.
Run: python3 Tests/LearningTests/Fixtures/make_held_out.py
"""
import json
import os

MASK = (1 << 64) - 1


def hash64(request: str) -> int:
    h = 0xCBF29CE484222325
    for b in request.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & MASK
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & MASK
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & MASK
    h ^= h >> 31
    return h


ids = ["", "r-1", "r-2", "r-10", "r-0001", "r-ünïcødé", "r-漢字", "r-👩‍👩‍👧"] + [f"r-{i:x}" for i in range(40)]
out = [{"request": r, "hash": f"{hash64(r):016x}", "position": (hash64(r) >> 11) / float(1 << 53)} for r in ids]
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "held_out.json")
with open(path, "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=False, indent=1)
    f.write("\n")
print(f"wrote {len(out)} positions to {path}")
