#!/usr/bin/env bash
# Bring your own trainer, end to end: three members (fpt, vnpt, hust) train a tiny
# Llama-architecture model for Vietnamese (policies/examples/llama-tiny.yaml: 1.8 M
# parameters, byte-level BPE tokenizer, pinned by hash) through a real coordinator on
# loopback, each worker training with PyTorch through the plug-in protocol
# (worker/plugins/torch_causal_lm.py in serve mode, worker/TRAINER.md). Then the final
# checkpoint directory is loaded with transformers' AutoModelForCausalLM.from_pretrained
# and AutoTokenizer.from_pretrained and generates Vietnamese text from a Vietnamese prompt.
#
#   scripts/demo-torch.sh           everything under demo-torch-run/ (RUN_DIR=... to move it)
#
# Environment:
#   REFERENCE_VENV   the torch venv (default build/reference-venv; created by
#                    scripts/torch-venv.sh when missing: PyPI access needed once)
#   BUILD            the build directory (default build; the programs must be built:
#                    `make demo-torch` builds them first)
#   CORPUS           a directory with fpt/, vnpt/ and hust/ corpora to use instead of
#                    scripts/demo-corpus.sh's (Vietnamese text from Debian packages)
#   ROUNDS, STEPS    override the policy's training.rounds and training.local_steps
#   PROMPT           the generation prompt (default "Việt Nam là")
#   INSECURE=1       plaintext gRPC on loopback instead of TLS
#
# Results, besides the printout: $RUN_DIR/losses.tsv (round, mean base-model validation
# loss over the members, each member's), $RUN_DIR/final-loss.tsv (the same for the final
# model), $RUN_DIR/checkpoint (the final model's directory), $RUN_DIR/sample.txt (the
# generated text, prompt included). Stops every process it started
# on exit, failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${BUILD:-build}
RUN_DIR=${RUN_DIR:-demo-torch-run}
POLICY=policies/examples/llama-tiny.yaml
PROMPT=${PROMPT:-Việt Nam là}
DEMO=demo-torch
# shellcheck source=scripts/lib/alliance.sh
. scripts/lib/alliance.sh

start=$(date +%s)
alliance_setup_traps
alliance_check_programs

say "PyTorch venv"
venv=$(scripts/torch-venv.sh)
venv=$(cd "$venv" && pwd)
py="$venv/bin/python"
"$py" -c 'import torch, transformers; print("  torch", torch.__version__, "transformers", transformers.__version__, "in '"$venv"'")'

rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"/{keys,logs,state}
RUN_DIR=$(cd "$RUN_DIR" && pwd)

if [ -n "${CORPUS:-}" ]; then
    say "private corpora ($CORPUS)"
    cp -r "$CORPUS" "$RUN_DIR/corpus"
else
    say "private corpora (Vietnamese text from Debian documentation packages)"
    scripts/demo-corpus.sh "$RUN_DIR/corpus" "$BUILD/demo-cache"
fi
for m in "${MEMBERS[@]}"; do
    [ -d "$RUN_DIR/corpus/$m" ] || { echo "demo-torch: no corpus for $m" >&2; exit 1; }
done

say "keys and roster"
alliance_keys_roster
echo "  fpt, vnpt, hust (researcher: proposes); an experiment needs two thirds of the votes"

say "the policy: llama-tiny (family external; init, config and tokenizer pinned by hash)"
# A copy next to its pinned files (policy files name them relative to their directory).
cp -r policies/examples/llama-tiny "$RUN_DIR/llama-tiny"
edits=(-e "s/^  rounds: \([0-9]*\)/  rounds: ${ROUNDS:-\1}/"
       -e "s/^  local_steps: \([0-9]*\)/  local_steps: ${STEPS:-\1}/")
sed "${edits[@]}" "$POLICY" >"$RUN_DIR/llama-tiny.yaml"
"$bin/aulac" policy check "$RUN_DIR/llama-tiny.yaml" | sed 's/^/  /'

# Every member's site policy: train with the torch plug-in, one process per experiment
# (serve mode: the model, AdamW state, tokenized corpus stay in memory across rounds).
for m in "${MEMBERS[@]}"; do
    cat >"$RUN_DIR/site-$m.yaml" <<YAML
schema: 1
member: $m
limits: { max_parameters: 10000000 }
trainer:
  kind: command
  mode: serve
  command: [$py, $ROOT/worker/plugins/torch_causal_lm.py, --threads, "1", --verbose]
  timeout_s: 600
  env: {OMP_NUM_THREADS: "1", TOKENIZERS_PARALLELISM: "false"}
YAML
done
echo "  site.yaml of each member: trainer kind command, mode serve, $(basename "$py") worker/plugins/torch_causal_lm.py"

[ "${INSECURE:-0}" = 1 ] || alliance_tls quiet

say "coordinator"
alliance_start_coordinator
echo "  listening on $addr (log: $RUN_DIR/logs/coordinator.log)"

say "workers (each trains through the torch plug-in)"
for m in "${MEMBERS[@]}"; do
    alliance_start_worker "$m" --site "$RUN_DIR/site-$m.yaml"
    echo "  $m: pid $!, corpus $RUN_DIR/corpus/$m (log: $RUN_DIR/logs/$m.log)"
done

say "proposal (uploads the pinned files) and votes"
out=$(as hust experiment propose "$RUN_DIR/llama-tiny.yaml" --reason "tiny Llama, torch plug-in") ||
    { echo "$out" >&2; exit 1; }
echo "$out" | sed 's/^/  /'
id=$(sed -n 's/^experiment \([^ ]*\) (policy.*/\1/p' <<<"$out")
[ -n "$id" ] || { echo "demo-torch: no experiment id in the proposal's answer" >&2; exit 1; }
for m in fpt vnpt; do
    as "$m" vote --proposal "$id" --yes >/dev/null
    echo "  $m votes yes"
done

say "rounds"
alliance_follow_rounds 'round [0-9]+ closed|rejected update|experiment .* (started|finished)|missing|queued'

say "validation loss of each round's base model on each member's held-out text"
"$bin/aulac" status --coordinator "$addr" "${client_tls[@]}" --experiment "$id" --json \
    >"$RUN_DIR/status.json"
python3 - "$RUN_DIR" "${MEMBERS[@]}" <<'PY'
import json, sys
run, members = sys.argv[1], sys.argv[2:]
s = json.load(open(run + "/status.json"))
rows = []
print("  %-8s %8s  %s" % ("round", "mean", "  ".join("%8s" % m for m in members)))
for r in s["rounds"]:
    by = {x["member"]: x["val_loss"] for x in r["members"] if x.get("val_loss") is not None}
    if not by:
        continue
    mean = sum(by.values()) / len(by)
    rows.append((r["round"], mean, [by.get(m) for m in members]))
    print("  %-8d %8.4f  %s" % (r["round"], mean, "  ".join(
        "%8s" % ("%.4f" % by[m] if m in by else "-") for m in members)))
with open(run + "/losses.tsv", "w") as f:
    f.write("round\tmean\t%s\n" % "\t".join(members))
    for rnd, mean, vals in rows:
        f.write("%d\t%.6f\t%s\n" % (rnd, mean, "\t".join("" if v is None else "%.6f" % v for v in vals)))
PY

say "the final checkpoint"
final=$(as fpt experiment show "$id" | sed -n 's/^ *final model: \([0-9a-f]\{64\}\).*/\1/p' | head -1)
ckpt="$RUN_DIR/coordinator/models/$final"
if [ -z "$final" ] || [ ! -d "$ckpt" ]; then
    # the newest checkpoint directory
    ckpt=$(ls -dt "$RUN_DIR"/coordinator/models/*/ 2>/dev/null | head -1)
    ckpt=${ckpt%/}
fi
[ -n "$ckpt" ] && [ -f "$ckpt/model.safetensors" ] ||
    { echo "demo-torch: no checkpoint under $RUN_DIR/coordinator/models" >&2; exit 1; }
ln -sfn "$ckpt" "$RUN_DIR/checkpoint"
ls -l "$ckpt" | sed -n '2,$p' | awk '{printf "  %-20s %10d bytes\n", $NF, $5}'

say "the final model: AutoModelForCausalLM.from_pretrained + AutoTokenizer.from_pretrained"
HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error \
"$py" - "$ckpt" "$PROMPT" "$RUN_DIR" "$ROOT/worker/plugins" "${MEMBERS[@]}" <<'PY'
import json, os, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging
hf_logging.disable_progress_bar()
ckpt, prompt, run, plugins, members = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
torch.set_num_threads(2)
model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
tok = AutoTokenizer.from_pretrained(ckpt)
model.eval()
n = sum(p.numel() for p in model.parameters())
print("  loaded %s: %s, %d parameters; tokenizer %s, %d entries"
      % (os.path.basename(os.path.realpath(ckpt))[:16], type(model).__name__, n,
         type(tok).__name__, len(tok)))

# The final model's loss on each member's held-out text, as the plug-in measures a
# round's base model: the policy's split and sequence length, the member's corpus files
# in worker/data.h's order, the worker's 32 validation windows.
import re
sys.path.insert(0, plugins)
import torch_causal_lm as tcl
policy = open(os.path.join(run, "llama-tiny.yaml")).read()
def key(name):
    return float(re.search(r"^\s+%s:\s*([0-9.e+-]+)" % name, policy, re.M).group(1))
fraction, T, B = key("validation_fraction"), int(key("seq_len")), int(key("batch_size"))
finals = {}
for m in members:
    root = os.path.join(run, "corpus", m)
    files = []
    for dp, dns, fns in os.walk(root):
        dns[:] = [d for d in dns if not d.startswith(".")]
        files += [os.path.relpath(os.path.join(dp, f), root) for f in fns if not f.startswith(".")]
    files.sort(key=lambda f: f.encode())
    data = {"dir": root, "files": files, "validation_fraction": fraction}
    c = tcl.Corpus(torch, data, os.path.join(ckpt, "tokenizer.json"), len(tok))
    windows = min((len(c.val) - 1) // T, 32)
    total = 0.0
    with torch.no_grad():
        for w in range(0, windows, B):
            rows = min(B, windows - w)
            idx = torch.arange(w, w + rows)[:, None] * T + torch.arange(T + 1)[None, :]
            x = c.val[idx]
            logits = model(input_ids=x[:, :-1]).logits
            total += float(torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))) * rows
    finals[m] = total / windows
mean = sum(finals.values()) / len(finals)
print("  held-out loss of the final model: mean %.4f (%s)"
      % (mean, ", ".join("%s %.4f" % (m, finals[m]) for m in members)))
with open(os.path.join(run, "final-loss.tsv"), "w") as f:
    f.write("mean\t%s\n%.6f\t%s\n" % ("\t".join(members), mean,
                                      "\t".join("%.6f" % finals[m] for m in members)))

ids = tok(prompt, return_tensors="pt")
torch.manual_seed(1)
with torch.no_grad():
    gen = model.generate(**ids, max_new_tokens=48, do_sample=True, top_k=40, temperature=0.8,
                         pad_token_id=model.config.pad_token_id,
                         eos_token_id=model.config.eos_token_id)
text = tok.decode(gen[0], skip_special_tokens=True)
with open(os.path.join(run, "sample.txt"), "w", encoding="utf-8") as f:
    f.write(text + "\n")
print("  prompt: %s" % prompt)
print("  sample: %s" % " ".join(text.split()))
PY
echo
echo "demo-torch finished in $(( $(date +%s) - start )) s; everything is under $RUN_DIR/"
