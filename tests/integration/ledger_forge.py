#!/usr/bin/env python3
"""Rewrites a coordinator's data directory the way someone without the coordinator's
key would (issue 10, item 3): the first update_accepted entry of one member is
credited to another, every leaf and subtree hash is recomputed (ledger/README.md,
"Storage"), the (experiment, round, member) index is moved along, and signed
checkpoints are dropped or, with --resign, replaced by new ones signed with a key
given (what only the coordinator's key holder could do).

    ledger_forge.py SRC DST --from vnpt --to hust --checkpoints covering|all|resign
                    [--key coordinator.key]

It reads SRC with mdb_dump and writes DST with mdb_load (lmdb-utils) and prints
the index of the rewritten entry. Nothing here uses aulac code: the layouts are
taken from ledger/README.md and crypto/README.md."""
import argparse
import base64
import hashlib
import os
import shutil
import struct
import subprocess
import sys

UPDATE_ACCEPTED = 11


def parse_dump(text):
    """mdb_dump -a output: a list of (header lines, [(key, value)]) per database."""
    dbs, header, pairs, state, key = [], [], [], "header", None
    for line in text.splitlines():
        if state == "header":
            header.append(line)
            if line == "HEADER=END":
                state, pairs = "data", []
        elif line == "DATA=END":
            dbs.append((header, pairs))
            header, state = [], "header"
        elif key is None:
            key = bytes.fromhex(line.strip())
        else:
            pairs.append((key, bytes.fromhex(line.strip())))
            key = None
    return dbs


def write_dump(dbs):
    out = []
    for header, pairs in dbs:
        out.extend(l for l in header if not l.startswith("db_pagesize="))
        for k, v in pairs:
            out.append(" " + k.hex())
            out.append(" " + v.hex())
        out.append("DATA=END")
    return "\n".join(out) + "\n"


def db_name(header):
    for line in header:
        if line.startswith("database="):
            return line[len("database="):]
    return None


def fields(entry):
    """(tag, value) pairs of an entry's top level."""
    pos, out = 15, []
    while pos < len(entry):
        tag, n = struct.unpack(">HI", entry[pos:pos + 6])
        out.append((tag, entry[pos + 6:pos + 6 + n]))
        pos += 6 + n
    return out


def encode(head, flds):
    return head + b"".join(struct.pack(">HI", t, len(v)) + v for t, v in flds)


def leaf_hash(e):
    return hashlib.sha256(b"\x00" + e).digest()


def node_hash(a, b):
    return hashlib.sha256(b"\x01" + a + b).digest()


def mth(leaves):
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def signed_note(origin, size, root, seed):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    sk = Ed25519PrivateKey.from_private_bytes(seed)
    pk = sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    text = b"%s\n%d\n%s\n" % (origin.encode(), size, base64.b64encode(root))
    kid = hashlib.sha256(origin.encode() + b"\x0a\x01" + pk).digest()[:4]
    sig = base64.b64encode(kid + sk.sign(text))
    return text + b"\n" + "\u2014 ".encode() + origin.encode() + b" " + sig + b"\n"


def key_seed(path):
    for line in open(path):
        if line.startswith("secret:"):
            return base64.b64decode(line.split(":", 1)[1].strip())
    sys.exit("no secret in " + path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--from", dest="src_member", required=True)
    ap.add_argument("--to", dest="dst_member", required=True)
    ap.add_argument("--checkpoints", choices=["covering", "all", "resign"], required=True)
    ap.add_argument("--key", help="secret key file that signs the new checkpoints (resign)")
    a = ap.parse_args()

    dump = subprocess.run(["mdb_dump", "-a", a.src], check=True, capture_output=True,
                          text=True).stdout
    dbs = {db_name(h): (h, p) for h, p in parse_dump(dump)}
    entries = [v for _, v in sorted(dbs["ledger.entries"][1])]

    victim = None
    for i, e in enumerate(entries):
        if struct.unpack(">H", e[5:7])[0] != UPDATE_ACCEPTED:
            continue
        f = fields(e)
        if dict(f).get(3) == a.src_member.encode():
            victim = i
            break
    if victim is None:
        sys.exit("no update_accepted entry of %s" % a.src_member)
    f = fields(entries[victim])
    exp, rnd = dict(f)[1], dict(f)[2]
    entries[victim] = encode(entries[victim][:15],
                             [(t, a.dst_member.encode() if t == 3 else v) for t, v in f])

    # every stored complete subtree, recomputed from the entries
    n = len(entries)
    level = [leaf_hash(e) for e in entries]
    nodes, lv = [], 0
    while level:
        nodes += [(bytes([lv]) + struct.pack(">Q", i), h) for i, h in enumerate(level)]
        level = [node_hash(level[2 * i], level[2 * i + 1]) for i in range(len(level) // 2)]
        lv += 1
    h, _ = dbs["ledger.nodes"]
    dbs["ledger.nodes"] = (h, sorted(nodes))

    # the (experiment, round, member) index follows the entry
    def ukey(member):
        m = member.encode()
        return b"update\x00" + bytes([len(exp)]) + exp + rnd + bytes([len(m)]) + m
    h, p = dbs["ledger.index"]
    p = [(k, v) for k, v in p if k != ukey(a.src_member)]
    if not any(k == ukey(a.dst_member) for k, _ in p):
        p.append((ukey(a.dst_member), struct.pack(">Q", victim)))
    dbs["ledger.index"] = (h, sorted(p))

    h, p = dbs["ledger.checkpoints"]
    if a.checkpoints == "covering":
        p = [(k, v) for k, v in p if struct.unpack(">Q", k)[0] <= victim]
    elif a.checkpoints == "all":
        p = []
    else:
        origin = p[-1][1].split(b"\n", 1)[0].decode()
        leaves = [leaf_hash(e) for e in entries]
        seed = key_seed(a.key)
        p = [(k, signed_note(origin, s, mth(leaves[:s]), seed))
             for k, s in ((k, struct.unpack(">Q", k)[0]) for k, _ in p)]
    dbs["ledger.checkpoints"] = (h, p)

    h, _ = dbs["ledger.entries"]
    dbs["ledger.entries"] = (h, [(struct.pack(">Q", i), e) for i, e in enumerate(entries)])

    if os.path.exists(a.dst):
        shutil.rmtree(a.dst)
    shutil.copytree(a.src, a.dst, ignore=shutil.ignore_patterns("data.mdb", "lock.mdb"))
    subprocess.run(["mdb_load", "-f", "/dev/stdin", a.dst], input=write_dump(dbs.values()),
                   text=True, check=True)
    print(victim)


if __name__ == "__main__":
    main()
