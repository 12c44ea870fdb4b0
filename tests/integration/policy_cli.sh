#!/usr/bin/env bash
# The policy command line: `aulac policy check` passes every shipped example policy
# (`aulac site check` every example site policy), and `aulac policy diff A B` prints
# the keys two policies set differently as "path: A -> B", nothing for the same policy
# written differently; exit 0 same, 1 different, 2 error.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

# want_run RC EXPECTED_STDOUT CMD...: CMD exits RC and prints exactly EXPECTED_STDOUT
want_run() {
    local want_rc=$1 want_out=$2 rc=0; shift 2
    "$@" >"$T/out" 2>"$T/err" || rc=$?
    [ "$rc" -eq "$want_rc" ] || { cat "$T/out" "$T/err" >&2; fail "$*: exit $rc, expected $want_rc"; }
    [ "$(cat "$T/out")" = "$want_out" ] || { diff <(echo "$want_out") "$T/out" >&2; fail "$*: output differs"; }
}

n=0
for f in policies/examples/*.yaml; do
    case $(basename "$f") in
    site-*) "$BIN/aulac" site check "$f" >"$T/out" 2>&1 || { cat "$T/out"; fail "site check $f"; } ;;
    *) "$BIN/aulac" policy check "$f" >"$T/out" 2>&1 || { cat "$T/out"; fail "policy check $f"; } ;;
    esac
    n=$((n + 1))
done
[ "$n" -ge 5 ] || fail "only $n example files"
note "$n example files pass aulac policy check / site check"

# contribution: the evaluation set a policy pins, checked with --eval-sets as the
# coordinator checks a proposal (credit/evalset.h)
for _ in 1 2 3 4 5; do printf 'Xin ch\xc3\xa0o th\xe1\xba\xbf gi\xe1\xbb\x9bi\n'; done >"$T/vi.txt"   # > one window of 65 bytes
h=$(b2sum -l 256 "$T/vi.txt" | cut -d' ' -f1)
# the demo's recipe without its own contribution section (its set is Firefox's text)
sed '/^contribution:/,$d' policies/examples/demo.yaml >"$T/unscored.yaml"
{ cat "$T/unscored.yaml"
  printf 'contribution:\n  measures: [tokens, loo]\n  credit_weights: {loo: 3, tokens: 1}\n'
  printf '  evaluation_set: {name: vi.txt, blake2b: "%s", windows: 4}\n' "$h"; } >"$T/scored.yaml"
"$BIN/aulac" policy check "$T/scored.yaml" --eval-sets "$T" >"$T/out" 2>&1 ||
    { cat "$T/out"; fail "policy check --eval-sets with the pinned file"; }
grep -qx "contribution: tokens, loo (weight 3); accepted payloads kept 30 days after the experiment" "$T/out" &&
    grep -qx "evaluation set: found in --eval-sets with the pinned hash" "$T/out" ||
    { cat "$T/out"; fail "policy check --eval-sets: contribution lines"; }
"$BIN/aulac" policy check "$T/scored.yaml" >/dev/null || fail "policy check without --eval-sets"
want_run 1 "" "$BIN/aulac" policy check "$T/scored.yaml" --eval-sets "$T/none"
grep -q "^$T/scored.yaml: contribution.evaluation_set: " "$T/err" || { cat "$T/err"; fail "missing eval set not named"; }
head -c 40 "$T/vi.txt" >"$T/short/vi.txt" 2>/dev/null || { mkdir -p "$T/short"; head -c 40 "$T/vi.txt" >"$T/short/vi.txt"; }
hs=$(b2sum -l 256 "$T/short/vi.txt" | cut -d' ' -f1)
sed "s/$h/$hs/" "$T/scored.yaml" >"$T/short.yaml"
want_run 1 "" "$BIN/aulac" policy check "$T/short.yaml" --eval-sets "$T/short"
grep -q "has 40 bytes, fewer than one window of training.seq_len + 1 = 65 bytes" "$T/err" ||
    { cat "$T/err"; fail "a set shorter than one window not refused"; }
echo changed >>"$T/vi.txt"
want_run 1 "" "$BIN/aulac" policy check --eval-sets "$T" "$T/scored.yaml"
grep -q "^$T/scored.yaml: contribution.evaluation_set: .*$h" "$T/err" || { cat "$T/err"; fail "altered eval set not named"; }
"$BIN/aulac" policy check "$T/unscored.yaml" --eval-sets "$T/none" | grep -qx \
    "evaluation set: none needed (neither loo nor shapley is measured)" || fail "no eval set needed"
note "policy check --eval-sets: the pinned evaluation set found, a missing or altered one refused"

# family external: the pinned files next to the policy, hashed and checked (the init's
# tensors against the llama config), the model line; a hash mismatch and a tensor set
# that differs from the config refused with the reason; --no-files reads nothing
mkdir -p "$T/ext/tiny"
python3 - "$T/ext/tiny" <<'PY'
import json, struct, sys
d = sys.argv[1]
V, H, KV, I = 16, 8, 4, 12
ts = [("model.embed_tokens.weight", [V, H]), ("model.layers.0.input_layernorm.weight", [H]),
      ("model.layers.0.post_attention_layernorm.weight", [H]),
      ("model.layers.0.self_attn.q_proj.weight", [H, H]), ("model.layers.0.self_attn.k_proj.weight", [KV, H]),
      ("model.layers.0.self_attn.v_proj.weight", [KV, H]), ("model.layers.0.self_attn.o_proj.weight", [H, H]),
      ("model.layers.0.mlp.gate_proj.weight", [I, H]), ("model.layers.0.mlp.up_proj.weight", [I, H]),
      ("model.layers.0.mlp.down_proj.weight", [H, I]), ("model.norm.weight", [H]), ("lm_head.weight", [V, H])]
def write(path, tensors):
    hdr, data = {}, b""
    for name, shape in tensors:
        n = 1
        for x in shape:
            n *= x
        b = b"\x80\x3f" * n                      # BF16 1.0
        hdr[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)
write(d + "/model.safetensors", ts)
write(d + "/tied.safetensors", ts[:-1])          # no lm_head: not the config's tensors
json.dump({"model_type": "llama", "vocab_size": V, "hidden_size": H, "intermediate_size": I,
           "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
           "tie_word_embeddings": False}, open(d + "/config.json", "w"))
json.dump({"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}},
          open(d + "/tokenizer.json", "w"))
PY
pin() { b2sum -l 256 "$T/ext/tiny/$1" | cut -d' ' -f1; }
ext_policy() {   # INIT-FILE INIT-HASH
    printf 'schema: 1\nmetadata: {name: tiny}\nmodel:\n  family: external\n'
    printf '  init: {file: tiny/%s, blake2b: "%s"}\n' "$1" "$2"
    printf '  config: {file: tiny/config.json, blake2b: "%s"}\n' "$(pin config.json)"
    printf '  tokenizer: {file: tiny/tokenizer.json, blake2b: "%s"}\n' "$(pin tokenizer.json)"
    printf 'training: {rounds: 2, seq_len: 32}\n'
}
ext_policy model.safetensors "$(pin model.safetensors)" >"$T/ext/tiny.yaml"
"$BIN/aulac" policy check "$T/ext/tiny.yaml" >"$T/out" 2>&1 || { cat "$T/out"; fail "policy check external"; }
grep -qx "model: external, 12 tensors, 760 parameters (BF16), init $(pin model.safetensors | cut -c1-8)..., config llama ok, tokenizer ok" "$T/out" ||
    { cat "$T/out"; fail "policy check external: model line"; }
(cd "$T/ext" && "$BIN/aulac" policy check tiny.yaml) >/dev/null || fail "policy check external from its directory"
bad=$(pin model.safetensors | tr 0-9a-f 1-9a-f0)
ext_policy model.safetensors "$bad" >"$T/ext/bad.yaml"
want_run 1 "" "$BIN/aulac" policy check "$T/ext/bad.yaml"
grep -qx "$T/ext/bad.yaml: model.init: tiny/model.safetensors has BLAKE2b-256 $(pin model.safetensors), the policy pins $bad" "$T/err" ||
    { cat "$T/err"; fail "policy check: init hash mismatch not refused with the reason"; }
"$BIN/aulac" policy check --no-files "$T/ext/bad.yaml" | grep -q "^model: external (size: the init file's, not read)" ||
    fail "policy check --no-files"
ext_policy tied.safetensors "$(pin tied.safetensors)" >"$T/ext/tied.yaml"
want_run 1 "" "$BIN/aulac" policy check "$T/ext/tied.yaml"
grep -q "^$T/ext/tied.yaml: model.init: the tensors of tiny/tied.safetensors are not those model.config tiny/config.json describes (model_type llama): .*lm_head.weight" "$T/err" ||
    { cat "$T/err"; fail "policy check: tensor set differing from the config not refused"; }
rm "$T/ext/tiny/tokenizer.json"
want_run 1 "" "$BIN/aulac" policy check "$T/ext/tiny.yaml"
grep -q "^$T/ext/tiny.yaml: model.tokenizer: $T/ext/tiny/tokenizer.json: No such file" "$T/err" ||
    { cat "$T/err"; fail "policy check: missing tokenizer not named"; }
note "policy check of an external model: pinned files hashed and checked next to the policy, mismatches refused"
# a builtin site sits the external model out with the reason; a plug-in site takes it
printf 'schema: 1\n' >"$T/ext/site-builtin.yaml"
want_run 1 "$T/ext/site-builtin.yaml: ok
governance.auto_vote: never (this member votes by hand: aulac vote)
trainer: builtin (trains family gpt2 without a tokenizer only; other experiments are sat out)" \
    "$BIN/aulac" site check "$T/ext/site-builtin.yaml" --policy "$T/ext/bad.yaml"
grep -qx "$T/ext/site-builtin.yaml: refuses experiment tiny: its model is of family external, and this site's trainer is builtin: the built-in trainer trains only GPT-2 on bytes; set trainer.kind: command with a plug-in (worker/TRAINER.md)" "$T/err" ||
    { cat "$T/err"; fail "site check: builtin site did not refuse the external model"; }
printf 'schema: 1\ntrainer:\n  kind: command\n  command: [python3, plug.py]\n  env: {HF_HOME: /srv/hf}\n' >"$T/ext/site-plugin.yaml"
"$BIN/aulac" site check "$T/ext/site-plugin.yaml" --policy "$T/ext/bad.yaml" >"$T/out" 2>&1 ||
    { cat "$T/out"; fail "site check: plug-in site refused the external model"; }
grep -qx "trainer: command python3 plug.py (mode oneshot, timeout 3600 s, workdir <state dir>/trainer, 1 environment variable)" "$T/out" ||
    { cat "$T/out"; fail "site check: trainer line"; }
note "site check: a builtin site refuses the external model, a plug-in site takes it"

# the aggregation rule and, with privacy, epsilon after all rounds at delta and the round
# after which the budget ends the experiment (privacy/rdp.h, q = 1)
D=policies/examples/gpt2-355m-robust-dp.yaml
"$BIN/aulac" policy check "$D" >"$T/out" 2>&1 || { cat "$T/out"; fail "policy check $D"; }
for line in \
    "aggregation: clip, each update scaled to L2 norm <= 1; one over 20 refused; weighting uniform" \
    "contribution: tokens, rounds, bytes; accepted payloads kept 30 days after the experiment" \
    "privacy: DP-FedAvg, each update clipped to L2 norm 1, noise multiplier 5 (noise std 5 on the round's sum), delta 1e-05" \
    "epsilon: 34.13 after all 600 rounds at delta 1e-05" \
    "target epsilon 10: the budget ends the experiment after round 89 of 600 (epsilon 9.991; round 90 would reach 10.06)"; do
    grep -qxF "$line" "$T/out" || { cat "$T/out"; fail "policy check $D: no line '$line'"; }
done
budget() {   # budget TARGET LINE: the target line policy check prints for TARGET
    sed "s/^  target_epsilon: 10.0 .*/  target_epsilon: $1/" "$D" >"$T/budget.yaml"
    "$BIN/aulac" policy check "$T/budget.yaml" >"$T/out" 2>&1 && grep -qxF "$2" "$T/out" ||
        { cat "$T/out"; fail "target_epsilon $1: no line '$2'"; }
}
budget 100 "target epsilon 100: not reached in the 600 rounds"
budget 1 "target epsilon 1: the budget ends the experiment after round 1 of 600 (epsilon 0.7945; round 2 would reach 1.158)"
budget 0.5 "target epsilon 0.5: the budget ends the experiment before round 1 (round 1 alone would spend 0.7945)"
sed -e '/^  target_epsilon:/d' -e 's/^  noise_multiplier: 5.0 .*/  noise_multiplier: 0/' "$D" >"$T/nonoise.yaml"
"$BIN/aulac" policy check "$T/nonoise.yaml" | grep -qxF \
    "epsilon: infinite (noise_multiplier 0: clipping only, no privacy guarantee)" || fail "no noise: epsilon"
"$BIN/aulac" policy check policies/examples/demo.yaml | grep -qxF \
    "privacy: none (updates are neither clipped nor noised)" || fail "demo: privacy line"
{ sed '/^aggregation:/,/^$/d' policies/examples/gpt2-124m-diloco.yaml
  printf 'aggregation: {rule: trimmed_mean, trim: 0.25}\n'; } >"$T/trimmed.yaml"
"$BIN/aulac" policy check "$T/trimmed.yaml" | grep -qxF \
    "aggregation: trimmed_mean, trim 0.25 (with min_members 4: 1 value of each coordinate dropped at each end); weighting uniform" ||
    { "$BIN/aulac" policy check "$T/trimmed.yaml"; fail "trimmed_mean line"; }
{ sed '/^aggregation:/,/^$/d' policies/examples/gpt2-124m-diloco.yaml
  printf 'aggregation: {rule: multi_krum, byzantine: 1, norm_bound: 50}\n'; } >"$T/krum.yaml"
want_run 1 "" "$BIN/aulac" policy check "$T/krum.yaml"   # min_members 4 < 2f + 3 = 5
grep -q "aggregation.byzantine: multi_krum with byzantine 1 needs 2f + 3 = 5 updates a round, and participation.min_members is 4" "$T/err" ||
    { cat "$T/err"; fail "multi_krum with min_members 4 not refused"; }
sed -i 's/^  min_members: 4 *$/  min_members: 5/' "$T/krum.yaml"
"$BIN/aulac" policy check "$T/krum.yaml" >"$T/out" 2>&1 && grep -qxF \
    "aggregation: multi_krum, byzantine 1 (a round needs 2f + 3 = 5 updates), n - f of the n that report averaged; weighting tokens; an update of L2 norm over 50 refused" "$T/out" ||
    { cat "$T/out"; fail "multi_krum with min_members 5"; }
note "policy check: aggregation rule, epsilon 34.13 after 600 rounds, the budget ends gpt2-355m-robust-dp after round 89"

A=policies/examples/demo.yaml
# the same policy written differently: no comments, another spelling of a number, the
# members in another order, a default spelled out
grep -v '^ *#' "$A" | sed 's/ *#.*$//; s/^    lr: 3.0e-3$/    lr: .003/;
    s/^  members: \[fpt, vnpt, hust\]$/  members: [hust, fpt, vnpt]/;
    s/^    beta1: 0.9$/    beta1: 0.9\n    eps: 1e-8/' >"$T/same.yaml"
[ "$(diff "$A" "$T/same.yaml" | grep -c '^>')" -ge 4 ] || fail "same.yaml is not rewritten"
hash=$("$BIN/aulac" policy check "$A" | sed -n 's/^hash: //p')
want_run 0 "$A and $T/same.yaml are the same policy (hash $hash)" \
    "$BIN/aulac" policy diff "$A" "$T/same.yaml"

sed 's/^  rounds: 12$/  rounds: 24/; s/^  members: \[fpt, vnpt, hust\]$/  members: all/' "$A" >"$T/b.yaml"
want_run 1 "participation.members: fpt,hust,vnpt -> *
training.rounds: 12 -> 24" "$BIN/aulac" policy diff "$A" "$T/b.yaml"
want_run 1 "participation.members: * -> fpt,hust,vnpt
training.rounds: 24 -> 12" "$BIN/aulac" policy diff "$T/b.yaml" "$A"

# errors: a policy that does not load names file:line:col, usage errors say so
printf 'privacy:\n  clip: 1\n' >>"$T/b.yaml"
want_run 2 "" "$BIN/aulac" policy diff "$A" "$T/b.yaml"
grep -q "b.yaml:[0-9]*:3: privacy.noise_multiplier: required key is missing" "$T/err" || { cat "$T/err"; fail "diff: no located error"; }
want_run 1 "" "$BIN/aulac" policy check "$T/b.yaml"
grep -q "b.yaml:[0-9]*:3: privacy.noise_multiplier: required key is missing" "$T/err" || { cat "$T/err"; fail "check: no located error"; }
# every error of a file, one per line in file order, not only the first
sed 's/^  n_layer: 3$/  n_layers: 3/; s/^  rounds: 12$/  rounds: twelve/' "$A" >"$T/three.yaml"
printf 'privacy:\n  clip: 1\n' >>"$T/three.yaml"
want_run 1 "" "$BIN/aulac" policy check "$T/three.yaml"
last=$(wc -l <"$A")
[ "$(cat "$T/err")" = "$T/three.yaml:18:3: model.n_layers: unknown key (did you mean \"n_layer\"?)
$T/three.yaml:28:11: training.rounds: expected a positive integer, got \"twelve\"
$T/three.yaml:$((last + 2)):3: privacy.noise_multiplier: required key is missing" ] ||
    { cat "$T/err" >&2; fail "check: not the 3 errors of three.yaml in file order"; }
# the example of policies/README.md ("Every error in one pass") prints what it shows
awk '/For this `bad.yaml`:$/ {f=1; next} f && /^```yaml/ {y=1; next} y && /^```/ {exit} y' \
    policies/README.md >"$T/bad.yaml"
awk '/^\$ aulac policy check bad.yaml/ {f=1; next} f && /^\$ / {exit} f' policies/README.md >"$T/want"
[ -s "$T/bad.yaml" ] && [ "$(wc -l <"$T/want")" -ge 5 ] || fail "README example not found"
(cd "$T" && "$BIN/aulac" policy check bad.yaml) >"$T/out" 2>&1 && fail "README example passed"
diff "$T/want" "$T/out" >&2 || fail "aulac policy check does not print what policies/README.md shows"
printf 'schema: 1\nmember: FPT\nlimits: {max_gpus: 4}\n' >"$T/site.yaml"
want_run 1 "" "$BIN/aulac" site check "$T/site.yaml"
[ "$(grep -c "^$T/site.yaml:[23]:" "$T/err")" -eq 2 ] || { cat "$T/err" >&2; fail "site check: not 2 errors"; }
note "policy check prints the 3 errors of a file with 3, site check the 2 of a site policy"
want_run 2 "" "$BIN/aulac" policy diff "$A" "$T/missing.yaml"
grep -q "missing.yaml: cannot read" "$T/err" || fail "diff: missing file not named"
want_run 2 "" "$BIN/aulac" policy diff "$A"
grep -q "expected two policies, A and B" "$T/err" || fail "diff: one argument not refused"
want_run 2 "" "$BIN/aulac" policy diff --bogus "$A" "$A"
want_run 2 "" "$BIN/aulac" policy frobnicate "$A"
grep -q "unknown subcommand 'frobnicate'" "$T/err" || fail "unknown subcommand not named"
"$BIN/aulac" policy diff --help | grep -q '^usage: aulac policy diff A B' || fail "policy diff --help"
"$BIN/aulac" policy --help | grep -q 'aulac policy diff A B' || fail "policy --help lists diff"
note "policy diff: same 0, different 1 (path: A -> B), errors 2"
echo "policy_cli: ok"
