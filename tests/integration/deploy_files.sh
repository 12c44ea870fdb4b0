#!/usr/bin/env bash
# The deployment files (issue 16 item 4) and scripts/gpu-check.sh's paths that need no GPU:
#  - the Dockerfiles start from Debian 12 and install only through scripts/deps.sh's sets
#    (no package list of their own), and deps.sh's runtime set holds the package of every
#    library the built programs load; its build set provides the Makefile's pkg-config
#    modules;
#  - docker/compose.yaml: healthchecks on every service (workers: --check-health), the GPU
#    worker's device reservation; `docker compose config` (or docker-compose) where the
#    docker CLI has it, else SKIP that part;
#  - deploy/systemd: `systemd-analyze verify` of both units where it exists (else SKIP
#    that part), and their hardening settings;
#  - aulac-worker --check-health against a real worker;
#  - scripts/gpu-check.sh without a GPU (exit 3 at once, saying so) and --dry-run.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

skips=()
deps_list() { scripts/deps.sh --list "$1"; }

note "deps.sh: the sets"
for s in build core-tests test runtime all cuda-build cuda-runtime; do
    [ "$(deps_list $s | wc -l)" -gt 0 ] || fail "deps.sh --list $s is empty"
done
# (lists are read whole before grep: grep -q leaving early would break the pipe)
all=$(deps_list all)
for s in build test runtime; do
    for p in $(deps_list $s); do
        grep -qx "$p" <<<"$all" || fail "deps.sh --list all lacks $p of the $s set"
    done
done
rc=0; scripts/deps.sh --list nonsense >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "deps.sh --list of an unknown set exited $rc, expected 2"
rc=0; scripts/deps.sh --bogus >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "deps.sh --bogus exited $rc, expected 2"
cuda124=$(AULAC_CUDA_VERSION=12.4 scripts/deps.sh --list cuda-runtime)
grep -qx 'libcublas-12-4' <<<"$cuda124" || fail "deps.sh does not follow AULAC_CUDA_VERSION"

note "Dockerfiles: Debian 12, packages only through scripts/deps.sh"
# check_dockerfile FILE BUILD_SETS RUNTIME_SETS: every FROM is debian:12-slim; nothing
# installs packages but deps.sh; the build stage runs deps.sh with BUILD_SETS, the last
# stage with RUNTIME_SETS (each a space-separated list of flags).
check_dockerfile() {
    local f=$1 want_build=$2 want_run=$3
    [ -f "$f" ] || fail "$f is missing"
    python3 - "$f" "$want_build" "$want_run" <<'PY' || fail "$f"
import re, shlex, sys
path, want_build, want_run = sys.argv[1], set(sys.argv[2].split()), set(sys.argv[3].split())
text = open(path).read().replace("\\\n", " ")
stages, cur = [], None
for line in text.splitlines():
    s = line.strip()
    if not s or s.startswith("#"):
        continue
    word = s.split()[0].upper()
    if word == "FROM":
        image = s.split()[1]
        if image != "debian:12-slim":
            sys.exit(f"{path}: stage from {image}, not debian:12-slim")
        cur = {"name": s.split()[3] if len(s.split()) > 3 else "", "runs": []}
        stages.append(cur)
    elif word == "RUN":
        if cur is None:
            sys.exit(f"{path}: RUN before FROM")
        cur["runs"].append(s[3:].strip())
if len(stages) < 2:
    sys.exit(f"{path}: expected a build stage and a runtime stage, found {len(stages)}")
def deps_flags(stage):
    flags = set()
    for r in stage["runs"]:
        if re.search(r"\b(apt-get|apt|dpkg)\s+(-\S+\s+)*(install|-i)\b", r):
            sys.exit(f"{path}: installs packages itself ({r[:80]}...): use scripts/deps.sh")
        for cmd in re.split(r"&&|;|\|\|", r):
            w = shlex.split(cmd)
            if w and w[0].endswith("deps.sh"):
                flags |= {x for x in w[1:] if x.startswith("--")}
    return flags
build = next((s for s in stages if s["name"] == "build"), None)
if build is None:
    sys.exit(f"{path}: no stage named build")
got_b, got_r = deps_flags(build), deps_flags(stages[-1])
for st in stages:
    deps_flags(st)
if not want_build <= got_b:
    sys.exit(f"{path}: the build stage runs deps.sh with {sorted(got_b)}, needs {sorted(want_build)}")
if not want_run <= got_r:
    sys.exit(f"{path}: the runtime stage runs deps.sh with {sorted(got_r)}, needs {sorted(want_run)}")
print(f"{path}: debian:12-slim, deps.sh {' '.join(sorted(got_b))} / {' '.join(sorted(got_r))}")
PY
}
check_dockerfile docker/Dockerfile.coordinator "--build" "--runtime"
check_dockerfile docker/Dockerfile.worker "--build" "--runtime"
check_dockerfile docker/Dockerfile.worker-cuda "--build --cuda-build --nvidia-repo" \
    "--runtime --cuda-runtime --nvidia-repo"
grep -q '^ARG CUDA_VERSION=' docker/Dockerfile.worker-cuda || fail "Dockerfile.worker-cuda has no CUDA_VERSION build arg"
for p in .git 'build-*' '**/.venv' '**/__pycache__' alliance; do
    grep -qxF "$p" .dockerignore || fail ".dockerignore does not exclude $p"
done

note "deps.sh --list runtime holds every library the programs load"
base_pkgs="libc6 libgcc-s1 libstdc++6"
runtime=$(deps_list runtime; deps_list cuda-runtime)
for prog in aulac-coordinator aulac-worker aulac; do
    for lib in $(objdump -p "$BIN/$prog" | awk '/NEEDED/ { print $2 }'); do
        # the dynamic loader (libc6): ldd lists it by path, without "=>"
        case $lib in ld-linux*.so*) continue ;; esac
        path=$(ldd "$BIN/$prog" | awk -v l="$lib" '$1 == l { print $3 }')
        [ -n "$path" ] || fail "$prog: $lib is not found (ldd)"
        pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null || dpkg -S "$path" 2>/dev/null || true)
        pkg=${pkg%%:*}
        case $lib in libcudart*|libcublas*|libnccl*)
            # CUDA builds: from NVIDIA's packages (or a toolkit installed without dpkg)
            [ -z "$pkg" ] && { note "$prog: $lib from $path (not a Debian package)"; continue; } ;;
        esac
        [ -n "$pkg" ] || fail "$prog: no Debian package holds $lib ($path)"
        case " $base_pkgs " in *" $pkg "*) continue ;; esac
        grep -qx "$pkg" <<<"$runtime" \
            || fail "$prog loads $lib from package $pkg, which scripts/deps.sh --list runtime lacks"
    done
done
note "and its build set provides the Makefile's pkg-config modules"
build_set=$(deps_list build)
for mod in $(sed -n 's/^PKGS *:= *//p' Makefile); do
    pc=$(pkg-config --variable=pcfiledir "$mod" 2>/dev/null)/$mod.pc
    [ -f "$pc" ] || fail "pkg-config module $mod not found"
    pkg=$(dpkg -S "$(readlink -f "$pc")" 2>/dev/null || dpkg -S "$pc" 2>/dev/null || true)
    pkg=${pkg%%:*}
    [ -n "$pkg" ] || fail "no package holds $pc"
    grep -qx "$pkg" <<<"$build_set" && continue
    # one level of Depends (libgnutls28-dev comes with libmicrohttpd-dev)
    found=0
    for b in $build_set; do
        d=$(dpkg-query -W -f='${Depends}\n' "$b" 2>/dev/null | tr ',' '\n' | sed 's/^ *//; s/[ :].*//')
        grep -qx "$pkg" <<<"$d" && { found=1; break; }
    done
    [ $found -eq 1 ] || fail "pkg-config module $mod comes from $pkg, neither in deps.sh's build set nor a dependency of it"
done

note "docker/compose.yaml"
python3 - docker/compose.yaml <<'PY' || fail "compose.yaml checks"
import os, sys, yaml
path = sys.argv[1]
c = yaml.safe_load(open(path))
svc = c["services"]
here = os.path.dirname(path)
for name, s in svc.items():
    b = s.get("build", {})
    df = os.path.join(here, b.get("context", "."), b.get("dockerfile", "Dockerfile"))
    assert os.path.isfile(df), f"{name}: {df} is missing"
    hc = s.get("healthcheck", {}).get("test")
    assert hc, f"service {name} has no healthcheck"
    if "worker" in b.get("dockerfile", ""):
        assert hc[:3] == ["CMD", "aulac-worker", "--check-health"], f"{name}: {hc}"
        st = s["command"][s["command"].index("--state-dir") + 1]
        assert hc[hc.index("--state-dir") + 1] == st, f"{name}: checks another state dir"
gpu = [n for n, s in svc.items() if s.get("build", {}).get("dockerfile", "").endswith("worker-cuda")]
assert gpu, "no service builds docker/Dockerfile.worker-cuda"
for n in gpu:
    s = svc[n]
    devs = s["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devs), devs
    assert "--gpus" in s["command"], f"{n} does not pass --gpus to the worker"
    assert "gpu" in s.get("profiles", []), f"{n} is not behind a profile: compose up would need a GPU"
print(f"{len(svc)} services with healthchecks; GPU service(s) {gpu} reserve an nvidia GPU")
PY
if docker compose version >/dev/null 2>&1; then
    docker compose -f docker/compose.yaml --profile gpu config -q || fail "docker compose config"
    note "docker compose config: valid"
elif command -v docker-compose >/dev/null 2>&1; then
    docker-compose -f docker/compose.yaml --profile gpu config -q || fail "docker-compose config"
    note "docker-compose config ($(docker-compose version --short 2>/dev/null)): valid"
else
    echo "SKIP (compose config): neither 'docker compose' nor docker-compose is installed"
    skips+=(compose)
fi

note "deploy/systemd"
for u in deploy/systemd/aulac-coordinator.service 'deploy/systemd/aulac-worker@.service'; do
    for k in 'User=aulac' 'ProtectSystem=strict' 'PrivateTmp=yes' 'NoNewPrivileges=yes' \
             'ReadWritePaths=' 'EnvironmentFile=' 'Restart=on-failure' 'StateDirectory='; do
        grep -q "^$k" "$u" || fail "$u lacks $k"
    done
done
grep -q '^u aulac ' deploy/systemd/aulac.sysusers.conf || fail "no sysusers entry for aulac"
if command -v systemd-analyze >/dev/null 2>&1; then
    mkdir -p "$T/units"
    # (the units name /usr/local/bin; verify checks that the binary exists: use the build's)
    for u in deploy/systemd/*.service; do
        sed "s|/usr/local/bin/|$BIN/|g" "$u" >"$T/units/$(basename "$u")"
    done
    rc=0
    systemd-analyze verify "$T/units/aulac-coordinator.service" "$T/units/aulac-worker@fpt.service" \
        >"$T/logs/verify.log" 2>&1 || rc=$?
    # (unknown keys and bad values are warnings with exit 0: any output fails too)
    if [ $rc -ne 0 ] || grep -q "$T/units" "$T/logs/verify.log"; then
        cat "$T/logs/verify.log" >&2
        fail "systemd-analyze verify (rc $rc)"
    fi
    note "systemd-analyze verify: both units pass"
else
    echo "SKIP (systemd-analyze verify): systemd-analyze is not installed"
    skips+=(systemd)
fi

note "aulac-worker --check-health against a real worker"
make_corpora
"$BIN/aulac" keygen --id alpha --dir "$T/keys" >/dev/null
rc=0; "$BIN/aulac-worker" --check-health --state-dir "$T/state/alpha" >"$T/logs/h0.log" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "--check-health with no worker exited $rc, expected 1"
grep -q "cannot read $T/state/alpha/health" "$T/logs/h0.log" || fail "no clear reason: $(cat "$T/logs/h0.log")"
rc=0; "$BIN/aulac-worker" --check-health >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "--check-health without --state-dir exited $rc, expected 2"
rc=0; "$BIN/aulac-worker" --check-health --state-dir "$T" --health-max-age 5 >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "--health-max-age 5 exited $rc, expected 2 (at least 30)"
# a worker whose coordinator is not there: away, but not for long
start_bg worker-alpha "$BIN/aulac-worker" --coordinator 127.0.0.1:1 --member alpha \
    --key "$T/keys/alpha.key" --data "$T/corpus/alpha" --state-dir "$T/state/alpha" --insecure
wpid=$LAST_PID
for _ in $(seq 100); do [ -s "$T/state/alpha/health" ] && break; sleep 0.1; done
sleep 0.5
"$BIN/aulac-worker" --check-health --state-dir "$T/state/alpha" >"$T/logs/h1.log" 2>&1 \
    || fail "a running worker is unhealthy: $(cat "$T/logs/h1.log")"
grep -q "healthy: pid $wpid, coordinator away" "$T/logs/h1.log" || fail "unexpected: $(cat "$T/logs/h1.log")"
note "$(cat "$T/logs/h1.log")"
kill -TERM "$wpid"; wait_pid "$wpid" 20 || true
rc=0; "$BIN/aulac-worker" --check-health --state-dir "$T/state/alpha" >"$T/logs/h2.log" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "--check-health after the worker stopped exited $rc, expected 1"
grep -q "stopped" "$T/logs/h2.log" || fail "unexpected: $(cat "$T/logs/h2.log")"
note "after SIGTERM: $(cat "$T/logs/h2.log")"

note "scripts/gpu-check.sh without a GPU, and --dry-run"
mkdir -p "$T/fake"
printf '#!/bin/sh\nexit 9\n' >"$T/fake/smi-broken"
printf '#!/bin/sh\n[ "$1" = -L ] && echo "GPU 0: NVIDIA H200 (UUID: GPU-0)"\nexit 0\n' >"$T/fake/smi-one"
printf '#!/bin/sh\n[ "$1" = -L ] && printf "GPU 0: NVIDIA H200 (UUID: GPU-0)\\nGPU 1: NVIDIA H200 (UUID: GPU-1)\\n"\nexit 0\n' >"$T/fake/smi-two"
chmod +x "$T/fake"/*
for smi in "$T/fake/absent-nvidia-smi" "$T/fake/smi-broken"; do
    # (quick by construction: it asks nvidia-smi before anything else and builds nothing;
    # the 30 s limit only keeps a hang from stalling the suite)
    rc=0; AULAC_NVIDIA_SMI=$smi BUILD="$T/gpu-build" timeout 30 scripts/gpu-check.sh \
        --out "$T/gpu-check.txt" >"$T/logs/gc.log" 2>&1 || rc=$?
    [ $rc -eq 3 ] || fail "gpu-check with $(basename "$smi") exited $rc, expected 3: $(cat "$T/logs/gc.log")"
    grep -q "no NVIDIA GPU on this machine" "$T/logs/gc.log" || fail "gpu-check did not say there is no GPU"
    grep -q "no NVIDIA GPU on this machine" "$T/gpu-check.txt" || fail "gpu-check did not write its file"
    [ ! -e "$T/gpu-build" ] || fail "gpu-check built something without a GPU"
done
note "$(grep -m1 'no NVIDIA GPU' "$T/logs/gc.log")"
AULAC_NVIDIA_SMI="$T/fake/smi-one" scripts/gpu-check.sh --dry-run --out "$T/dry1.txt" >"$T/logs/dry1.log" 2>&1 \
    || fail "gpu-check --dry-run failed: $(cat "$T/logs/dry1.log")"
for step in deps build test_model_cuda test_codec_cuda multi-node 'bench/train 124m' bench/codec federation; do
    grep -qE "^  $step +limit" "$T/logs/dry1.log" || fail "the plan lacks $step"
done
grep -q 'multi-node.*SKIP: needs >= 2 GPUs' "$T/logs/dry1.log" || fail "one GPU: the plan does not skip multi-node"
grep -q 'bench/train --config 124m --no-torch' "$T/logs/dry1.log" || fail "the plan does not run bench/train 124m"
AULAC_NVIDIA_SMI="$T/fake/smi-two" scripts/gpu-check.sh --dry-run --no-deps --out "$T/dry2.txt" >"$T/logs/dry2.log" 2>&1 \
    || fail "gpu-check --dry-run (two GPUs) failed"
grep -q 'SKIP' "$T/logs/dry2.log" && fail "two GPUs: the plan still skips a step"
grep -qE '^  deps ' "$T/logs/dry2.log" && fail "--no-deps: the plan still runs deps.sh"
rc=0; scripts/gpu-check.sh --bogus >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "gpu-check --bogus exited $rc, expected 2"

note "ok${skips[*]:+ (skipped: ${skips[*]})}"
