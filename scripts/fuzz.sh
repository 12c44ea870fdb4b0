#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz/ with clang (ASan + UBSan) and runs each
# for a while on its seed corpus.
#
#   scripts/fuzz.sh [seconds]     seconds per target (default $AULAC_FUZZ_SECONDS or 20)
#
# The targets build and run $AULAC_FUZZ_JOBS at a time (default: the number of cores);
# each run is one single-threaded libFuzzer process, so each target still gets its
# seconds of a core. AULAC_FUZZ_STEP=build only builds the targets and their seed
# corpora, AULAC_FUZZ_STEP=run only runs them (built before; scripts/test.sh builds them
# in the background while other tests run).
#
# Targets: fuzz_codec_decode (codec_decode_accumulate on hostile payloads),
# fuzz_policy (policy and site YAML), fuzz_ledger_entry (ledger entry_decode) and
# fuzz_checkpoint_note (signed checkpoint notes) and fuzz_export_read (an exported
# entries.jsonl: ledger/export_read.c) and fuzz_json (common/json.c, the reader of a
# plug-in's metrics and lines and of config.json) and fuzz_model_chunk (pb_split_bulk: a
# received ModelChunk over hostile gRPC slices, against protobuf-c; needs the build's
# generated messages). Objects, corpora and crash files go under
# $BUILD/fuzz (default build/fuzz). Exits non-zero when a target finds a crash, leak or
# sanitizer report; the reproducer is left in $BUILD/fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-${AULAC_FUZZ_SECONDS:-20}}
jobs=${AULAC_FUZZ_JOBS:-$(nproc)}
step=${AULAC_FUZZ_STEP:-all}
case $step in all|build|run) ;; *) echo "fuzz: AULAC_FUZZ_STEP is all, build or run, not '$step'" >&2; exit 2 ;; esac
BUILD=${BUILD:-build}
out="$BUILD/fuzz"
CLANG=${CLANG:-clang}
if ! command -v "$CLANG" >/dev/null; then
    echo "fuzz: $CLANG not found: install clang to build the libFuzzer targets (skipped)"
    exit 0
fi
mkdir -p "$out/crashes"

flags=(-std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I.)
pkg_cflags=$(pkg-config --cflags libfyaml libsodium libzstd 2>/dev/null || true)
pkg_libs=$(pkg-config --libs libfyaml libsodium libzstd 2>/dev/null || echo "-lfyaml -lsodium -lzstd")

# at_most N: waits until fewer than N background jobs run.
at_most() { while [ "$(jobs -rp | wc -l)" -ge "$1" ]; do wait -n || true; done; }

# build NAME SOURCE...: compiles NAME with the flags in bflags in the background ($jobs
# at a time); its compiler output goes to $out/NAME.build.log, and $out/NAME.built says
# it succeeded.
bflags=("${flags[@]}")
build() {
    local name=$1; shift
    echo "fuzz: building $name"
    rm -f "$out/$name.built"
    at_most "$jobs"
    # shellcheck disable=SC2086
    { "$CLANG" "${bflags[@]}" $pkg_cflags "$@" -o "$out/$name" $pkg_libs -lm \
        >"$out/$name.build.log" 2>&1 && touch "$out/$name.built"; } &
}
targets=(fuzz_codec_decode fuzz_policy fuzz_ledger_entry fuzz_checkpoint_note fuzz_export_read
         fuzz_json fuzz_model_chunk)
ledger_src=(ledger/entry.c ledger/checkpoint.c ledger/merkle.c ledger/errors.c crypto/digest.c
            crypto/keys.c common/hex.c common/fileio.c common/log.c common/why.c)

if [ "$step" != run ]; then
    build fuzz_codec_decode tests/fuzz/fuzz_codec_decode.c codec/codec.c codec/reader.c common/fileio.c \
        common/why.c
    build fuzz_policy tests/fuzz/fuzz_policy.c policies/policy.c policies/site.c \
        policies/schema.c policies/yaml_tree.c privacy/rdp.c codec/codec.c common/fileio.c common/why.c
    build fuzz_ledger_entry tests/fuzz/fuzz_ledger_entry.c "${ledger_src[@]}"
    build fuzz_checkpoint_note tests/fuzz/fuzz_checkpoint_note.c "${ledger_src[@]}"
    build fuzz_export_read tests/fuzz/fuzz_export_read.c "${ledger_src[@]}" ledger/export_read.c \
        ledger/history.c ledger/ledger.c crypto/envelope.c crypto/motion.c crypto/proposal.c \
        $(pkg-config --libs lmdb 2>/dev/null || echo -llmdb)
    build fuzz_json tests/fuzz/fuzz_json.c common/json.c
    # pb_split_bulk over gRPC slices: the proto/ sources it needs, the generated messages
    # of the build (make all first), gRPC and protobuf-c.
    build fuzz_model_chunk tests/fuzz/fuzz_model_chunk.c proto/pb.c proto/rpc_common.c \
        proto/rpc_client.c proto/rpc_server.c proto/rpc_admission.c common/log.c \
        common/fileio.c common/timeutil.c "$BUILD/gen/proto/aulac.pb-c.c" "-I$BUILD/gen" \
        $(pkg-config --cflags --libs grpc libprotobuf-c 2>/dev/null || echo "-lgrpc -lgpr -lprotobuf-c")

    rm -f "$out/seeds.made"
    # Seed corpora (generators built without the fuzzer's main): valid payloads of every
    # codec mode; the example policies.
    bflags=(-std=gnu11 -O1 -I.)
    mkdir -p "$out/corpus/codec" "$out/corpus/policy"
    build make_codec_seeds tests/fuzz/make_codec_seeds.c codec/codec.c common/fileio.c \
        common/why.c
    cp policies/examples/*.yaml "$out/corpus/policy/"
    # Ledger: one entry of every type; signed checkpoint notes.
    mkdir -p "$out/corpus/ledger_entry" "$out/corpus/checkpoint_note"
    build make_ledger_seeds tests/fuzz/make_ledger_seeds.c "${ledger_src[@]}"
    wait
fi
for name in "${targets[@]}" make_codec_seeds make_ledger_seeds; do
    if [ ! -e "$out/$name.built" ]; then
        echo "fuzz: building $name failed:"; cat "$out/$name.build.log"
        exit 1
    fi
done
if [ "$step" != run ]; then
    "$out/make_codec_seeds" "$out/corpus/codec"
    "$out/make_ledger_seeds" "$out/corpus/ledger_entry" "$out/corpus/checkpoint_note"
    mkdir -p "$out/corpus/export" "$out/corpus/json"
    cp tests/fuzz/export_seeds/* "$out/corpus/export/"
    cp tests/fuzz/json_seeds/* "$out/corpus/json/"
    mkdir -p "$out/corpus/model_chunk"
    cp tests/fuzz/model_chunk_seeds/* "$out/corpus/model_chunk/"
    touch "$out/seeds.made"
fi
[ -e "$out/seeds.made" ] || { echo "fuzz: no seed corpora in $out/corpus (AULAC_FUZZ_STEP=build first)"; exit 1; }
[ "$step" != build ] || exit 0

# run NAME CORPUS ARGS...: fuzzes NAME for $seconds in the background ($jobs at a time);
# its exit status goes to $out/NAME.status, reported by report in the order started.
run() {
    local name=$1 corpus=$2; shift 2
    echo "fuzz: running $name for ${seconds}s"
    at_most "$jobs"
    { rc=0
      ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
          "$out/$name" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
          -rss_limit_mb=2048 -artifact_prefix="$out/crashes/$name-" "$@" "$corpus" \
          >"$out/$name.log" 2>&1 || rc=$?
      echo $rc >"$out/$name.status"; } &
}
status=0
report() {
    local name=$1
    if [ "$(cat "$out/$name.status" 2>/dev/null)" != 0 ]; then
        echo "fuzz: $name FAILED (log: $out/$name.log; reproducers in $out/crashes/)"
        grep -aE "ERROR|SUMMARY|==[0-9]+==|artifact" "$out/$name.log" | head -20
        status=1
    else
        grep -aE "stat::number_of_executed_units|cov: " "$out/$name.log" | tail -2
        echo "fuzz: $name ok"
    fi
}

for name in "${targets[@]}"; do rm -f "$out/$name.status"; done
run fuzz_codec_decode "$out/corpus/codec" -max_len=65536
run fuzz_policy "$out/corpus/policy" -max_len=16384 -dict=tests/fuzz/policy.dict
run fuzz_ledger_entry "$out/corpus/ledger_entry" -max_len=65536
run fuzz_checkpoint_note "$out/corpus/checkpoint_note" -max_len=8192
run fuzz_export_read "$out/corpus/export" -max_len=16384 -dict=tests/fuzz/export.dict
run fuzz_json "$out/corpus/json" -max_len=16384 -dict=tests/fuzz/json.dict
run fuzz_model_chunk "$out/corpus/model_chunk" -max_len=8192
wait
for name in "${targets[@]}"; do report "$name"; done
exit $status
