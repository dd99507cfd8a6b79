#!/usr/bin/env python3
"""Writes the expected bytes of a 3x2 RGB PNG with Python's zlib (level 0: stored blocks) and
binascii.crc32, independent of lorad's PNGImage: PNGImageTests compares its encoding with them.
Also prints CRC-32 / Adler-32 of a 70,000-byte pattern (more than one stored block).
Run: python3 Tests/LoradTests/Fixtures/make_png_fixture.py > Tests/LoradTests/Fixtures/tiny_png.txt"""
import struct
import zlib

W, H = 3, 2
# Pixel (x, y) = (10 * x + y, 100 + x, 200 - 50 * y).
rows = b"".join(b"\x00" + b"".join(bytes([10 * x + y, 100 + x, 200 - 50 * y]) for x in range(W)) for y in range(H))


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(rows, 0)) + chunk(b"IEND", b"")
print("png", png.hex())
big = bytes((i * 7 + i // 256) & 0xFF for i in range(70000))
print("big_crc32", "%08x" % (zlib.crc32(big) & 0xFFFFFFFF))
print("big_adler32", "%08x" % zlib.adler32(big))
print("big_zlib0_len", len(zlib.compress(big, 0)))
print("big_zlib0_roundtrip", zlib.decompress(zlib.compress(big, 0)) == big)
