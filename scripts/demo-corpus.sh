#!/usr/bin/env bash
# Builds the demo's private corpora: Vietnamese text from three Debian documentation
# packages, one source per member, so the data is non-IID:
#   fpt  <- libreoffice-help-vi (office software help, HTML)
#   vnpt <- manpages-vi          (system manual pages, roff)
#   hust <- maint-guide-vi       (Debian maintainers' guide, text)
# The packages are downloaded (not installed) and unpacked under the cache directory.
#
#   scripts/demo-corpus.sh OUT_DIR [CACHE_DIR] [MAX_BYTES_PER_MEMBER]
set -euo pipefail
out=${1:?usage: demo-corpus.sh OUT_DIR [CACHE_DIR] [MAX_BYTES]}
cache=${2:-build/demo-cache}
max_bytes=${3:-400000}
mkdir -p "$cache" "$out"
cache=$(cd "$cache" && pwd)

fetch() {   # fetch PACKAGE: downloads and unpacks into $cache/PACKAGE once
    local pkg=$1
    [ -d "$cache/$pkg/usr" ] && return 0
    echo "demo-corpus: downloading $pkg" >&2
    ( cd "$cache" && rm -f "${pkg}"_*.deb
      if ! apt-get download "$pkg" >/dev/null 2>&1; then
          sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
          $sudo apt-get update -q >/dev/null
          apt-get download "$pkg" >/dev/null
      fi )
    local deb
    deb=$(ls "$cache/${pkg}"_*.deb | head -1)
    [ -f "$deb" ] || { echo "demo-corpus: could not download $pkg" >&2; return 1; }
    rm -rf "$cache/$pkg.tmp"
    dpkg-deb -x "$deb" "$cache/$pkg.tmp"
    mv "$cache/$pkg.tmp" "$cache/$pkg"
}

for p in libreoffice-help-vi manpages-vi maint-guide-vi; do fetch "$p"; done

python3 - "$cache" "$out" "$max_bytes" <<'PY'
import gzip, html.parser, os, re, sys
cache, out, max_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3])

class Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(); self.parts = []; self.skip = 0
    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"): self.skip += 1
        if tag in ("p", "br", "div", "li", "h1", "h2", "h3", "tr"): self.parts.append("\n")
    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skip: self.skip -= 1
    def handle_data(self, d):
        if not self.skip: self.parts.append(d)

def clean(text):
    lines = [re.sub(r"[ \t]+", " ", l).strip() for l in text.splitlines()]
    return "\n".join(l for l in lines if len(l) > 2) + "\n"

def vietnamese(text):   # keep documents that really are Vietnamese
    return sum(1 for c in text if ord(c) > 0x00c0) > len(text) * 0.03

def from_html(path):
    p = Text(); p.feed(open(path, encoding="utf-8", errors="replace").read()); return clean("".join(p.parts))

def from_roff(path):
    raw = gzip.open(path, "rt", encoding="utf-8", errors="replace").read()
    keep = []
    for l in raw.splitlines():
        if l.startswith((".\\\"", "'\\\"")): continue
        if l.startswith("."):
            l = re.sub(r'^\.\w+\s*', "", l).replace('"', "")
        l = re.sub(r"\\f[BIRP]|\\f\(..|\\\(..|\\[&e,/-]", "", l)
        keep.append(l)
    return clean("\n".join(keep))

def from_text_gz(path):
    return clean(gzip.open(path, "rt", encoding="utf-8", errors="replace").read())

def collect(member, files, extract):
    d = os.path.join(out, member); os.makedirs(d, exist_ok=True)
    total = 0; n = 0
    for f in sorted(files):
        try: t = extract(f)
        except Exception: continue
        if len(t) < 200 or not vietnamese(t): continue
        b = t.encode("utf-8")
        if total + len(b) > max_bytes: b = b[: max_bytes - total]
        if not b: break
        n += 1
        with open(os.path.join(d, "%04d.txt" % n), "wb") as fh: fh.write(b)
        total += len(b)
        if total >= max_bytes: break
    print("demo-corpus: %-5s %4d documents, %7d bytes" % (member, n, total))

def walk(root, suffix):
    for dp, _, fs in os.walk(root):
        for f in fs:
            if f.endswith(suffix): yield os.path.join(dp, f)

collect("fpt", walk(os.path.join(cache, "libreoffice-help-vi/usr/share/libreoffice/help/vi"), ".html"), from_html)
collect("vnpt", walk(os.path.join(cache, "manpages-vi/usr/share/man/vi"), ".gz"), from_roff)
collect("hust", walk(os.path.join(cache, "maint-guide-vi/usr/share/doc/maint-guide-vi"), ".txt.gz"), from_text_gz)
PY
