# shellcheck shell=bash
# The demo alliance's set-up, shared by scripts/demo.sh and scripts/demo-torch.sh
# (sourced, never run). Three members, fpt, vnpt and hust (researcher: proposes),
# their keys and roster with a two-thirds charter, TLS on loopback, the coordinator,
# the workers, signed requests and the rounds' printout.
#
# The sourcing script sets DEMO (its name in messages), BUILD and RUN_DIR first, then
# calls alliance_setup_traps and alliance_check_programs. Variables this file sets and
# the functions use: bin, MEMBERS, ROLES, ORG, pids (every process started: stopped on
# exit), wpids (the workers), coord_tls, client_tls, member_tls (mutual TLS, per
# member), addr, coord_pid.

bin=$BUILD
MEMBERS=(fpt vnpt hust)
declare -A ROLES=([fpt]=member [vnpt]=member [hust]=member,researcher)
declare -A ORG=([fpt]="FPT Corporation" [vnpt]="VNPT" [hust]="Hanoi University of Science and Technology")
pids=()
wpids=()
coord_tls=(--insecure); client_tls=(--insecure)
declare -A member_tls

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

# Stops every process in pids on exit, failure or Ctrl-C.
alliance_cleanup() {
    local rc=$?
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    if [ $rc -ne 0 ]; then
        echo "$DEMO: failed (exit $rc); logs are in $RUN_DIR/logs" >&2
    fi
    exit $rc
}
alliance_setup_traps() {
    trap alliance_cleanup EXIT
    trap 'trap - INT TERM; echo; echo "$DEMO: interrupted"; exit 130' INT TERM
}

alliance_check_programs() {
    local p
    for p in aulac aulac-coordinator aulac-worker; do
        [ -x "$bin/$p" ] || { echo "$DEMO: $bin/$p is missing: run 'make' first" >&2; exit 1; }
    done
}

# The coordinator's and the members' keys, the roster and its charter: an experiment
# needs two thirds of the members; researchers propose.
alliance_keys_roster() {
    local m
    "$bin/aulac" keygen --id coordinator --dir "$RUN_DIR/keys" >/dev/null
    for m in "${MEMBERS[@]}"; do
        "$bin/aulac" keygen --id "$m" --dir "$RUN_DIR/keys" >/dev/null
        "$bin/aulac" roster add --roster "$RUN_DIR/roster.yaml" --alliance au-lac-demo \
            --pub "$RUN_DIR/keys/$m.pub" --organization "${ORG[$m]}" --roles "${ROLES[$m]}" >/dev/null
    done
    cat >>"$RUN_DIR/roster.yaml" <<'YAML'
charter:
  quorum: { roster: 0.66, experiments: 0.67, charter: 0.75 }
  proposers: [researcher]
  proposal_expiry_days: 7
YAML
}

# alliance_tls [quiet]: the alliance CA and the coordinator's certificate under
# $RUN_DIR/tls (aulac tls's words printed indented, or not with quiet), and
# coord_tls / client_tls for them. The caller skips it for INSECURE=1.
alliance_discard() { cat >/dev/null; }
alliance_tls() {
    local show=(sed 's/^/  /')
    [ "${1:-}" = quiet ] && show=(alliance_discard)
    "$bin/aulac" tls init --dir "$RUN_DIR/tls" --name "au-lac-demo" | "${show[@]}"
    "$bin/aulac" tls issue --ca-dir "$RUN_DIR/tls" --name coordinator --server \
        --dns localhost --ip 127.0.0.1 | "${show[@]}"
    coord_tls=(--tls-cert "$RUN_DIR/tls/coordinator.pem" --tls-key "$RUN_DIR/tls/coordinator.key")
    client_tls=(--tls-ca "$RUN_DIR/tls/ca.pem")
}

# alliance_start_coordinator ARGS...: the coordinator on a free loopback port with
# the keys, roster and TLS above (plus ARGS), logging to logs/coordinator.log; sets
# coord_pid and addr once it listens.
alliance_start_coordinator() {
    "$bin/aulac-coordinator" --data-dir "$RUN_DIR/coordinator" --key "$RUN_DIR/keys/coordinator.key" \
        --roster "$RUN_DIR/roster.yaml" "$@" \
        --listen 127.0.0.1:0 --port-file "$RUN_DIR/port" "${coord_tls[@]}" \
        >"$RUN_DIR/logs/coordinator.log" 2>&1 &
    pids+=($!)
    coord_pid=$!
    for _ in $(seq 100); do [ -s "$RUN_DIR/port" ] && break; sleep 0.1; done
    [ -s "$RUN_DIR/port" ] || { tail "$RUN_DIR/logs/coordinator.log"; echo "$DEMO: coordinator did not start" >&2; exit 1; }
    addr="127.0.0.1:$(cat "$RUN_DIR/port")"
}

# alliance_start_worker MEMBER ARGS...: MEMBER's worker on its corpus and state
# directory (plus ARGS), one thread, leaving once no experiment is left; logs to
# logs/MEMBER.log. Its pid is the last of wpids.
alliance_start_worker() {
    local m=$1; shift
    # shellcheck disable=SC2086  # member_tls holds words
    "$bin/aulac-worker" --coordinator "$addr" --member "$m" --key "$RUN_DIR/keys/$m.key" \
        --data "$RUN_DIR/corpus/$m" --state-dir "$RUN_DIR/state/$m" "${client_tls[@]:0:2}" \
        ${member_tls[$m]:-} --threads 1 --exit-when-idle "$@" \
        >"$RUN_DIR/logs/$m.log" 2>&1 &
    pids+=($!); wpids+=($!)
}

as() {   # as MEMBER aulac-args...: a signed request of that member
    local m=$1; shift
    # shellcheck disable=SC2086
    "$bin/aulac" "$@" --coordinator "$addr" --member "$m" --key "$RUN_DIR/keys/$m.key" \
        "${client_tls[@]:0:2}" ${member_tls[$m]:-}
}

# alliance_follow_rounds PATTERN [TICK]: prints the coordinator's log lines matching
# PATTERN as they come, calling the function TICK (when given) every half second, until
# every worker has left; then exits 1 when any worker failed, naming it.
alliance_follow_rounds() {
    local pattern=$1 tick=${2:-} seen=0 n alive p i fail=0
    while :; do
        alive=0
        for p in "${wpids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        n=$(grep -cE "$pattern" "$RUN_DIR/logs/coordinator.log" || true)
        if [ "$n" -gt "$seen" ]; then
            grep -E "$pattern" "$RUN_DIR/logs/coordinator.log" | sed -n "$((seen + 1)),${n}p" |
                sed 's/^[^ ]* coordinator [a-z]*: /  /'
            seen=$n
        fi
        [ $alive -eq 1 ] || break
        [ -z "$tick" ] || "$tick"
        sleep 0.5
    done
    for i in "${!wpids[@]}"; do
        if ! wait "${wpids[$i]}"; then
            echo "$DEMO: worker ${MEMBERS[$i]} failed; see $RUN_DIR/logs/${MEMBERS[$i]}.log" >&2
            tail -5 "$RUN_DIR/logs/${MEMBERS[$i]}.log" >&2
            fail=1
        fi
    done
    [ $fail -eq 0 ] || exit 1
}
