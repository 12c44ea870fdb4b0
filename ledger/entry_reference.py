#!/usr/bin/env python3
"""Independent reference for ledger entries, version 2 (ledger/README.md, "Entry
encoding"), written from the README's tables with struct and hashlib.

Prints the two worked examples that tests/unit/test_ledger_entry.c asserts byte for
byte: the member_removed entry, and an update_accepted entry holding the update
envelope of crypto/README.md's worked example, whose signature re-checks from the
entry's fields alone (the header is rebuilt here and verified with the member key).

    python3 ledger/entry_reference.py
"""
import hashlib
import os
import struct
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crypto"))
import reference as crypto_ref  # noqa: E402  crypto/reference.py: the statement layouts

VERSION = 2
T0 = 1767225600000                      # 2026-01-01T00:00:00Z


def header(entry_type, timestamp_ms):
    return b"AULE" + struct.pack(">BHq", VERSION, entry_type, timestamp_ms)


def field(tag, value):
    return struct.pack(">HI", tag, len(value)) + value


def u32(v):
    return struct.pack(">I", v)


def u64(v):
    return struct.pack(">Q", v)


def i32(v):
    return struct.pack(">i", v)


def f64(v):
    return struct.pack(">d", v)


def member_removed(timestamp_ms, member, reason):
    return header(3, timestamp_ms) + field(1, member.encode()) + field(2, reason.encode())


def codec_record(f):
    return (field(1, u32(f["format_version"])) + field(2, u32(f["block_size"]))
            + field(3, u32(f["k_per_block"])) + field(4, u32(f["quant"]))
            + field(5, i32(f["zstd_level"])) + field(6, bytes([f["error_feedback"]])))


def update_accepted(timestamp_ms, f, signature, train_loss):
    return (header(11, timestamp_ms)
            + field(1, f["experiment"].encode()) + field(2, u64(f["round"]))
            + field(3, f["member"].encode()) + field(4, f["payload_hash"])
            + field(5, u64(f["tokens"])) + field(6, u64(f["samples"]))
            + field(7, u64(f["payload_bytes"])) + field(8, signature)
            + field(9, f64(train_loss)) + field(11, f["base_model_hash"])
            + field(12, codec_record(f)))


def fields_of(entry):
    """Top-level (tag, value) pairs; enough to read the example back."""
    pos, out = 15, {}
    while pos < len(entry):
        tag, n = struct.unpack(">HI", entry[pos:pos + 6])
        out[tag] = entry[pos + 6:pos + 6 + n]
        pos += 6 + n
    return out


def envelope_from_entry(entry):
    """The update envelope's fields, taken from the entry alone."""
    f = fields_of(entry)
    c = fields_of(b"\0" * 15 + f[12])
    return dict(
        experiment=f[1].decode(), round=struct.unpack(">Q", f[2])[0], member=f[3].decode(),
        base_model_hash=f[11], payload_hash=f[4],
        payload_bytes=struct.unpack(">Q", f[7])[0], samples=struct.unpack(">Q", f[6])[0],
        tokens=struct.unpack(">Q", f[5])[0],
        format_version=struct.unpack(">I", c[1])[0], block_size=struct.unpack(">I", c[2])[0],
        k_per_block=struct.unpack(">I", c[3])[0], quant=struct.unpack(">I", c[4])[0],
        zstd_level=struct.unpack(">i", c[5])[0], error_feedback=c[6][0]), f[8]


def main():
    e = member_removed(T0, "hust", "left the alliance")
    print("[member_removed] %d bytes" % len(e))
    print("entry     ", e.hex())
    print("leaf hash ", hashlib.sha256(b"\x00" + e).hexdigest())

    key = Ed25519PrivateKey.from_private_bytes(crypto_ref.SEED)
    _, _, env = crypto_ref.EXAMPLES[0]          # the update envelope example
    sig = key.sign(hashlib.blake2b(crypto_ref.update_header(env), digest_size=32).digest())
    e = update_accepted(T0, env, sig, 2.5)
    print("\n[update_accepted] %d bytes" % len(e))
    print("entry     ", e.hex())
    print("leaf hash ", hashlib.sha256(b"\x00" + e).hexdigest())

    rebuilt, stored_sig = envelope_from_entry(e)
    digest = hashlib.blake2b(crypto_ref.update_header(rebuilt), digest_size=32).digest()
    key.public_key().verify(stored_sig, digest)  # raises if the entry lost a signed field
    print("envelope signature re-checked from the entry: ok (digest %s)" % digest.hex())


if __name__ == "__main__":
    main()
