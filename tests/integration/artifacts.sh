#!/usr/bin/env bash
# Pinned files through a real coordinator and the CLI (coordinator/artifacts.h):
# aulac artifact put (stored, then already held; the hash is BLAKE2b-256 of the bytes),
# get (whole, resumed from a .part, a corrupt .part refused and removed, an unknown hash
# named), a refused upload (over --max-artifact-bytes, a non-member) leaves nothing in the
# store; an approved external-model experiment waits, queued, while one of its pinned
# files is missing (log and status name it and the command), and starts once it is
# uploaded: round 0 is the init file's tensors (hash v2 recomputed here independently),
# checkpointed as F32 safetensors with copies of the pinned config.json and
# tokenizer.json; aulac experiment propose files the proposal, then uploads a policy's
# files (a line per file), and refuses, proposing nothing, when a file next to the policy
# does not match its pin; an upload no proposal or experiment pins is refused.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

make_alliance alpha beta
"$BIN/aulac" keygen --id mallory --dir "$T/keys" >/dev/null   # not in the roster
CAP=300000
start_bg coordinator "$BIN/aulac-coordinator" --data-dir "$T/coord" \
    --key "$T/keys/coordinator.key" --roster "$T/roster.yaml" --listen 127.0.0.1:0 \
    --port-file "$T/port" --insecure --max-artifact-bytes $CAP
COORD_PID=$LAST_PID
for _ in $(seq 150); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || fail "the coordinator did not start"
ADDR=127.0.0.1:$(cat "$T/port")
as() { local m=$1; shift; "$BIN/aulac" "$@" --coordinator "$ADDR" --member "$m" --key "$T/keys/$m.key" --insecure; }
b2() { python3 -c 'import hashlib,sys; print(hashlib.blake2b(open(sys.argv[1],"rb").read(), digest_size=32).hexdigest())' "$1"; }
store_files() { find "$T/coord/artifacts" -type f | sort; }

# --- an external model that waits for its files ------------------------------------------
mkdir -p "$T/ext/tiny"
python3 - "$T/ext/tiny" <<'PY'
import json, struct, sys
d = sys.argv[1]
def bf16(x):   # exact: values with at most 8 significant bits
    return struct.pack('<I', struct.unpack('<I', struct.pack('<f', x))[0])[2:]
tensors = {   # name: (dtype, shape, values)
    "tok.weight": ("BF16", [6, 4], [(i % 7 - 3) * 0.125 for i in range(24)]),
    "head.bias": ("F32", [6], [0.5 * i - 1 for i in range(6)]),
    "norm.weight": ("F16", [4], [1.0, 0.5, -2.0, 0.25]),
}
header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
for name, (dt, shape, vals) in tensors.items():
    if dt == "BF16": b = b"".join(bf16(v) for v in vals)
    elif dt == "F16": b = b"".join(struct.pack('<e', v) for v in vals)
    else: b = b"".join(struct.pack('<f', v) for v in vals)
    header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
open(d + "/model.safetensors", "wb").write(struct.pack('<Q', len(h)) + h + b"".join(blobs))
open(d + "/config.json", "w").write(json.dumps({"model_type": "tinytest", "hidden_size": 4}))
open(d + "/tokenizer.json", "w").write(json.dumps({"version": "1.0", "model": {"type": "BPE"}}))
PY
HI=$(b2 "$T/ext/tiny/model.safetensors"); HC=$(b2 "$T/ext/tiny/config.json"); HT=$(b2 "$T/ext/tiny/tokenizer.json")
write_ext() {   # write_ext FILE NAME
    cat >"$1" <<YAML
schema: 1
metadata: { name: $2, proposer: alpha }
model:
  family: external
  init: { file: tiny/model.safetensors, blake2b: "$HI" }
  config: { file: tiny/config.json, blake2b: "$HC" }
  tokenizer: { file: tiny/tokenizer.json, blake2b: "$HT" }
  seed: 11
data: { min_tokens_per_member: 1000, validation_fraction: 0.1 }
training:
  rounds: 2
  local_steps: 2
  batch_size: 2
  seq_len: 16
  inner: { kind: adamw, lr: 0.005, weight_decay: 0.0, beta1: 0.9, beta2: 0.95, grad_clip: 1.0 }
  outer: { kind: fedavg, lr: 1.0 }
aggregation: { rule: fedavg, weighting: tokens }
compression:
  uplink: { method: topk, block_size: 16, k_per_block: 4, quant: int8, zstd_level: 1, error_feedback: false }
  downlink: { method: none, quant: fp32 }
participation: { members: [alpha, beta], min_members: 1, round_deadline_s: 600, grace_s: 1 }
YAML
}
write_ext "$T/ext/ext.yaml" it-ext
"$BIN/aulac" policy check "$T/ext/ext.yaml" >"$T/check.out" 2>&1 || { cat "$T/check.out"; fail "the external policy does not check"; }

# Nothing is taken before a proposal pins it (propose first, upload after).
if as alpha artifact put "$T/ext/tiny/model.safetensors" >"$T/early.out" 2>&1; then
    fail "a file no proposal pins was stored"
fi
grep -q "FAILED_PRECONDITION.*no open experiment proposal and no queued or running experiment pins this file" "$T/early.out" ||
    fail "unpinned upload: $(cat "$T/early.out")"
[ -z "$(find "$T/coord/artifacts" -maxdepth 1 -type f)" ] || fail "the unpinned upload left a file"
note "an upload that no proposal or experiment pins is refused"
# Proposed, init and config uploaded, the tokenizer not: approved, but it waits.
as alpha experiment propose "$T/ext/ext.yaml" --no-upload >"$T/prop1.out" 2>&1 || { cat "$T/prop1.out"; fail "propose --no-upload"; }
EXP=$(sed -n 's/^experiment \(it-ext-[0-9a-f]*\) .*/\1/p' "$T/prop1.out")
[ -n "$EXP" ] || fail "no experiment id in: $(cat "$T/prop1.out")"
as alpha artifact put "$T/ext/tiny/model.safetensors" "$T/ext/tiny/config.json" >/dev/null 2>&1 ||
    fail "put init and config"
waits() { grep -q "experiment $EXP waits for pinned files the coordinator does not hold: model.tokenizer (tiny/tokenizer.json, ${HT:0:8}...); upload them with aulac artifact put" "$T/logs/coordinator.log"; }
for _ in $(seq 100); do waits && break; sleep 0.1; done
waits || fail "the coordinator did not say what the experiment waits for"
sleep 6   # past a periodic re-check: still waiting
grep -q "experiment $EXP started" "$T/logs/coordinator.log" && fail "it started without its tokenizer"
status_json >"$T/st1.json"
python3 - "$T/st1.json" "$EXP" <<'PY' || fail "status while waiting: $(cat "$T/st1.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["state"] == "idle" and s["queue_length"] == 1, s
assert "model.tokenizer (tiny/tokenizer.json" in s["waiting"] and "aulac artifact put" in s["waiting"], s
PY
"$BIN/aulac" status --coordinator "$ADDR" --insecure | grep -q "^waiting: experiment $EXP waits for" ||
    fail "aulac status does not show the wait"
[ "$(grep -c "experiment $EXP waits for pinned files the coordinator does not hold: model.tokenizer" "$T/logs/coordinator.log")" = 1 ] ||
    fail "the wait is logged more than once"
note "approved, queued, waiting for model.tokenizer (log and status say so)"

as beta artifact put "$T/ext/tiny/tokenizer.json" >/dev/null 2>&1 || fail "put tokenizer"
started() { grep -q "experiment $EXP started" "$T/logs/coordinator.log"; }
for _ in $(seq 50); do started && break; sleep 0.1; done
started || fail "the experiment did not start once its files were held"
status_json >"$T/st2.json"
python3 - "$T/st2.json" "$EXP" "$T/ext/tiny/model.safetensors" "$T/coord/models" <<'PY' || fail "round 0"
import json, os, struct, sys, hashlib
s = json.load(open(sys.argv[1]))
assert s["state"] == "running" and s["experiment"] == sys.argv[2] and s["waiting"] == "", s
def read_st(path):
    b = open(path, "rb").read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); data = b[8 + n:]
    meta = h.pop("__metadata__", {})
    out = {}
    for name, t in h.items():
        raw = data[t["data_offsets"][0]:t["data_offsets"][1]]
        if t["dtype"] == "F32": v = list(struct.unpack('<%df' % (len(raw) // 4), raw))
        elif t["dtype"] == "F16": v = list(struct.unpack('<%de' % (len(raw) // 2), raw))
        elif t["dtype"] == "BF16": v = [struct.unpack('<f', b"\0\0" + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]
        out[name] = (t["dtype"], t["shape"], v)
    return meta, out
_, init = read_st(sys.argv[3])
# model/layout.h: BLAKE2b-256("aulac/model/v2" 0x00 | u32 n | per tensor (sorted by name):
# u16 len, name, u8 ndim, u64 dims (big-endian) | the flat vector, LE fp32)
m = bytearray(b"aulac/model/v2\0") + struct.pack('>I', len(init))
flat = bytearray()
for name in sorted(init, key=lambda x: x.encode()):
    dt, shape, v = init[name]
    m += struct.pack('>H', len(name)) + name.encode() + struct.pack('>B', len(shape))
    m += b"".join(struct.pack('>Q', d) for d in shape)
    flat += struct.pack('<%df' % len(v), *v)
want = hashlib.blake2b(bytes(m + flat), digest_size=32).hexdigest()
assert s["model_hash"] == want, (s["model_hash"], want)
d = os.path.join(sys.argv[4], want)
meta, ck = read_st(os.path.join(d, "model.safetensors"))
assert set(ck) == set(init), (ck.keys(), init.keys())
for name in init:
    assert ck[name][0] == "F32" and ck[name][1] == init[name][1] and ck[name][2] == init[name][2], name
assert meta.get("format") == "pt", meta
PY
cmp -s "$T/ext/tiny/config.json" "$T/coord/models/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model_hash"])' "$T/st2.json")/config.json" ||
    fail "the checkpoint lacks the pinned config.json"
cmp -s "$T/ext/tiny/tokenizer.json" "$T/coord/models/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model_hash"])' "$T/st2.json")/tokenizer.json" ||
    fail "the checkpoint lacks the pinned tokenizer.json"
note "started once uploaded: round 0 = the init (v2 hash), F32 checkpoint + config.json + tokenizer.json"
MH=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model_hash"])' "$T/st2.json")
mkdir -p "$T/text" && cp "$ROOT/README.md" "$T/text/"
if "$BIN/aulac" eval --model "$T/coord/models/$MH" --data "$T/text" >"$T/eval.out" 2>&1; then
    fail "aulac eval took an external model"
fi
grep -q "holds a named-tensor (external) model, not a built-in GPT-2: aulac eval is the built-in GPT-2's byte-level evaluator" "$T/eval.out" ||
    fail "eval: $(cat "$T/eval.out")"

# The verifier rebuilds model 0 from the init in the store (or an --artifacts DIR).
"$BIN/aulac" credits verify --data-dir "$T/coord" --experiment "$EXP" >"$T/verify.out" 2>&1 || true
grep -q "experiment $EXP: model 0 [0-9a-f]*… = experiment_started's" "$T/verify.out" ||
    fail "credits verify: $(cat "$T/verify.out")"
mkdir -p "$T/empty"
"$BIN/aulac" credits verify --data-dir "$T/coord" --experiment "$EXP" --artifacts "$T/empty" >"$T/verify2.out" 2>&1 || true
grep -q "NOT CHECKED: model 0 cannot be made: model.init: tiny/model.safetensors ($HI) is not in $T/empty; fetch it with aulac artifact get $HI" "$T/verify2.out" ||
    fail "credits verify without the init: $(cat "$T/verify2.out")"
mkdir -p "$T/fetched"
as beta artifact get "$HI" -o "$T/fetched/$HI" >/dev/null 2>&1 || fail "get the init"
"$BIN/aulac" credits verify --data-dir "$T/coord" --experiment "$EXP" --artifacts "$T/fetched" >"$T/verify3.out" 2>&1 || true
grep -q "experiment $EXP: model 0 [0-9a-f]*… = experiment_started's" "$T/verify3.out" ||
    fail "credits verify --artifacts: $(cat "$T/verify3.out")"
note "credits verify: model 0 from the store, from --artifacts DIR, and named when missing"

# --- put and get (a queued experiment pins the blob) -----------------------------------
head -c 200000 /dev/urandom >"$T/blob.bin"
H=$(b2 "$T/blob.bin")
mkdir -p "$T/blobpol/tiny"
cp "$T/ext/tiny/model.safetensors" "$T/ext/tiny/config.json" "$T/blobpol/tiny/"
cp "$T/blob.bin" "$T/blobpol/tiny/tokenizer.json"
HT_SAVED=$HT; HT=$H
write_ext "$T/blobpol/blob.yaml" it-blob
HT=$HT_SAVED
as alpha experiment propose "$T/blobpol/blob.yaml" --no-upload >/dev/null 2>&1 || fail "propose the blob's policy"
as alpha artifact put "$T/blob.bin" >"$T/put1.out" 2>"$T/put1.err" || { cat "$T/put1.err"; fail "put"; }
grep -q "^$H  200000 bytes  $T/blob.bin: stored$" "$T/put1.out" || fail "put said: $(cat "$T/put1.out")"
cmp -s "$T/blob.bin" "$T/coord/artifacts/$H" || fail "the store does not hold the file under its hash"
as beta artifact put "$T/blob.bin" >"$T/put2.out" 2>/dev/null || fail "second put"
grep -q ": already held$" "$T/put2.out" || fail "second put said: $(cat "$T/put2.out")"
note "put: stored, then already held"

as beta artifact get "$H" -o "$T/got.bin" >"$T/get.out" 2>&1 || { cat "$T/get.out"; fail "get"; }
cmp -s "$T/blob.bin" "$T/got.bin" || fail "get fetched other bytes"
[ ! -e "$T/got.bin.part" ] || fail "get left its .part"
head -c 70000 "$T/blob.bin" >"$T/resume.bin.part"         # a download cut off earlier
as beta artifact get "$H" -o "$T/resume.bin" >"$T/resume.out" 2>&1 || { cat "$T/resume.out"; fail "resumed get"; }
grep -q "resuming after the 70000 bytes" "$T/resume.out" || fail "get did not resume: $(cat "$T/resume.out")"
cmp -s "$T/blob.bin" "$T/resume.bin" || fail "the resumed file differs"
head -c 70000 /dev/zero >"$T/bad.bin.part"                 # a .part that is not a prefix
if as beta artifact get "$H" -o "$T/bad.bin" >"$T/bad.out" 2>&1; then fail "a corrupt .part was accepted"; fi
grep -q "hash to .*not $H; removed" "$T/bad.out" || fail "corrupt .part: $(cat "$T/bad.out")"
[ ! -e "$T/bad.bin" ] && [ ! -e "$T/bad.bin.part" ] || fail "a corrupt download left a file"
as beta artifact get "$H" -o "$T/bad.bin" >/dev/null 2>&1 && cmp -s "$T/blob.bin" "$T/bad.bin" ||
    fail "get after a corrupt .part"
U=$(printf 'ab%.0s' $(seq 32))
if as beta artifact get "$U" -o "$T/none.bin" >"$T/none.out" 2>&1; then fail "an unknown hash was served"; fi
grep -q "NOT_FOUND.*holds no pinned file $U" "$T/none.out" || fail "unknown hash: $(cat "$T/none.out")"
[ ! -e "$T/none.bin" ] && [ ! -e "$T/none.bin.part" ] || fail "a failed get left a file"
note "get: whole, resumed, corrupt .part refused, unknown hash named"

# --- refused uploads leave nothing ------------------------------------------------------
before=$(store_files)
head -c $((CAP + 1)) /dev/urandom >"$T/big.bin"
if as alpha artifact put "$T/big.bin" >"$T/big.out" 2>&1; then fail "a file over the cap was stored"; fi
grep -q "RESOURCE_EXHAUSTED.*over the coordinator's limit .*--max-artifact-bytes" "$T/big.out" ||
    fail "over the cap: $(cat "$T/big.out")"
head -c 1000 /dev/urandom >"$T/m.bin"
if as mallory artifact put "$T/m.bin" >"$T/m.out" 2>&1; then fail "a non-member uploaded"; fi
grep -q "PERMISSION_DENIED" "$T/m.out" || fail "non-member: $(cat "$T/m.out")"
[ "$(store_files)" = "$before" ] || fail "a refused upload left something: $(store_files)"
note "refused uploads (over the cap, non-member) leave nothing"

# --- propose uploads the policy's files -----------------------------------------------------
mkdir -p "$T/ext2/tiny"
cp "$T/ext/tiny/model.safetensors" "$T/ext/tiny/config.json" "$T/ext2/tiny/"
printf '{"version": "1.0", "model": {"type": "WordLevel"}}' >"$T/ext2/tiny/tokenizer.json"
HT=$(b2 "$T/ext2/tiny/tokenizer.json")
write_ext "$T/ext2/ext2.yaml" it-ext-two
as alpha experiment propose "$T/ext2/ext2.yaml" >"$T/prop2.out" 2>&1 || { cat "$T/prop2.out"; fail "propose"; }
grep -q "^$HI  [0-9]* bytes  model.init (tiny/model.safetensors): already held$" "$T/prop2.out" &&
grep -q "^$HC  [0-9]* bytes  model.config (tiny/config.json): already held$" "$T/prop2.out" &&
grep -q "^$HT  [0-9]* bytes  model.tokenizer (tiny/tokenizer.json): stored$" "$T/prop2.out" &&
grep -q "^proposal [0-9a-f]\{64\}$" "$T/prop2.out" || fail "propose said: $(cat "$T/prop2.out")"
[ "$(grep -n "^proposal " "$T/prop2.out" | cut -d: -f1)" -lt "$(grep -n "model.init (tiny" "$T/prop2.out" | cut -d: -f1)" ] &&
grep -q "^uploading the pinned files now that the proposal is filed" "$T/prop2.out" ||
    fail "propose did not file the proposal before uploading: $(cat "$T/prop2.out")"
cmp -s "$T/ext2/tiny/tokenizer.json" "$T/coord/artifacts/$HT" || fail "propose did not upload the tokenizer"
# A file next to the policy that is not the pinned one: nothing uploaded, nothing proposed.
mkdir -p "$T/ext3/tiny"
cp "$T/ext2/tiny/"* "$T/ext3/tiny/"
write_ext "$T/ext3/ext3.yaml" it-ext-three
printf '{"version": "2.0"}' >"$T/ext3/tiny/tokenizer.json"
size=$(grep -c "" <(store_files))
if as alpha experiment propose "$T/ext3/ext3.yaml" >"$T/prop3.out" 2>&1; then fail "a mismatching file was proposed"; fi
grep -q "model.tokenizer (tiny/tokenizer.json): $T/ext3/tiny/tokenizer.json has BLAKE2b-256 .*the policy pins $HT; nothing uploaded" "$T/prop3.out" ||
    fail "mismatch: $(cat "$T/prop3.out")"
grep -q "^proposal " "$T/prop3.out" && fail "a proposal was made"
[ "$(grep -c "" <(store_files))" = "$size" ] || fail "the mismatching file reached the store"
note "propose files the proposal, then uploads the pinned files (a line each) and refuses a file that is not the pinned one"
# A restart resumes the external experiment from its named-tensor checkpoint.
PORT=$(cat "$T/port")
restart_coordinator 0 coordinator-1
for _ in $(seq 100); do grep -q "resumed experiment $EXP at round 1" "$T/logs/coordinator.log" && break; sleep 0.1; done
grep -q "resumed experiment $EXP at round 1 of 2 with 0 accepted update(s); base model ${MH:0:16}" "$T/logs/coordinator.log" ||
    fail "the restart did not resume the external experiment from its checkpoint"
status_json | python3 -c 'import json,sys; s=json.load(sys.stdin); assert s["model_hash"] == sys.argv[1] and s["state"] == "running", s' "$MH" ||
    fail "status after the restart"
note "a restart resumes it from its checkpoint (loaded by its layout, hash checked)"
echo "PASS artifacts"
