#!/usr/bin/env python3
"""Independent reference for the signed statements of crypto/README.md.

Builds each header byte by byte from the README's tables (not from the C code),
the model hash, and the first SubmitUpdate message whose digest a request signs,
hashes it with hashlib's BLAKE2b-256 and signs the digest with Ed25519 from the
`cryptography` package. Prints the worked examples; tests/unit/test_crypto.c
asserts the same digests and signatures.

    python3 crypto/reference.py
"""
import hashlib
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization


def domain(d):
    return d.encode() + b"\x00"


def ident(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def update_header(f):
    return (domain("aulac/update/v1") + ident(f["experiment"]) + struct.pack(">Q", f["round"])
            + ident(f["member"]) + f["base_model_hash"] + f["payload_hash"]
            + struct.pack(">QQQ", f["payload_bytes"], f["samples"], f["tokens"])
            + struct.pack(">IIIIiB", f["format_version"], f["block_size"], f["k_per_block"],
                          f["quant"], f["zstd_level"], f["error_feedback"]))


def task_header(f):
    return (domain("aulac/task/v2") + ident(f["experiment"]) + f["policy_hash"]
            + struct.pack(">Q", f["round"]) + f["base_model_hash"]
            + struct.pack(">qQ", f["deadline_unix_ms"], f["total_rounds"]))


def receipt_header(f):
    return (domain("aulac/receipt/v1") + ident(f["experiment"]) + struct.pack(">Q", f["round"])
            + ident(f["member"]) + f["payload_hash"]
            + struct.pack(">BQQ", f["accepted"], f["ledger_index"], f["ledger_size"])
            + f["ledger_root"])


def join_header(f):
    return domain("aulac/join/v1") + ident(f["member"]) + struct.pack(">q", f["timestamp_unix_ms"]) + f["nonce"]


def text(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def request_header(f):
    return (domain("aulac/request/v1") + text(f["method"]) + ident(f["member"])
            + struct.pack(">q", f["timestamp_unix_ms"]) + f["nonce"] + f["body_digest"])


def proposal_header(f):
    return (domain("aulac/roster-proposal/v1") + text(f["alliance"]) + struct.pack(">B", f["action"])
            + ident(f["proposer"]) + ident(f["member"]) + text(f["organization"])
            + struct.pack(">I", f["roles"]) + f["public_key"] + text(f["reason"])
            + struct.pack(">qq", f["created_unix_ms"], f["expires_unix_ms"]))


def vote_header(f):
    return domain("aulac/vote/v1") + f["proposal_hash"] + ident(f["voter"]) + struct.pack(">B", f["approve"])


def motion_header(f):
    return (domain("aulac/motion/v1") + text(f["alliance"]) + struct.pack(">B", f["kind"])
            + ident(f["proposer"]) + text(f["experiment"]) + f["document_digest"]
            + f["content_hash"] + text(f["reason"])
            + struct.pack(">qq", f["created_unix_ms"], f["expires_unix_ms"]))


def withdraw_header(f):
    return domain("aulac/withdraw/v1") + f["proposal_hash"] + ident(f["member"])


def node_task_header(f):
    return (domain("aulac/node-task/v1") + ident(f["member"]) + struct.pack(">B", f["kind"])
            + text(f["experiment"]) + struct.pack(">QQIII", f["round"], f["seq"], f["node_rank"],
                                                  f["nranks"], f["first_rank"])
            + f["nccl_id"] + f["base_model_hash"] + struct.pack(">I", f["inner_steps"])
            + f["policy_hash"] + struct.pack(">Qq", f["data_seed"], f["expires_unix_ms"])
            + f["nonce"])


def model_hash(params):
    """aulac/model/v1: BLAKE2b-256 over the domain, 0x00 and the fp32 parameters (little-endian)."""
    return hashlib.blake2b(domain("aulac/model/v1") + struct.pack("<%df" % len(params), *params),
                           digest_size=32).digest()


def varint(n):
    out = b""
    n &= (1 << 64) - 1           # negative int32/int64 are sign-extended to 64 bits
    while n >= 0x80:
        out += bytes([n & 0x7f | 0x80])
        n >>= 7
    return out + bytes([n])


def pb(field, value, kind):
    """One protobuf field as protobuf-c writes it: proto3 defaults (0, empty) are left out."""
    if kind == "varint":
        return varint(field << 3) + varint(value) if value else b""
    if kind == "float":
        return varint(field << 3 | 5) + struct.pack("<f", value) if value else b""
    return varint(field << 3 | 2) + varint(len(value)) + value if value else b""   # bytes


def submit_update_first_message(f, signature, train_loss, val_loss):
    """SubmitUpdate's first stream message: UpdateChunk{header = UpdateHeader{...}}."""
    codec = (pb(1, f["format_version"], "varint") + pb(2, f["block_size"], "varint")
             + pb(3, f["k_per_block"], "varint") + pb(4, f["quant"], "varint")
             + pb(5, f["zstd_level"], "varint") + pb(6, f["error_feedback"], "varint"))
    header = (pb(1, f["experiment"].encode(), "bytes") + pb(2, f["round"], "varint")
              + pb(3, f["member"].encode(), "bytes") + pb(4, f["base_model_hash"], "bytes")
              + pb(5, f["payload_hash"], "bytes") + pb(6, f["payload_bytes"], "varint")
              + pb(7, f["samples"], "varint") + pb(8, f["tokens"], "varint")
              + pb(9, codec, "bytes") + pb(10, signature, "bytes")
              + pb(11, train_loss, "float") + pb(12, val_loss, "float"))
    return pb(1, header, "bytes")


SEED = bytes(range(32))
BASE = bytes(0xa0 + i for i in range(32))
POLICY = bytes(0xc0 + i for i in range(32))
PAYLOAD = hashlib.blake2b(b"example payload", digest_size=32).digest()
ROOT = bytes(0x50 + i for i in range(32))
BODY = hashlib.blake2b(b"example request", digest_size=32).digest()
NEW_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64))).public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw)
PROPOSAL = dict(
    alliance="au-lac", action=1, proposer="fpt", member="uet",
    organization="VNU University of Engineering and Technology", roles=3, public_key=NEW_KEY,
    reason="joins the alliance", created_unix_ms=1767225600000, expires_unix_ms=1767830400000)
PROPOSAL_HASH = hashlib.blake2b(proposal_header(PROPOSAL), digest_size=32).digest()

MOTION = dict(
    alliance="au-lac", kind=1, proposer="hust", experiment="demo-c0c1c2c3",
    document_digest=hashlib.blake2b(b"example policy document", digest_size=32).digest(),
    content_hash=bytes(0xc0 + i for i in range(32)), reason="first run",
    created_unix_ms=1767225600000, expires_unix_ms=1767830400000)
MOTION_HASH = hashlib.blake2b(motion_header(MOTION), digest_size=32).digest()
CHARTER_TEXT = (b"# aulac charter v1\nquorum:\n  roster: 0.5\n  experiments: 0.5\n"
                b"  charter: 0.67\nproposers: [researcher]\nproposal_expiry_days: 7\n"
                b"concurrent_experiments: 1\n")
CHARTER_HASH = hashlib.blake2b(CHARTER_TEXT, digest_size=32).digest()

UPDATE = dict(
    experiment="gpt2-vi-small", round=7, member="fpt", base_model_hash=BASE,
    payload_hash=PAYLOAD, payload_bytes=123456, samples=2048, tokens=1048576,
    format_version=1, block_size=4096, k_per_block=64, quant=1, zstd_level=3,
    error_feedback=1)
MODEL = [1.0, -2.0, 0.5, 0.0]

EXAMPLES = [
    ("update", update_header, UPDATE),
    ("task", task_header, dict(
        experiment="gpt2-vi-small", policy_hash=POLICY, round=7, base_model_hash=BASE,
        deadline_unix_ms=1767229200000, total_rounds=100)),
    ("receipt", receipt_header, dict(
        experiment="gpt2-vi-small", round=7, member="fpt", payload_hash=PAYLOAD, accepted=1,
        ledger_index=41, ledger_size=42, ledger_root=ROOT)),
    ("join", join_header, dict(
        member="fpt", timestamp_unix_ms=1767225600000, nonce=bytes(range(0xf0, 0x100)))),
    ("request", request_header, dict(
        method="/aulac.v1.Federation/GetTask", member="fpt", timestamp_unix_ms=1767225600000,
        nonce=bytes(range(0xf0, 0x100)), body_digest=BODY)),
    ("roster proposal", proposal_header, PROPOSAL),
    ("vote", vote_header, dict(proposal_hash=PROPOSAL_HASH, voter="vnpt", approve=1)),
    ("experiment motion", motion_header, MOTION),
    ("cancel motion", motion_header, dict(
        alliance="au-lac", kind=2, proposer="fpt", experiment="demo-c0c1c2c3",
        document_digest=bytes(32), content_hash=bytes(32), reason="",
        created_unix_ms=1767229200000, expires_unix_ms=1767834000000)),
    ("charter motion", motion_header, dict(
        alliance="au-lac", kind=3, proposer="fpt", experiment="",
        document_digest=CHARTER_HASH, content_hash=CHARTER_HASH, reason="back to the defaults",
        created_unix_ms=1767225600000, expires_unix_ms=1767830400000)),
    ("vote on the experiment motion", vote_header, dict(proposal_hash=MOTION_HASH, voter="vnpt",
                                                        approve=1)),
    ("withdrawal", withdraw_header, dict(proposal_hash=MOTION_HASH, member="hust")),
    ("node task", node_task_header, dict(
        member="fpt", kind=3, experiment="gpt2-vi-small", round=7, seq=12, node_rank=1,
        nranks=16, first_rank=8, nccl_id=bytes(range(128)), base_model_hash=BASE,
        inner_steps=500, policy_hash=POLICY,
        data_seed=0x0123456789abcdef, expires_unix_ms=1767225660000,
        nonce=bytes(range(0xf0, 0x100)))),
]


def main():
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    print("seed        ", SEED.hex())
    print("public key  ", pub.hex())
    print("key id      ", hashlib.blake2b(pub, digest_size=32).digest()[:8].hex())
    print("payload hash", PAYLOAD.hex())
    print("body digest ", BODY.hex())
    print("new key     ", NEW_KEY.hex())
    print("model hash  ", model_hash(MODEL).hex(), "of", MODEL)
    print("policy doc  ", MOTION["document_digest"].hex(), "= BLAKE2b-256(b'example policy document')")
    print("charter hash", CHARTER_HASH.hex(), "= BLAKE2b-256(the default charter's canonical text)")
    for name, build, fields in EXAMPLES:
        header = build(fields)
        digest = hashlib.blake2b(header, digest_size=32).digest()
        sig = key.sign(digest)
        print(f"\n[{name}] {len(header)} header bytes")
        print("header   ", header.hex())
        print("digest   ", digest.hex())
        print("signature", sig.hex())

    # SubmitUpdate: the request signature covers the first stream message as sent.
    update_sig = key.sign(hashlib.blake2b(update_header(UPDATE), digest_size=32).digest())
    first = submit_update_first_message(UPDATE, update_sig, 3.25, 3.5)
    body = hashlib.blake2b(first, digest_size=32).digest()
    header = request_header(dict(
        method="/aulac.v1.Federation/SubmitUpdate", member="fpt",
        timestamp_unix_ms=1767225600000, nonce=bytes(range(0xf0, 0x100)), body_digest=body))
    digest = hashlib.blake2b(header, digest_size=32).digest()
    print(f"\n[request SubmitUpdate] first message UpdateChunk{{header}}, {len(first)} bytes")
    print("message  ", first.hex())
    print("body     ", body.hex())
    print("digest   ", digest.hex())
    print("signature", key.sign(digest).hex())


if __name__ == "__main__":
    main()
