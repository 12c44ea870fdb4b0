#!/usr/bin/env python3
"""Trains the byte-level BPE tokenizer of policies/examples/llama-tiny (Vietnamese).

    scripts/demo-corpus.sh /tmp/vi-corpus build/demo-cache 2000000
    REFERENCE_VENV/bin/python scripts/train-tokenizer.py /tmp/vi-corpus \
        --out policies/examples/llama-tiny/tokenizer.json [--vocab-size 4096]

Input: every regular file under the corpus directories given (byte-wise sorted paths,
hidden entries skipped, as worker/data.h reads a corpus), UTF-8 text: the public
Vietnamese documentation that scripts/demo-corpus.sh extracts from Debian packages
(libreoffice-help-vi, manpages-vi, maint-guide-vi).

Output: one tokenizer.json for the Hugging Face `tokenizers` library (and
transformers' AutoTokenizer, which reads it from a model directory next to the
model's config.json):
  - normalizer NFC (Vietnamese text comes both precomposed and with combining marks;
    NFC makes "ệ" one code point before byte-level BPE sees it);
  - pre-tokenizer ByteLevel (GPT-2's regex split, no prefix space): every byte
    sequence is encodable, no unknown token;
  - BPE of --vocab-size entries: 256 byte symbols, the special tokens below, then
    merges learned from the corpus (min frequency 2);
  - special tokens <|endoftext|> (id 0, also bos/eos) and <|pad|> (id 1);
  - decoder ByteLevel: decode(encode(text)) == NFC(text).
Training is deterministic for the same input bytes; Debian updates the packages, so a
rerun on a newer corpus may give other merges: the committed file is the pinned one
(policies/examples/llama-tiny.yaml pins its BLAKE2b-256).
"""
import argparse
import os
import sys
import unicodedata

SPECIALS = ["<|endoftext|>", "<|pad|>"]


def corpus_files(roots):
    out = []
    for root in roots:
        if os.path.isfile(root):
            out.append(root)
            continue
        found = []
        for dp, dns, fns in os.walk(root):
            dns[:] = [d for d in dns if not d.startswith(".")]
            for f in fns:
                if f.startswith("."):
                    continue
                p = os.path.join(dp, f)
                if os.path.isfile(p) and not os.path.islink(p):
                    found.append(os.path.relpath(p, root))
        out.extend(os.path.join(root, p) for p in sorted(found, key=lambda s: s.encode()))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus", nargs="+", help="corpus directories or files (UTF-8 text)")
    ap.add_argument("--out", required=True, help="tokenizer.json to write")
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--min-frequency", type=int, default=2)
    a = ap.parse_args()

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    files = corpus_files(a.corpus)
    if not files:
        sys.exit("train-tokenizer: no files under %s" % " ".join(a.corpus))
    texts, total = [], 0
    for f in files:
        with open(f, "rb") as fh:
            b = fh.read()
        total += len(b)
        texts.append(b.decode("utf-8", errors="replace"))

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=a.vocab_size, min_frequency=a.min_frequency, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))

    # check: every text round-trips (NFC), and Vietnamese compresses
    sample = texts[0][:20000]
    ids = tok.encode(sample).ids
    back = tok.decode(ids)
    if back != unicodedata.normalize("NFC", sample):
        sys.exit("train-tokenizer: decode(encode(text)) differs from the text")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    tok.save(tmp, pretty=False)
    os.replace(tmp, a.out)
    print("train-tokenizer: %d files, %d bytes; vocabulary %d; %.2f bytes per token; %s"
          % (len(files), total, tok.get_vocab_size(), len(sample.encode()) / max(1, len(ids)),
             a.out))


if __name__ == "__main__":
    main()
