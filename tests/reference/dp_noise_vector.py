#!/usr/bin/env python3
"""The DP noise test vector of aggregate/README.md ("DP noise"), from the layout alone
(hashlib's BLAKE2b, the `cryptography` package's ChaCha20), no aulac code: seed 00 01 ..
1f, round 3, noise std 1 (z = 1, C = 1, k = 1, dense), five parameters. Prints the round
key, the seed commitment and the five float32 values (decimal and C hex literals) that
tests/unit/test_robust.c dp_noise_test_vector checks."""
import hashlib
import math
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

seed, rnd, n, s = bytes(range(32)), 3, 5, 1.0
key = hashlib.blake2b(seed + b"aulac/dp-noise" + struct.pack("<Q", rnd), digest_size=32).digest()
commit = hashlib.blake2b(seed, digest_size=32).digest()
# libsodium's crypto_stream_chacha20 (64-bit nonce 0, counter from 0) = IETF ChaCha20
# with counter 0 and a zero 96-bit nonce for the first 2^32 blocks: 16 zero bytes here.
ks = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor().update(bytes(64))
w = struct.unpack("<8Q", ks)


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


out = []
for j in range(0, n, 2):
    a, b = w[j], w[j + 1]
    u1, u2 = ((a >> 11) + 1) * 2.0 ** -53, (b >> 11) * 2.0 ** -53
    r = math.sqrt(-2 * math.log(u1))
    out.append(f32(s * r * math.cos(2 * math.pi * u2)))
    if j + 1 < n:
        out.append(f32(s * r * math.sin(2 * math.pi * u2)))
print("round key ", key.hex())
print("commitment", commit.hex())
print("noise     ", " ".join("%.9g" % x for x in out))
print("C         ", ", ".join(x.hex().replace("0000000p", "p") + "f" for x in out))
