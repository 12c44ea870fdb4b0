#!/usr/bin/env python3
"""Independent reference for ledger entries, version 2 (ledger/README.md, "Entry
encoding"), written from the README's tables with struct and hashlib.

Prints the worked examples that tests/unit/test_ledger_entry.c asserts byte for
byte: the member_removed entry; an update_accepted entry holding the update
envelope of crypto/README.md's worked example, whose signature re-checks from the
entry's fields alone (the header is rebuilt here and verified with the member key),
and the same entry with the member's validation loss; a policy_proposed entry
holding crypto/README.md's experiment motion and its document, re-checked the same
way; a contribution_scores entry and a credits entry; a round_closed entry with the
epsilon spent (differential privacy) and an experiment_finished entry with its reason.

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


def update_accepted(timestamp_ms, f, signature, train_loss, val_loss=None):
    """val_loss None: not reported, the field is left out."""
    out = (header(11, timestamp_ms)
           + field(1, f["experiment"].encode()) + field(2, u64(f["round"]))
           + field(3, f["member"].encode()) + field(4, f["payload_hash"])
           + field(5, u64(f["tokens"])) + field(6, u64(f["samples"]))
           + field(7, u64(f["payload_bytes"])) + field(8, signature)
           + field(9, f64(train_loss)) + field(11, f["base_model_hash"])
           + field(12, codec_record(f)))
    if val_loss is not None:
        out += field(13, f64(val_loss))
    return out


def f64s(values):
    """One f64 per measure, packed in one field."""
    return b"".join(f64(v) for v in values)


def measure_fields(tag, measures):
    """The measure list: the tag repeated, one name ([a-z]{1,16}) each."""
    for m in measures:
        assert 1 <= len(m) <= 16 and m.isascii() and m.isalpha() and m.islower()
    assert 1 <= len(measures) <= 8 and len(set(measures)) == len(measures)
    return b"".join(field(tag, m.encode()) for m in measures)


def contribution_scores(timestamp_ms, experiment, rnd, measures, evalset_hash, seed,
                        evaluations, exact, base_loss, model_loss, members):
    """members: (id, payload hash, values), in strictly increasing id order."""
    assert [m[0] for m in members] == sorted(set(m[0] for m in members))
    out = (header(14, timestamp_ms) + field(1, experiment.encode()) + field(2, u64(rnd))
           + measure_fields(3, measures))
    if any(evalset_hash):
        out += field(4, evalset_hash)
    out += (field(5, seed) + field(6, u64(evaluations)) + field(7, bytes([exact]))
            + field(8, f64(base_loss)) + field(9, f64(model_loss)))
    for member, payload_hash, values in members:
        assert len(values) == len(measures)
        out += field(10, field(1, member.encode()) + field(2, payload_hash)
                     + field(3, f64s(values)))
    return out


def credits(timestamp_ms, experiment, rounds, measures, weights, members):
    """members: (id, share, per-measure shares, rounds), in strictly increasing id order."""
    assert [m[0] for m in members] == sorted(set(m[0] for m in members))
    assert len(weights) == len(measures)
    out = (header(15, timestamp_ms) + field(1, experiment.encode()) + field(2, u64(rounds))
           + measure_fields(3, measures) + field(4, f64s(weights)))
    for member, share, shares, n in members:
        assert len(shares) == len(measures)
        out += field(5, field(1, member.encode()) + field(2, f64(share))
                     + field(3, f64s(shares)) + field(4, u64(n)))
    return out


def round_closed(timestamp_ms, experiment, rnd, participants, aggregate_hash, model_hash,
                 mean_loss, tokens, epsilon=None):
    """epsilon None: an experiment without privacy, the field is left out."""
    out = header(13, timestamp_ms) + field(1, experiment.encode()) + field(2, u64(rnd))
    for p in participants:
        out += field(3, p.encode())
    out += (field(4, aggregate_hash) + field(5, model_hash) + field(6, f64(mean_loss))
            + field(7, u64(tokens)))
    if epsilon is not None:
        out += field(8, f64(epsilon))
    return out


def experiment_finished(timestamp_ms, experiment, model_hash, rounds, reason=None):
    out = (header(8, timestamp_ms) + field(1, experiment.encode()) + field(3, model_hash)
           + field(4, u64(rounds)))
    if reason is not None:
        out += field(5, reason.encode())
    return out


def experiment_started(timestamp_ms, experiment, policy_hash, model_hash, rounds,
                       dp_seed_commitment=None, dp_noise_scheme=None):
    """dp_seed_commitment: BLAKE2b-256 of the DP noise seed (field 7), and
    dp_noise_scheme: how the noise is drawn from it (field 8), privacy only."""
    out = (header(7, timestamp_ms) + field(1, experiment.encode()) + field(2, policy_hash)
           + field(3, model_hash) + field(4, u64(rounds)))
    if dp_seed_commitment is not None:
        out += field(7, dp_seed_commitment)
    if dp_noise_scheme is not None:
        out += field(8, u32(dp_noise_scheme))
    return out


def i64(v):
    return struct.pack(">q", v)


def motion_entry(entry_type, timestamp_ms, proposal_hash, f, document, signature):
    """policy_proposed (5) / charter_proposed (17) / cancel_proposed (18)."""
    out = (header(entry_type, timestamp_ms) + field(1, proposal_hash) + field(2, u32(f["kind"]))
           + field(3, f["proposer"].encode()))
    if f["experiment"]:
        out += field(4, f["experiment"].encode())
    if document is not None:
        out += field(5, document)
    if any(f["document_digest"]):
        out += field(6, f["document_digest"])
    if any(f["content_hash"]):
        out += field(7, f["content_hash"])
    if f["reason"]:
        out += field(8, f["reason"].encode())
    return (out + field(9, i64(f["created_unix_ms"])) + field(10, i64(f["expires_unix_ms"]))
            + field(11, signature))


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

    # the same update with the validation loss the member reported (not signed)
    e = update_accepted(T0, env, sig, 2.5, val_loss=2.75)
    print("\n[update_accepted with val_loss] %d bytes" % len(e))
    print("entry     ", e.hex())
    print("leaf hash ", hashlib.sha256(b"\x00" + e).hexdigest())

    # policy_proposed: crypto/README.md's experiment motion with its document
    m = crypto_ref.MOTION
    document = b"example policy document"
    assert hashlib.blake2b(document, digest_size=32).digest() == m["document_digest"]
    proposal_hash = hashlib.blake2b(crypto_ref.motion_header(m), digest_size=32).digest()
    msig = key.sign(proposal_hash)
    e = motion_entry(5, T0, proposal_hash, m, document, msig)
    print("\n[policy_proposed] %d bytes" % len(e))
    print("entry     ", e.hex())
    print("leaf hash ", hashlib.sha256(b"\x00" + e).hexdigest())
    f = fields_of(e)
    rebuilt = dict(alliance="au-lac", kind=struct.unpack(">I", f[2])[0], proposer=f[3].decode(),
                   experiment=f[4].decode(), document_digest=f[6], content_hash=f[7],
                   reason=f[8].decode(), created_unix_ms=struct.unpack(">q", f[9])[0],
                   expires_unix_ms=struct.unpack(">q", f[10])[0])
    assert hashlib.blake2b(f[5], digest_size=32).digest() == f[6]
    digest = hashlib.blake2b(crypto_ref.motion_header(rebuilt), digest_size=32).digest()
    assert digest == f[1]
    key.public_key().verify(f[11], digest)
    print("motion signature re-checked from the entry: ok (proposal hash %s)" % digest.hex())

    # contribution_scores: round 7 of gpt2-vi-small, two members, three measures; the
    # shapley values add up to v(N) = base_loss - model_loss = 0.25
    e = contribution_scores(
        T0, "gpt2-vi-small", 7, ["tokens", "alignment", "shapley"],
        bytes(range(0x30, 0x50)), bytes(range(0x50, 0x70)), 4, 1, 3.5, 3.25,
        [("fpt", bytes(range(0x80, 0xa0)), [1048576.0, 0.75, 0.1875]),
         ("hust", bytes(range(0xa0, 0xc0)), [524288.0, 0.5, 0.0625])])
    print("\n[contribution_scores] %d bytes" % len(e))
    print("entry     ", e.hex())
    print("leaf hash ", hashlib.sha256(b"\x00" + e).hexdigest())

    # credits: 12 rounds, tokens weighted 1 and shapley 2
    e = credits(T0, "gpt2-vi-small", 12, ["tokens", "shapley"], [1.0, 2.0],
                [("fpt", (1 * 0.625 + 2 * 0.75) / 3, [0.625, 0.75], 12),
                 ("hust", (1 * 0.375 + 2 * 0.25) / 3, [0.375, 0.25], 11)])
    print("\n[credits] %d bytes" % len(e))
    print("entry     ", e.hex())
    print("leaf hash ", hashlib.sha256(b"\x00" + e).hexdigest())

    # round_closed of an experiment with differential privacy: epsilon spent so far
    e = round_closed(T0, "gpt2-vi-small", 7, ["fpt", "hust"], bytes(range(0x30, 0x50)),
                     bytes(range(0x50, 0x70)), 3.25, 1572864, epsilon=2.5)
    print("\n[round_closed with epsilon] %d bytes" % len(e))
    print("entry     ", e.hex())
    print("leaf hash ", hashlib.sha256(b"\x00" + e).hexdigest())

    # experiment_finished before its planned rounds, with the reason
    e = experiment_finished(T0, "gpt2-vi-small", bytes(range(0x50, 0x70)), 7,
                            reason="privacy budget: round 8 would spend epsilon 8.53 > 8")
    print("\n[experiment_finished with reason] %d bytes" % len(e))
    print("entry     ", e.hex())
    print("leaf hash ", hashlib.sha256(b"\x00" + e).hexdigest())

    # the DP noise seed 00 01 .. 1f: committed by experiment_started (BLAKE2b-256 of it;
    # aggregate/README.md, "Differential privacy"; PRIVACY.md, "Replaying the noise")
    seed = bytes(range(0x00, 0x20))
    commitment = hashlib.blake2b(seed, digest_size=32).digest()
    # and drawn by noise scheme 2 (the libm-free polar method)
    e = experiment_started(T0, "gpt2-vi-small", bytes(range(0x10, 0x30)),
                           bytes(range(0x30, 0x50)), 12, dp_seed_commitment=commitment,
                           dp_noise_scheme=2)
    print("\n[experiment_started with a DP seed commitment and noise scheme] %d bytes"
          % len(e))
    print("commitment", commitment.hex())
    print("entry     ", e.hex())
    print("leaf hash ", hashlib.sha256(b"\x00" + e).hexdigest())


if __name__ == "__main__":
    main()
