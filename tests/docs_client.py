#!/usr/bin/env python3
"""A client's view of aulac written from the documents alone (python3 stdlib only).

What a member or auditor implements from proto/aulac.proto, crypto/README.md
("Model hash", "Request", "Update envelope", "Task announcement"), model/gpt2.h (the canonical tensor
order) and common/safetensors.h (the checkpoint file format), without reading the C
code or crypto/reference.py. tests/unit/test_docs_client.c feeds it what a real
coordinator and a real client produced and compares its answers with theirs.

Input (stdin), one item per line:
    checkpoint DIR      a model checkpoint directory (model.safetensors, config.json)
    submit KEY VALUE    a field of one SubmitUpdate request (see read_submit)
    task HEX            a Task message (GetTask's reply) as received
Output (stdout), one line per answer:
    model_hash HEX DIR
    submit_first_message HEX
    submit_body_digest HEX
    request_digest HEX
    task_digest HEX SIGNATURE_HEX    the digest the task's signature is over
"""
import hashlib
import json
import os
import struct
import sys


def blake2b256(data):
    return hashlib.blake2b(data, digest_size=32).digest()


# --- the model hash (crypto/README.md "Model hash") ----------------------------

def canonical_names(n_layer):
    """model/gpt2.h: the canonical tensor order of the flat parameter vector."""
    names = ["wte.weight", "wpe.weight"]
    for i in range(n_layer):
        for t in ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                  "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                  "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"):
            names.append("h.%d.%s" % (i, t))
    return names + ["ln_f.weight", "ln_f.bias"]


def checkpoint_params(directory):
    """The flat parameter vector (little-endian fp32 bytes) of a checkpoint directory."""
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(directory, "model.safetensors"), "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8:8 + header_len])
    data = blob[8 + header_len:]
    out = bytearray()
    for name in canonical_names(config["n_layer"]):
        t = header.get(name) or header["transformer." + name]
        if t["dtype"] != "F32":
            raise ValueError("%s: %s is %s, not F32" % (directory, name, t["dtype"]))
        begin, end = t["data_offsets"]
        out += data[begin:end]
    return bytes(out)


def model_hash(params):
    return blake2b256(b"aulac/model/v1\x00" + params)


# --- the SubmitUpdate request (proto/aulac.proto, crypto/README.md "Request") --

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7f
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(number, value):
    return varint(number << 3) + varint(value) if value else b""


def field_bytes(number, value):
    return varint(number << 3 | 2) + varint(len(value)) + value if value else b""


def field_float(number, value):
    return varint(number << 3 | 5) + struct.pack("<f", value) if value else b""


def update_chunk_header(s):
    """UpdateChunk{header = UpdateHeader{...}}, fields in number order, zeros left out."""
    codec = (field_varint(1, s["format_version"]) + field_varint(2, s["block_size"])
             + field_varint(3, s["k_per_block"]) + field_varint(4, s["quant"])
             + field_varint(5, s["zstd_level"]) + field_varint(6, s["error_feedback"]))
    header = (field_bytes(1, s["experiment"].encode()) + field_varint(2, s["round"])
              + field_bytes(3, s["member"].encode()) + field_bytes(4, s["base_model_hash"])
              + field_bytes(5, s["payload_hash"]) + field_varint(6, s["payload_bytes"])
              + field_varint(7, s["samples"]) + field_varint(8, s["tokens"])
              + field_bytes(9, codec) + field_bytes(10, s["signature"])
              + field_float(11, s["train_loss"]) + field_float(12, s["val_loss"]))
    return field_bytes(1, header)


def text(value):
    b = value.encode()
    return struct.pack(">H", len(b)) + b


def request_digest(method, member, timestamp_ms, nonce, body_digest):
    header = (b"aulac/request/v1\x00" + text(method) + text(member)
              + struct.pack(">q", timestamp_ms) + nonce + body_digest)
    return blake2b256(header)


# --- the task announcement (proto/aulac.proto Task, crypto/README.md) ---------

def read_varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7f) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def parse_message(buf):
    """{field number: value}: varints as int, length-delimited fields as bytes."""
    fields, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            fields[number], i = read_varint(buf, i)
        elif wire == 2:
            n, i = read_varint(buf, i)
            fields[number], i = buf[i:i + n], i + n
        elif wire == 1:
            fields[number], i = buf[i:i + 8], i + 8
        elif wire == 5:
            fields[number], i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wire)
    return fields


def task_digest(message):
    """The Task's signed statement: aulac/task/v2 over experiment, policy hash, round,
    base model hash, deadline and total rounds (Task fields 2, 14, 3, 5, 6, 4)."""
    t = parse_message(message)
    deadline = t.get(6, 0)
    if deadline >= 1 << 63:       # int64: a negative value is its two's complement
        deadline -= 1 << 64
    header = (b"aulac/task/v2\x00" + text(t[2].decode()) + t[14]
              + struct.pack(">Q", t.get(3, 0)) + t[5]
              + struct.pack(">qQ", deadline, t.get(4, 0)))
    return blake2b256(header), t[10]


INTS = ("round", "payload_bytes", "samples", "tokens", "format_version", "block_size",
        "k_per_block", "quant", "zstd_level", "error_feedback", "timestamp_ms")
HEXES = ("base_model_hash", "payload_hash", "signature", "nonce")
FLOATS = ("train_loss", "val_loss")


def read_submit(fields, key, value):
    if key in INTS:
        fields[key] = int(value)
    elif key in HEXES:
        fields[key] = bytes.fromhex(value)
    elif key in FLOATS:
        fields[key] = float(value)
    elif key in ("experiment", "member", "method"):
        fields[key] = value
    else:
        raise ValueError("unknown submit field " + key)


def main():
    submit = {}
    for line in sys.stdin:
        words = line.split(None, 1)
        if not words:
            continue
        if words[0] == "checkpoint":
            directory = words[1].rstrip("\n")
            print("model_hash", model_hash(checkpoint_params(directory)).hex(), directory)
        elif words[0] == "submit":
            key, value = words[1].split()
            read_submit(submit, key, value)
        elif words[0] == "task":
            digest, signature = task_digest(bytes.fromhex(words[1].strip()))
            print("task_digest", digest.hex(), signature.hex())
        else:
            raise ValueError("unknown input line: " + line)
    if submit:
        first = update_chunk_header(submit)
        body = blake2b256(first)
        print("submit_first_message", first.hex())
        print("submit_body_digest", body.hex())
        print("request_digest", request_digest(submit["method"], submit["member"],
                                               submit["timestamp_ms"], submit["nonce"],
                                               body).hex())


if __name__ == "__main__":
    main()
