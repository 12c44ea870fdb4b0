#!/usr/bin/env python3
"""Independent reference for ledger checkpoints (ledger/checkpoint.h), written from
c2sp.org/tlog-checkpoint and c2sp.org/signed-note with hashlib and `cryptography`.
Prints the worked example that tests/unit/test_checkpoint.c asserts byte for byte."""
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


if __name__ == "__main__":
    main()
