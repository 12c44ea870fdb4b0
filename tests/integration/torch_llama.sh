#!/usr/bin/env bash
# Bring your own trainer and model, end to end (scripts/demo-torch.sh, shortened): three
# members train policies/examples/llama-tiny.yaml (family external: a Llama with a
# Vietnamese BPE tokenizer, pinned files uploaded with the proposal and served by the
# coordinator) through worker/plugins/torch_causal_lm.py in serve mode. Asserts:
#   - every round closes with all three members, and the mean validation loss of the
#     base model falls from round 1 to the last round by more than MIN_DROP nats;
#   - the final checkpoint directory loads with AutoModelForCausalLM.from_pretrained
#     (no missing or unexpected tensor, the same values as its model.safetensors) and
#     AutoTokenizer.from_pretrained (the pinned tokenizer.json, byte for byte);
#   - generation from a Vietnamese prompt returns new, non-empty text holding Vietnamese
#     letters with diacritics.
# Needs the torch venv (REFERENCE_VENV, default build/reference-venv: scripts/torch-venv.sh
# makes it); says SKIP without it. Vietnamese text: scripts/demo-corpus.sh (Debian
# documentation packages, cached under $BUILD/demo-cache), or, offline, the Vietnamese
# message catalogs under /usr/share/locale/vi.
source "$(dirname "$0")/lib.sh"
venv=${REFERENCE_VENV:-build/reference-venv}
if [ ! -x "$venv/bin/python" ] ||
   ! "$venv/bin/python" -c 'import torch, transformers, tokenizers, safetensors' 2>/dev/null; then
    echo "SKIP: torch_llama.sh needs the torch venv $venv (scripts/torch-venv.sh or" \
         "make reference creates it; REFERENCE_VENV=dir to use another)"
    exit 0
fi
py=$(cd "$venv" && pwd)/bin/python
ROUNDS=${ROUNDS:-4}
STEPS=${STEPS:-12}
MIN_DROP=${MIN_DROP:-0.5}

note "Vietnamese corpora"
if ! scripts/demo-corpus.sh "$T/corpus" "$BUILD/demo-cache" 150000 >"$T/logs/corpus.log" 2>&1; then
    note "demo-corpus.sh could not fetch the Debian packages; using /usr/share/locale/vi"
    rm -rf "$T/corpus"
    python3 - "$T/corpus" <<'PY' || { echo "SKIP: no Vietnamese text here (no network, no /usr/share/locale/vi)"; exit 0; }
import glob, os, struct, sys
out = sys.argv[1]
texts = []
for mo in sorted(glob.glob("/usr/share/locale/vi/LC_MESSAGES/*.mo")):
    b = open(mo, "rb").read()
    if len(b) < 28: continue
    magic = struct.unpack("<I", b[:4])[0]
    e = "<" if magic == 0x950412de else ">" if magic == 0xde120495 else None
    if not e: continue
    n, _, to = struct.unpack(e + "III", b[8:20])
    for i in range(1, n):
        ln, off = struct.unpack(e + "II", b[to + 8 * i: to + 8 * i + 8])
        s = b[off:off + ln].decode("utf-8", "replace").split("\0")[0]
        if sum(1 for c in s if ord(c) > 0xc0) >= 2: texts.append(s.strip())
text = "\n".join(texts)
if len(text.encode()) < 60000: sys.exit(1)
third = len(text) // 3
for k, m in enumerate(["fpt", "vnpt", "hust"]):
    os.makedirs(os.path.join(out, m))
    open(os.path.join(out, m, "text.txt"), "w").write(text[k * third:(k + 1) * third][:150000])
PY
fi

note "demo-torch: $ROUNDS rounds x $STEPS steps, three workers with the torch plug-in"
t0=$(date +%s)
if ! BUILD=$BUILD RUN_DIR="$T/run" CORPUS="$T/corpus" ROUNDS=$ROUNDS STEPS=$STEPS INSECURE=1 \
        REFERENCE_VENV=$venv scripts/demo-torch.sh >"$T/logs/demo-torch.log" 2>&1; then
    tail -30 "$T/logs/demo-torch.log"
    for m in fpt vnpt hust; do cp "$T/run/logs/$m.log" "$T/logs/worker-$m.log" 2>/dev/null || true; done
    cp "$T/run/logs/coordinator.log" "$T/logs/coordinator.log" 2>/dev/null || true
    fail "scripts/demo-torch.sh failed"
fi
note "ran in $(( $(date +%s) - t0 )) s"
sed -n '/validation loss of each round/,$p' "$T/logs/demo-torch.log"

note "every round closed with the three members"
closed=$(grep -cE "round [0-9]+ closed: 3 member" "$T/run/logs/coordinator.log" || true)
[ "$closed" -eq "$ROUNDS" ] || fail "$closed of $ROUNDS rounds closed with 3 members"
note "each worker trained through one plug-in process (serve mode), delta files in BF16"
for m in fpt vnpt hust; do
    starts=$(grep -c "trainer: torch_causal_lm: rank 0/1" "$T/run/logs/$m.log" || true)
    [ "$starts" -eq 1 ] || fail "$m's plug-in started $starts times (serve mode: once)"
    rounds=$(grep -c "trainer: torch_causal_lm: round [0-9]*: $STEPS steps" "$T/run/logs/$m.log" || true)
    [ "$rounds" -eq "$ROUNDS" ] || fail "$m's plug-in trained $rounds of $ROUNDS rounds"
    wrote=$(grep -c "trainer: torch_causal_lm: round [0-9]*: .*; wrote delta.safetensors (BF16)" \
        "$T/run/logs/$m.log" || true)
    [ "$wrote" -eq "$ROUNDS" ] || fail "$m's plug-in wrote delta.safetensors (BF16) in $wrote of $ROUNDS rounds"
done

note "the validation loss falls"
python3 - "$T/run/losses.tsv" "$ROUNDS" "$MIN_DROP" <<'PY' || fail "the loss did not fall"
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
means = [float(r[1]) for r in rows]
print("   mean validation loss per round:", " ".join("%.4f" % m for m in means))
assert len(means) == int(sys.argv[2]), "%d rounds with losses" % len(means)
assert means[-1] < means[0] - float(sys.argv[3]), "%.4f -> %.4f" % (means[0], means[-1])
PY

note "the checkpoint loads in transformers and generates Vietnamese"
"$py" - "$T/run/checkpoint" "$ROOT/policies/examples/llama-tiny/tokenizer.json" \
    "$T/run/sample.txt" <<'PY' 2>"$T/logs/load.log" || { cat "$T/logs/load.log"; fail "the checkpoint check failed"; }
import re, sys, torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
ckpt, pinned_tok, sample = sys.argv[1:4]
model, info = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32,
                                                   output_loading_info=True)
assert not info["missing_keys"] and not info["unexpected_keys"], info
assert type(model).__name__ == "LlamaForCausalLM", type(model).__name__
stored = load_file(ckpt + "/model.safetensors")
sd = model.state_dict()
for k, v in stored.items():
    assert v.dtype == torch.float32, (k, v.dtype)
    assert torch.equal(sd[k], v), "tensor %s differs after from_pretrained" % k
assert open(ckpt + "/tokenizer.json", "rb").read() == open(pinned_tok, "rb").read()
tok = AutoTokenizer.from_pretrained(ckpt)
prompt = "Tiếng Việt"
ids = tok(prompt, return_tensors="pt")
torch.manual_seed(7)
with torch.no_grad():
    gen = model.generate(**ids, max_new_tokens=40, do_sample=True, top_k=40,
                         pad_token_id=model.config.pad_token_id, eos_token_id=None)
new = tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
print("   generated after %r: %r" % (prompt, new))
assert new.strip(), "empty generation"
viet = re.compile("[àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ]",
                  re.IGNORECASE)
assert viet.search(new), "no Vietnamese letter with a diacritic in %r" % new
demo = open(sample, encoding="utf-8").read()
assert viet.search(demo) and len(demo.strip()) > len("Việt Nam là"), demo
print("   the demo's sample: %s" % " ".join(demo.split()))
PY
echo "torch_llama: ok"
