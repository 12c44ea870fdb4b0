#!/usr/bin/env bash
# A demo-like alliance over TLS on loopback, with mutual TLS, made with aulac tls:
#   - two workers train two rounds through a coordinator that requires client
#     certificates; every request is also signed with the member's key;
#   - aulac ledger reads and verifies its ledger with a member's client certificate,
#     and cannot connect without one;
#   - plaintext needs --insecure (and warns); without a certificate and without
#     --insecure the coordinator refuses to start;
#   - a worker that trusts another CA cannot connect; one without a client
#     certificate is refused by mutual TLS; one whose key file others may read
#     refuses to start.
# Exit 0 on success. Uses $BUILD (default build), a temp dir, an ephemeral port.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
bin=$BUILD
T=$(mktemp -d "${TMPDIR:-/tmp}/aulac-trust-tls.XXXXXX")
pids=()
cleanup() {
    local rc=$?
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    if [ $rc -ne 0 ]; then
        echo "trust_tls_demo: FAILED (exit $rc)" >&2
        for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -8 "$f" >&2; }; done
    fi
    [ -n "${KEEP:-}" ] || rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
fail() { echo "trust_tls_demo: $*" >&2; exit 1; }
step() { echo "== $*"; }
for p in aulac aulac-coordinator aulac-worker; do
    [ -x "$bin/$p" ] || fail "$bin/$p is missing: build first"
done
command -v openssl >/dev/null || fail "the openssl program is needed"

step "keys, roster, policy, corpora"
mkdir -p "$T/keys"
for m in coordinator fpt vnpt; do "$bin/aulac" keygen --id "$m" --dir "$T/keys" >/dev/null; done
for m in fpt vnpt; do
    "$bin/aulac" roster add --roster "$T/roster.yaml" --alliance tls-test \
        --pub "$T/keys/$m.pub" --organization "Org $m" >/dev/null
done
# fpt operates the coordinator; its proposal (--policy) is 1 of the 2 members, the quorum
printf 'charter:\n  proposers: [member]\n' >>"$T/roster.yaml"
sed -e 's/^  members: \[fpt, vnpt, hust\]/  members: [fpt, vnpt]/' \
    -e 's/^  rounds: .*/  rounds: 2/' -e 's/^  local_steps: .*/  local_steps: 5/' \
    -e '/^contribution:/,$d' policies/examples/demo.yaml >"$T/policy.yaml"
python3 - "$T" <<'PY'
import os, random, sys
words = "mot hai ba bon nam sau bay tam chin muoi hoc may mo hinh ngon ngu du lieu".split()
for seed, m in enumerate(["fpt", "vnpt"]):
    random.seed(seed)
    os.makedirs(os.path.join(sys.argv[1], "corpus", m), exist_ok=True)
    with open(os.path.join(sys.argv[1], "corpus", m, "text.txt"), "w") as f:
        for _ in range(6000):
            f.write(" ".join(random.choice(words) for _ in range(12)) + ".\n")
PY

step "aulac tls: the alliance CA, the coordinator's and the members' certificates"
"$bin/aulac" tls --help | grep -q "aulac tls init" || fail "aulac tls --help"
"$bin/aulac" tls init --dir "$T/tls" --name "tls test" >"$T/tls.log"
"$bin/aulac" tls issue --ca-dir "$T/tls" --name coordinator --server >>"$T/tls.log"
for m in fpt vnpt; do "$bin/aulac" tls issue --ca-dir "$T/tls" --name "$m" --client >>"$T/tls.log"; done
"$bin/aulac" tls init --dir "$T/other" --name "other" >>"$T/tls.log"
[ "$(stat -c %a "$T/tls/ca.key")" = 600 ] || fail "ca.key is not 0600"
[ "$(stat -c %a "$T/tls/fpt.key")" = 600 ] || fail "fpt.key is not 0600"
if "$bin/aulac" tls init --dir "$T/tls" >"$T/out" 2>&1; then fail "tls init replaced a CA"; fi
grep -q "already holds a CA" "$T/out" || fail "tls init: $(cat "$T/out")"

step "plaintext needs --insecure"
set +e
"$bin/aulac-coordinator" --data-dir "$T/nodata" --key "$T/keys/coordinator.key" \
    --roster "$T/roster.yaml" --policy "$T/policy.yaml" --operator-key "$T/keys/fpt.key" \
    >"$T/out" 2>&1
rc=$?
set -e
[ $rc = 2 ] && grep -q -- "--insecure" "$T/out" || fail "a coordinator without TLS started (rc $rc)"

step "coordinator with mutual TLS"
"$bin/aulac-coordinator" --data-dir "$T/data" --key "$T/keys/coordinator.key" \
    --roster "$T/roster.yaml" --policy "$T/policy.yaml" --operator-key "$T/keys/fpt.key" --listen 127.0.0.1:0 \
    --port-file "$T/port" --tls-cert "$T/tls/coordinator.pem" --tls-key "$T/tls/coordinator.key" \
    --tls-client-ca "$T/tls/ca.pem" --require-client-cert >"$T/coordinator.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || fail "the coordinator did not start"
addr="127.0.0.1:$(cat "$T/port")"
grep -q "with TLS" "$T/coordinator.log" || fail "the coordinator does not say TLS"

worker() {   # member log extra-args...
    local m=$1 log=$2
    shift 2
    timeout 120 "$bin/aulac-worker" --coordinator "$addr" --member "$m" --key "$T/keys/$m.key" \
        --data "$T/corpus/$m" --state-dir "$T/state-$m-$log" --threads 1 --eval-windows 2 \
        --connect-timeout 3 --exit-when-idle "$@" >"$T/$log.log" 2>&1
}

step "refused: another CA, no client certificate, a world-readable key"
if worker fpt wrongca --tls-ca "$T/other/ca.pem" --tls-cert "$T/tls/fpt.pem" \
    --tls-key "$T/tls/fpt.key"; then fail "a worker trusting another CA connected"; fi
grep -q "cannot reach the coordinator" "$T/wrongca.log" || fail "wrong CA: $(tail -2 "$T/wrongca.log")"
if worker fpt nocert --tls-ca "$T/tls/ca.pem"; then fail "a worker without a client cert connected"; fi
grep -q "cannot reach the coordinator" "$T/nocert.log" || fail "no cert: $(tail -2 "$T/nocert.log")"
cp "$T/keys/fpt.key" "$T/fpt-open.key"
chmod 644 "$T/fpt-open.key"
if timeout 30 "$bin/aulac-worker" --coordinator "$addr" --member fpt --key "$T/fpt-open.key" \
    --data "$T/corpus/fpt" --state-dir "$T/state-open" --tls-ca "$T/tls/ca.pem" \
    >"$T/openkey.log" 2>&1; then fail "a worker used a world-readable key"; fi
grep -q "chmod 600" "$T/openkey.log" || fail "open key: $(tail -2 "$T/openkey.log")"

step "two members train two rounds over mutual TLS"
wp=()
for m in fpt vnpt; do
    worker "$m" "$m" --tls-ca "$T/tls/ca.pem" --tls-cert "$T/tls/$m.pem" --tls-key "$T/tls/$m.key" &
    wp+=($!); pids+=($!)
done
for p in "${wp[@]}"; do wait "$p" || fail "a worker failed"; done
grep -q "experiment .* finished after 2 rounds" "$T/coordinator.log" || fail "the experiment did not finish"
"$bin/aulac" status --coordinator "$addr" --tls-ca "$T/tls/ca.pem" --tls-cert "$T/tls/fpt.pem" \
    --tls-key "$T/tls/fpt.key" --json >"$T/status.json"
grep -q '"state":"finished"' "$T/status.json" || fail "status: $(cat "$T/status.json")"
if grep -q "rejected update" "$T/coordinator.log"; then fail "an update was rejected"; fi
"$bin/aulac" ledger verify --data-dir "$T/data" >/dev/null || fail "ledger verify"

step "aulac ledger over mutual TLS: with the member's client certificate, not without"
"$bin/aulac" ledger verify --coordinator "$addr" --tls-ca "$T/tls/ca.pem" \
    --tls-cert "$T/tls/fpt.pem" --tls-key "$T/tls/fpt.key" >"$T/ledger-mtls.log" 2>&1 ||
    fail "ledger verify over mutual TLS: $(tail -2 "$T/ledger-mtls.log")"
"$bin/aulac" ledger checkpoint --coordinator "$addr" --tls-ca "$T/tls/ca.pem" \
    --tls-cert "$T/tls/vnpt.pem" --tls-key "$T/tls/vnpt.key" --json >"$T/ckpt.json" ||
    fail "ledger checkpoint over mutual TLS"
grep -q '"verified":true' "$T/ckpt.json" || fail "checkpoint: $(cat "$T/ckpt.json")"
if "$bin/aulac" ledger verify --coordinator "$addr" --tls-ca "$T/tls/ca.pem" \
    >"$T/ledger-nocert.log" 2>&1; then fail "ledger verify without a client cert connected"; fi
grep -q "cannot reach the coordinator" "$T/ledger-nocert.log" ||
    fail "ledger without cert: $(tail -2 "$T/ledger-nocert.log")"
set +e
"$bin/aulac" ledger verify --coordinator "$addr" --tls-ca "$T/tls/ca.pem" \
    --tls-cert "$T/tls/fpt.pem" >"$T/out" 2>&1
rc=$?
set -e
[ $rc = 2 ] && grep -q -- "--tls-cert and --tls-key go together" "$T/out" ||
    fail "ledger --tls-cert without --tls-key: rc $rc, $(cat "$T/out")"

step "plaintext with --insecure warns"
"$bin/aulac-coordinator" --data-dir "$T/data2" --key "$T/keys/coordinator.key" \
    --roster "$T/roster.yaml" --policy "$T/policy.yaml" --operator-key "$T/keys/fpt.key" --listen 127.0.0.1:0 \
    --port-file "$T/port2" --insecure >"$T/insecure.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$T/port2" ] && break; sleep 0.1; done
grep -q "without TLS" "$T/insecure.log" || fail "no plaintext warning"
echo "trust_tls_demo: ok"
