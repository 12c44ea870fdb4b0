#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz/ with clang (ASan + UBSan) and runs each
# for a while on its seed corpus.
#
#   scripts/fuzz.sh [seconds]     seconds per target (default $AULAC_FUZZ_SECONDS or 20)
#
# Targets: fuzz_codec_decode (codec_decode_accumulate on hostile payloads),
# fuzz_policy (policy and site YAML), fuzz_ledger_entry (ledger entry_decode) and
# fuzz_checkpoint_note (signed checkpoint notes) and fuzz_export_read (an exported
# entries.jsonl: ledger/export_read.c) and fuzz_json (common/json.c, the reader of a
# plug-in's metrics and lines and of config.json). Objects, corpora and crash files go under
# $BUILD/fuzz (default build/fuzz). Exits non-zero when a target finds a crash, leak or
# sanitizer report; the reproducer is left in $BUILD/fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-${AULAC_FUZZ_SECONDS:-20}}
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

build() {
    local name=$1; shift
    echo "fuzz: building $name"
    # shellcheck disable=SC2086
    "$CLANG" "${flags[@]}" $pkg_cflags "$@" -o "$out/$name" $pkg_libs -lm
}

build fuzz_codec_decode tests/fuzz/fuzz_codec_decode.c codec/codec.c codec/reader.c common/why.c
build fuzz_policy tests/fuzz/fuzz_policy.c policies/policy.c policies/site.c \
    policies/schema.c policies/yaml_tree.c privacy/rdp.c codec/codec.c common/fileio.c common/why.c
ledger_src=(ledger/entry.c ledger/checkpoint.c ledger/merkle.c ledger/errors.c crypto/digest.c
            crypto/keys.c common/hex.c common/fileio.c common/log.c common/why.c)
build fuzz_ledger_entry tests/fuzz/fuzz_ledger_entry.c "${ledger_src[@]}"
build fuzz_checkpoint_note tests/fuzz/fuzz_checkpoint_note.c "${ledger_src[@]}"
build fuzz_export_read tests/fuzz/fuzz_export_read.c "${ledger_src[@]}" ledger/export_read.c \
    ledger/history.c ledger/ledger.c crypto/envelope.c crypto/motion.c crypto/proposal.c \
    $(pkg-config --libs lmdb 2>/dev/null || echo -llmdb)
build fuzz_json tests/fuzz/fuzz_json.c common/json.c

# Seed corpora: valid payloads of every codec mode; the example policies.
mkdir -p "$out/corpus/codec" "$out/corpus/policy"
"$CLANG" -std=gnu11 -O1 -I. $pkg_cflags tests/fuzz/make_codec_seeds.c codec/codec.c common/why.c \
    -o "$out/make_codec_seeds" $pkg_libs -lm
"$out/make_codec_seeds" "$out/corpus/codec"
cp policies/examples/*.yaml "$out/corpus/policy/"
# Ledger: one entry of every type; signed checkpoint notes.
mkdir -p "$out/corpus/ledger_entry" "$out/corpus/checkpoint_note"
"$CLANG" -std=gnu11 -O1 -I. $pkg_cflags tests/fuzz/make_ledger_seeds.c "${ledger_src[@]}" \
    -o "$out/make_ledger_seeds" $pkg_libs -lm
"$out/make_ledger_seeds" "$out/corpus/ledger_entry" "$out/corpus/checkpoint_note"

status=0
run() {
    local name=$1 corpus=$2; shift 2
    echo "fuzz: running $name for ${seconds}s"
    if ! ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
         "$out/$name" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
         -rss_limit_mb=2048 -artifact_prefix="$out/crashes/$name-" "$@" "$corpus" \
         >"$out/$name.log" 2>&1; then
        echo "fuzz: $name FAILED (log: $out/$name.log; reproducers in $out/crashes/)"
        grep -aE "ERROR|SUMMARY|==[0-9]+==|artifact" "$out/$name.log" | head -20
        status=1
    else
        grep -aE "stat::number_of_executed_units|cov: " "$out/$name.log" | tail -2
        echo "fuzz: $name ok"
    fi
}

run fuzz_codec_decode "$out/corpus/codec" -max_len=65536
run fuzz_policy "$out/corpus/policy" -max_len=16384 -dict=tests/fuzz/policy.dict
run fuzz_ledger_entry "$out/corpus/ledger_entry" -max_len=65536
run fuzz_checkpoint_note "$out/corpus/checkpoint_note" -max_len=8192
mkdir -p "$out/corpus/export"
cp tests/fuzz/export_seeds/* "$out/corpus/export/"
run fuzz_export_read "$out/corpus/export" -max_len=16384 -dict=tests/fuzz/export.dict
mkdir -p "$out/corpus/json"
cp tests/fuzz/json_seeds/* "$out/corpus/json/"
run fuzz_json "$out/corpus/json" -max_len=16384 -dict=tests/fuzz/json.dict
exit $status
