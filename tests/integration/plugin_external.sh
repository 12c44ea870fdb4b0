#!/usr/bin/env bash
# An external (named-tensor) model trained through a plug-in, end to end: the worker
# fetches the pinned init, config and tokenizer from the coordinator (GetArtifact) into
# <state>/artifacts/<hex>, re-hashing them (a corrupted copy is fetched again, a partial
# download resumes), sizes its replica by the init's layout, hands the plug-in
# plan.json + in/{model.safetensors, config.json, tokenizer.json}, uploads the update
# of its delta.safetensors, and keeps the final model as a from_pretrained directory
# whose v2 hash is the coordinator's final model.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

b2() { python3 -c 'import hashlib,sys; print(hashlib.blake2b(open(sys.argv[1],"rb").read(), digest_size=32).hexdigest())' "$1"; }

make_corpora
make_alliance alpha beta
mkdir -p "$T/tiny"
python3 - "$T/tiny" <<'PY'
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
open(d + "/tokenizer.json", "w").write(json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0}}}))
PY
HI=$(b2 "$T/tiny/model.safetensors"); HC=$(b2 "$T/tiny/config.json"); HT=$(b2 "$T/tiny/tokenizer.json")
cat >"$T/policy.yaml" <<YAML
schema: 1
metadata: { name: it-ext-plugin, proposer: alpha }
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
  uplink: { method: topk, block_size: 16, k_per_block: 16, quant: fp32, zstd_level: 1, error_feedback: false }
  downlink: { method: none, quant: fp32 }
participation: { members: [beta], min_members: 1, round_deadline_s: 60, grace_s: 1 }
YAML
"$BIN/aulac" policy check "$T/policy.yaml" >"$T/check.out" 2>&1 || { cat "$T/check.out"; fail "policy check"; }

cat >"$T/site-beta.yaml" <<YAML
schema: 1
member: beta
limits: { max_parameters: 1000 }
trainer:
  kind: command
  command: [python3, $ROOT/tests/support/fake_trainer.py]
  env: { FAKE_TRAINER_MODE: good_delta, FAKE_TRAINER_LOG: $T/fake.log, FAKE_TRAINER_SAVE: $T/seen }
YAML

start_coordinator
"$BIN/aulac" artifact put "$T/tiny/model.safetensors" "$T/tiny/config.json" "$T/tiny/tokenizer.json" \
    --coordinator "$ADDR" --member alpha --key "$T/keys/alpha.key" --insecure >"$T/put.out" 2>&1 ||
    { cat "$T/put.out"; fail "artifact put"; }
# A corrupted copy of the init in beta's store, and half of the tokenizer's download.
mkdir -p "$T/state/beta/artifacts"
echo "not the init" >"$T/state/beta/artifacts/$HI"
head -c 20 "$T/tiny/tokenizer.json" >"$T/state/beta/artifacts/$HT.part"

# (alpha, not a member of it, sits it out; it is there to witness the ledger)
start_worker alpha
ALPHA=$LAST_PID
start_worker beta "$T/corpus/beta" --site "$T/site-beta.yaml"
wait_pid "$LAST_PID" 120 || fail "worker beta did not finish"
wait_pid "$ALPHA" 60 || fail "worker alpha did not finish"
B="$T/logs/worker-beta.log"
grep -q "model.init: .*does not hash to its name any more; fetching it again" "$B" ||
    fail "the corrupted init copy was not noticed"
grep -q "model.tokenizer: resuming the download of ${HT:0:16} at 20 bytes" "$B" ||
    fail "the tokenizer's download did not resume"
for h in "$HI" "$HC" "$HT"; do
    [ "$(b2 "$T/state/beta/artifacts/$h")" = "$h" ] || fail "artifacts/$h does not hash to its name"
done
grep -q "model of 3 tensors, 34 parameters (external); trained by the site's command trainer" "$B" ||
    fail "the replica is not the init's layout"
grep -q "round 0 built from the pinned init here" "$B" || fail "round 0 was not built from the init"
sed '/round 1\/2: training/q' "$B" | grep -q "downloaded," &&
    fail "round 1 downloaded the model it had built from the init"
grep -q "round 1: update accepted" "$B" && grep -q "round 2: update accepted" "$B" ||
    fail "beta's updates were not accepted"
note "beta: pinned files fetched (corrupt copy replaced, partial download resumed), 2 rounds accepted"

W="$T/seen"   # what the plug-in was given in round 2 (the worker empties its workdir after)
[ -z "$(ls -A "$T/state/beta/trainer/state")" ] || fail "the plug-in's state_dir was not emptied after the experiment"
[ -s "$W/model.safetensors" ] || fail "the plug-in got no input model"
cmp -s "$W/config.json" "$T/tiny/config.json" || fail "in/config.json is not the pinned config"
cmp -s "$W/tokenizer.json" "$T/tiny/tokenizer.json" || fail "in/tokenizer.json is not the pinned tokenizer"
F="$T/state/beta/final"
cmp -s "$F/config.json" "$T/tiny/config.json" && cmp -s "$F/tokenizer.json" "$T/tiny/tokenizer.json" ||
    fail "the final model directory lacks the pinned config/tokenizer"
status_json >"$T/status.json"
python3 - "$W/plan.json" "$F/model.safetensors" "$T/status.json" <<'PY' || fail "plan.json / final model"
import hashlib, json, struct, sys
plan = json.load(open(sys.argv[1]))
m = plan["model"]
assert m["family"] == "external" and m["gpt2"] is None and m["n_params"] == 34, m
assert plan["round"] == 2 and plan["total_rounds"] == 2 and plan["member"] == "beta", plan
assert plan["training"]["optimizer_step"] == 2, plan["training"]   # round 1's 2 steps
assert plan["limits"]["max_tokens"] == 2 * 2 * 16, plan["limits"]
b = open(sys.argv[2], "rb").read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n]); data = b[8 + n:]
h.pop("__metadata__", None)
msg = bytearray(b"aulac/model/v2\0") + struct.pack('>I', len(h))
flat = bytearray()
for name in sorted(h, key=lambda x: x.encode()):
    t = h[name]
    assert t["dtype"] == "F32", t
    msg += struct.pack('>H', len(name)) + name.encode() + struct.pack('>B', len(t["shape"]))
    msg += b"".join(struct.pack('>Q', d) for d in t["shape"])
    flat += data[t["data_offsets"][0]:t["data_offsets"][1]]
got = hashlib.blake2b(bytes(msg + flat), digest_size=32).hexdigest()
s = json.load(open(sys.argv[3]))
assert got == s["model_hash"], (got, s["model_hash"])
print("-- final model %s... = the coordinator's (v2 hash)" % got[:16])
PY

# limits.max_parameters below the init's 34 parameters: the worker sits the experiment out.
kill "$COORD_PID" && wait "$COORD_PID" 2>/dev/null || true
# (a new alliance ledger: the members' state goes, beta's pinned files stay)
rm -rf "$T/coord" "$T/state/alpha"
find "$T/state/beta" -mindepth 1 -maxdepth 1 ! -name artifacts -exec rm -rf {} +
sed -i 's/max_parameters: 1000/max_parameters: 30/' "$T/site-beta.yaml"
start_coordinator
"$BIN/aulac" artifact put "$T/tiny/model.safetensors" "$T/tiny/config.json" "$T/tiny/tokenizer.json" \
    --coordinator "$ADDR" --member alpha --key "$T/keys/alpha.key" --insecure >/dev/null 2>&1 || fail "artifact put"
start_worker alpha
ALPHA=$LAST_PID
start_worker beta "$T/corpus/beta" --site "$T/site-beta.yaml" --max-rounds 1
BETA=$LAST_PID
B="$T/logs/worker-beta.log"
for _ in $(seq 100); do grep -q "sitting experiment" "$B" && break; sleep 0.1; done
grep -q "its model has 34 parameters; this site's limits.max_parameters is 30" "$B" ||
    fail "max_parameters: no reason given"
grep -q "fetched the pinned file" "$B" && fail "the restarted worker fetched files it holds"
# SIGTERM: both stop at once (beta sits the experiment out in a GetTask long poll)
kill -TERM "$BETA" "$ALPHA" 2>/dev/null
for p in "$BETA" "$ALPHA"; do
    rc=0; wait_pid "$p" 10 || rc=$?
    [ $rc -ne 124 ] || fail "a worker still runs 10 s after SIGTERM"
done
note "limits.max_parameters 30 < 34: sat out with the reason; held pinned files reused"

# The same without the init held: counted from its header alone, the body never fetched.
rm -f "$T/state/beta/artifacts/$HI"
find "$T/state/beta" -mindepth 1 -maxdepth 1 ! -name artifacts -exec rm -rf {} +
: >"$B"
start_worker beta "$T/corpus/beta" --site "$T/site-beta.yaml" --max-rounds 1
BETA=$LAST_PID
for _ in $(seq 100); do grep -q "sitting experiment" "$B" && break; sleep 0.1; done
grep -q "model.init: its model has 34 parameters; this site's limits.max_parameters is 30 (counted from the init's header; its body was not downloaded)" "$B" ||
    fail "max_parameters from the header: $(grep -i "experiment" "$B" | tail -3)"
[ ! -e "$T/state/beta/artifacts/$HI" ] && [ ! -e "$T/state/beta/artifacts/$HI.part" ] ||
    fail "the init's body was downloaded"
kill -9 "$BETA" 2>/dev/null; wait "$BETA" 2>/dev/null || true

# limits.max_artifact_bytes below the init's size: refused, nothing kept.
sed -i 's/max_parameters: 30/max_parameters: 1000, max_artifact_bytes: 100/' "$T/site-beta.yaml"
find "$T/state/beta" -mindepth 1 -maxdepth 1 ! -name artifacts -exec rm -rf {} +
: >"$B"
start_worker beta "$T/corpus/beta" --site "$T/site-beta.yaml" --max-rounds 1
BETA=$LAST_PID
for _ in $(seq 100); do grep -q "sitting experiment" "$B" && break; sleep 0.1; done
grep -q "model.init: the pinned file ${HI:0:16}... is refused: the file has [0-9]* bytes, over this site's limits.max_artifact_bytes 100; nothing kept" "$B" ||
    fail "max_artifact_bytes: $(grep -i "experiment" "$B" | tail -3)"
[ ! -e "$T/state/beta/artifacts/$HI" ] && [ ! -e "$T/state/beta/artifacts/$HI.part" ] ||
    fail "a file over limits.max_artifact_bytes was kept"
kill -9 "$BETA" 2>/dev/null; wait "$BETA" 2>/dev/null || true
note "init over limits.max_parameters refused from its header alone; over limits.max_artifact_bytes refused"
note "ok"
