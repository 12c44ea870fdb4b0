#!/usr/bin/env python3
"""Independent reference for ledger checkpoints (ledger/checkpoint.h) and member
cosignatures (ledger/cosignature.h), written from c2sp.org/tlog-checkpoint,
c2sp.org/signed-note and c2sp.org/tlog-cosignature with hashlib and `cryptography`.
Prints the worked examples that tests/unit/test_checkpoint.c and
tests/unit/test_cosignature.c assert byte for byte."""
import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\x0a" + b"\x01" + public_key).digest()[:4]


def checkpoint_text(origin: str, size: int, root: bytes) -> bytes:
    return b"%s\n%d\n%s\n" % (origin.encode(), size, base64.b64encode(root))


def sign_note(text: bytes, name: str, sk: Ed25519PrivateKey) -> bytes:
    pk = sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    sig = key_id(name, pk) + sk.sign(text)
    return text + b"\n" + "\u2014 ".encode() + name.encode() + b" " + base64.b64encode(sig) + b"\n"


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\x0a" + b"\x04" + public_key).digest()[:4]


def cosign(note: bytes, origin: str, member: str, sk: Ed25519PrivateKey, timestamp: int) -> bytes:
    """Appends the cosignature/v1 line of member to a signed checkpoint note."""
    text = note[:note.rindex(b"\n\n") + 1]
    name = "%s/witness/%s" % (origin, member)
    pk = sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    msg = b"cosignature/v1\ntime %d\n" % timestamp + text
    blob = cosigner_key_id(name, pk) + timestamp.to_bytes(8, "big") + sk.sign(msg)
    return note + "\u2014 ".encode() + name.encode() + b" " + base64.b64encode(blob) + b"\n"


def main():
    seed = bytes(range(32))                     # the key of crypto/README.md's example
    sk = Ed25519PrivateKey.from_private_bytes(seed)
    pk = sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    origin = "aulac/au-lac-demo"
    root = bytes(range(0x50, 0x70))
    print("public key ", pk.hex())
    print("key id     ", key_id(origin, pk).hex())
    note = sign_note(checkpoint_text(origin, 42, root), origin, sk)
    print("note (%d bytes):" % len(note))
    print(note.decode(), end="")
    print("note hex   ", note.hex())
    # the empty tree: size 0, root SHA-256("")
    empty = sign_note(checkpoint_text(origin, 0, hashlib.sha256(b"").digest()), origin, sk)
    print("empty-tree note:")
    print(empty.decode(), end="")
    # member hust (key of seed 20..3f) cosigns the note above at 2026-01-01T00:00:00Z
    member_sk = Ed25519PrivateKey.from_private_bytes(bytes(range(0x20, 0x40)))
    member_pk = member_sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    name = origin + "/witness/hust"
    print("cosigner   ", name, "public key", member_pk.hex())
    print("cosigner key id", cosigner_key_id(name, member_pk).hex())
    cosigned = cosign(note, origin, "hust", member_sk, 1767225600)
    print("cosigned note (%d bytes):" % len(cosigned))
    print(cosigned.decode(), end="")


if __name__ == "__main__":
    main()
