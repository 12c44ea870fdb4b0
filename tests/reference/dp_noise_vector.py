#!/usr/bin/env python3
"""The DP noise test vectors of aggregate/README.md ("Differential privacy"), from the
layout alone (hashlib's BLAKE2b, the `cryptography` package's ChaCha20, Python floats,
which are IEEE-754 doubles with correctly rounded + - * / and math.sqrt), no aulac code:
seed 00 01 .. 1f, noise std 1 (z = 1, C = 1, k = 1, dense).

Scheme 2 (this version): round 3, five parameters, and round 16, four parameters
(three of its first five word pairs are rejected). Scheme 1 (earlier versions, libm Box-Muller; replay only):
round 3, five parameters. Prints the round keys, the seed commitment and the float32
values (decimal and C hex literals) that tests/unit/test_dp_noise.c checks."""
import hashlib
import math
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

SEED = bytes(range(32))


def round_key(seed, rnd):
    return hashlib.blake2b(seed + b"aulac/dp-noise" + struct.pack("<Q", rnd),
                           digest_size=32).digest()


def words(key, n_blocks=4):
    # libsodium's crypto_stream_chacha20 (64-bit nonce 0, counter from 0) = IETF ChaCha20
    # with counter 0 and a zero 96-bit nonce for the first 2^32 blocks: 16 zero bytes here.
    ks = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor().update(
        bytes(64 * n_blocks))
    return list(struct.unpack("<%dQ" % (8 * n_blocks), ks))


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def d2bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def bits2d(b):
    return struct.unpack("<d", struct.pack("<Q", b))[0]


# fdlibm e_log.c, as aggregate/dp_noise.c agg_dp_log (positive normal x only).
LN2_HI, LN2_LO = bits2d(0x3fe62e42fee00000), bits2d(0x3dea39ef35793c76)
LG = [bits2d(b) for b in (0x3fe5555555555593, 0x3fd999999997fa04, 0x3fd2492494229359,
                          0x3fcc71c51d8e78af, 0x3fc7466496cb03de, 0x3fc39a09d078c69f,
                          0x3fc2f112df3e5244)]


def dp_log(x):
    b = d2bits(x)
    hx, lx = b >> 32, b & 0xffffffff
    assert 0x00100000 <= hx < 0x7ff00000
    if hx == 0x3ff00000 and lx == 0:
        return 0.0
    k = (hx >> 20) - 1023
    hx &= 0x000fffff
    i = (hx + 0x95f64) & 0x100000
    x = bits2d((hx | (i ^ 0x3ff00000)) << 32 | lx)
    k += i >> 20
    f = x - 1.0
    if (0x000fffff & (2 + hx)) < 3:
        if f == 0.0:
            dk = float(k)
            return dk * LN2_HI + dk * LN2_LO
        R = f * f * (0.5 - 0.33333333333333333 * f)
        if k == 0:
            return f - R
        dk = float(k)
        return dk * LN2_HI - ((R - dk * LN2_LO) - f)
    s = f / (2.0 + f)
    dk = float(k)
    z = s * s
    i = hx - 0x6147a
    w = z * z
    j = 0x6b851 - hx
    t1 = w * (LG[1] + w * (LG[3] + w * LG[5]))
    t2 = z * (LG[0] + w * (LG[2] + w * (LG[4] + w * LG[6])))
    i |= j
    R = t2 + t1
    if i > 0:
        hfsq = 0.5 * f * f
        if k == 0:
            return f - (hfsq - s * (hfsq + R))
        return dk * LN2_HI - ((hfsq - (s * (hfsq + R) + dk * LN2_LO)) - f)
    if k == 0:
        return f - s * (f - R)
    return dk * LN2_HI - ((s * (f - R) - dk * LN2_LO) - f)


def scheme2(w, n, sigma=1.0):
    out, at, rejected = [], 0, 0
    for j in range(0, n, 2):
        while True:
            u = (w[at] >> 11) * 2.0 ** -52 - 1.0
            v = (w[at + 1] >> 11) * 2.0 ** -52 - 1.0
            at += 2
            q = u * u + v * v
            if 0.0 < q < 1.0:
                break
            rejected += 1
        m = math.sqrt(-2.0 * dp_log(q) / q)
        out.append(f32(sigma * (u * m)))
        if j + 1 < n:
            out.append(f32(sigma * (v * m)))
    return out, at, rejected


def scheme1(w, n, sigma=1.0):
    out = []
    for j in range(0, n, 2):
        a, b = w[j], w[j + 1]
        u1, u2 = ((a >> 11) + 1) * 2.0 ** -53, (b >> 11) * 2.0 ** -53
        r = math.sqrt(-2 * math.log(u1))
        out.append(f32(sigma * r * math.cos(2 * math.pi * u2)))
        if j + 1 < n:
            out.append(f32(sigma * r * math.sin(2 * math.pi * u2)))
    return out


def show(name, key, vals, extra=""):
    print("%s round key %s" % (name, key.hex()))
    print("%s noise     %s%s" % (name, " ".join("%.9g" % x for x in vals), extra))
    print("%s C         %s" % (name, ", ".join(x.hex().replace("0000000p", "p") + "f"
                                                for x in vals)))


print("commitment", hashlib.blake2b(SEED, digest_size=32).digest().hex())
k3 = round_key(SEED, 3)
v, used, rej = scheme2(words(k3), 5)
show("scheme 2, round 3:", k3, v, "   (%d words, %d rejected pairs)" % (used, rej))
k16 = round_key(SEED, 16)
v, used, rej = scheme2(words(k16), 4)
show("scheme 2, round 16:", k16, v, "   (%d words, %d rejected pairs)" % (used, rej))
show("scheme 1, round 3:", k3, scheme1(words(k3), 5))

# The draws themselves (agg_dp_normals: doubles, before the float conversion): scheme 2,
# round 3, the first six at sigma 1 exactly, and BLAKE2b-256 of the first 65536 as
# little-endian doubles at sigma 1 and at sigma 0.3 (sigma * (u * m): the product order
# too), which pins every bit of the transform.
w = words(k3, n_blocks=12288)   # 98304 words: the polar method takes ~83500
UM = []
at = 0
while len(UM) < 65536:
    while True:
        u = (w[at] >> 11) * 2.0 ** -52 - 1.0
        v = (w[at + 1] >> 11) * 2.0 ** -52 - 1.0
        at += 2
        q = u * u + v * v
        if 0.0 < q < 1.0:
            break
    m = math.sqrt(-2.0 * dp_log(q) / q)
    UM += [u * m, v * m]
print("scheme 2, round 3: N_0..5  %s" % " ".join(x.hex() for x in UM[:6]))
for sigma in (1.0, 0.3):
    print("scheme 2, round 3: BLAKE2b-256 of the first 65536 at sigma %g (f64 LE) %s   (%d words)"
          % (sigma, hashlib.blake2b(struct.pack("<65536d", *[sigma * x for x in UM]),
                                    digest_size=32).hexdigest(), at))

# agg_dp_log itself on 2^18 points of [2^-104, 1): x_i has exponent -1 - (i mod 104) and
# mantissa bits (i * 0x9e3779b97f4a7c15 mod 2^64) >> 12; BLAKE2b-256 of the results as
# little-endian doubles.
L = []
for i in range(1 << 18):
    mant = ((i * 0x9e3779b97f4a7c15) & 0xffffffffffffffff) >> 12
    L.append(dp_log(bits2d(((1022 - i % 104) << 52) | mant)))
print("agg_dp_log on 2^18 points: BLAKE2b-256 (f64 LE) %s" % hashlib.blake2b(
    struct.pack("<%dd" % len(L), *L), digest_size=32).hexdigest())
