#!/usr/bin/env bash
# Builds the demo alliance's evaluation set (policies/README.md, contribution.evaluation_set;
# credit/evalset.h): Vietnamese user-interface text of Firefox, from the Debian package
# firefox-esr-l10n-vi. No member trains on it: the members' corpora come from
# libreoffice-help-vi, manpages-vi and maint-guide-vi (scripts/demo-corpus.sh).
#
#   scripts/evalset.sh OUT_FILE [CACHE_DIR]        (MAX_BYTES=200000 by default)
#
# The package is downloaded with apt-get download (not installed) and unpacked under
# CACHE_DIR (default build/demo-cache, shared with demo-corpus.sh). Its language pack
# (langpack-vi@firefox-esr.mozilla.org.xpi, a zip) holds Fluent (.ftl) and .properties
# files; OUT_FILE gets their message values as plain UTF-8 lines:
#   - files in byte order of their path in the zip, entries in file order, a message's
#     value before its attributes (.label, .tooltiptext, ...); one line per value, its
#     lines joined by a space, runs of white space made one space;
#   - Fluent placeables: a term reference { -brand-short-name } becomes the term's
#     value, a string literal its text, a select expression its default (*) variant;
#     variables, functions and message references are dropped (with the space before a
#     punctuation mark, or the empty brackets or quotes, they leave); HTML-like tags removed;
#   - .properties: escapes decoded (\n and \t as spaces, \uXXXX), printf-style
#     placeholders (%S, %1$S, %d, #1) dropped;
#   - kept when it holds at least 12 characters and a Vietnamese letter (a character
#     above U+00C0), and the first time only (deduplicated);
#   - at most MAX_BYTES bytes, cut at a line end.
# The result is a function of the package's bytes. Prints the file's BLAKE2b-256
# (b2sum -l 256), the hash to pin in a policy's contribution.evaluation_set.blake2b.
#
# Debian updates firefox-esr-l10n-vi with every Firefox ESR release (and the
# security archive carries newer ones), so the hash changes over time: a policy must pin
# the hash of the file its coordinator actually holds. scripts/demo.sh builds the file
# at run time and writes this hash into its policy; a policy written by hand must be
# updated with the hash printed here (the package version used is printed on stderr).
set -euo pipefail
out=${1:?usage: evalset.sh OUT_FILE [CACHE_DIR]}
cache=${2:-build/demo-cache}
max_bytes=${MAX_BYTES:-200000}
pkg=firefox-esr-l10n-vi
mkdir -p "$cache" "$(dirname "$out")"
cache=$(cd "$cache" && pwd)

if [ ! -d "$cache/$pkg/usr" ]; then   # as demo-corpus.sh's fetch
    echo "evalset: downloading $pkg" >&2
    ( cd "$cache" && rm -f "${pkg}"_*.deb
      if ! apt-get download "$pkg" >/dev/null 2>&1; then
          sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
          $sudo apt-get update -q >/dev/null
          apt-get download "$pkg" >/dev/null
      fi )
    deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -1)
    [ -n "$deb" ] && [ -f "$deb" ] || { echo "evalset: could not download $pkg" >&2; exit 1; }
    rm -rf "$cache/$pkg.tmp"
    dpkg-deb -x "$deb" "$cache/$pkg.tmp"
    mv "$cache/$pkg.tmp" "$cache/$pkg"
fi
deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -1 || true)
xpi=$(find "$cache/$pkg/usr" -name 'langpack-vi@*.xpi' | sort | head -1)
[ -n "$xpi" ] || { echo "evalset: no langpack-vi@*.xpi in $cache/$pkg" >&2; exit 1; }

python3 - "$xpi" "$out" "$max_bytes" <<'PY'
import re, sys, zipfile
xpi, out, max_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
zf = zipfile.ZipFile(xpi)
names = sorted((n for n in zf.namelist() if n.endswith((".ftl", ".properties"))),
               key=lambda n: n.encode("utf-8"))

ENTRY = re.compile(r"^(-?[A-Za-z][A-Za-z0-9_-]*)[ \t]*=[ \t]?(.*)$")
ATTR = re.compile(r"^[ \t]+\.([A-Za-z][A-Za-z0-9_-]*)[ \t]*=[ \t]?(.*)$")

def ftl_entries(text):
    """Yields (id, [value, attr1, attr2, ...]) with each pattern's raw text."""
    cur = None; parts = None
    for line in text.splitlines():
        m = ENTRY.match(line)
        if m:
            if cur: yield cur, parts
            cur, parts = m.group(1), [m.group(2)]
            continue
        if cur is None: continue
        if line.startswith("#") or (line and not line[0].isspace()):
            yield cur, parts; cur = None; continue
        a = ATTR.match(line)
        if a: parts.append(a.group(2)); continue
        parts[-1] += "\n" + line     # continuation (or blank line inside a pattern)
    if cur: yield cur, parts

def matching(s, i):
    """Index of the '}' closing the '{' at s[i] (string literals skipped), or -1."""
    depth = 0; j = i
    while j < len(s):
        c = s[j]
        if c == '"':
            j += 1
            while j < len(s) and s[j] != '"':
                j += 2 if s[j] == "\\" else 1
        elif c == "{": depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0: return j
        j += 1
    return -1

terms = {}

def render(s, depth=0):
    res = []; i = 0
    while i < len(s):
        if s[i] == "{":
            j = matching(s, i)
            if j < 0: break
            res.append(placeable(s[i + 1:j], depth)); i = j + 1
        else:
            res.append(s[i]); i += 1
    return "".join(res)

def top_level(s, pat):
    """Start indexes of regex pat in s outside nested braces."""
    found = []; depth = 0; i = 0
    while i < len(s):
        if s[i] == "{": depth += 1
        elif s[i] == "}": depth -= 1
        elif depth == 0:
            m = pat.match(s, i)
            if m: found.append((m.start(), m.end()))
        i += 1
    return found

ARROW = re.compile(r"->")
VARIANT = re.compile(r"(?:(?<=\n)|^)[ \t]*\*?\[[^\]\n]*\]")

def placeable(inner, depth):
    if depth > 20: return ""
    arrow = top_level(inner, ARROW)
    if arrow:
        body = inner[arrow[0][1]:]
        keys = top_level(body, VARIANT)
        for k, (a, b) in enumerate(keys):
            if body[a:b].lstrip().startswith("*"):
                end = keys[k + 1][0] if k + 1 < len(keys) else len(body)
                return render(body[b:end], depth + 1)
        return ""
    t = inner.strip()
    if t.startswith('"'):
        lit = t[1:t.rfind('"')] if t.rfind('"') > 0 else ""
        return re.sub(r"\\u([0-9A-Fa-f]{4})", lambda m: chr(int(m.group(1), 16)),
                      lit.replace('\\"', '"')).replace("\\\\", "\\")
    m = re.match(r"-([A-Za-z][A-Za-z0-9_-]*)", t)
    if m:
        return render(terms.get(m.group(1), ""), depth + 1)
    return ""   # variables, functions, message references

def props_values(text):
    logical = []; buf = ""
    for line in text.splitlines():
        s = line.lstrip() if not buf else line.lstrip()
        if not buf and (not s or s[0] in "#!"): continue
        n = len(s) - len(s.rstrip("\\"))
        if n % 2 == 1:
            buf += s[:-1]; continue
        logical.append(buf + s); buf = ""
    if buf: logical.append(buf)
    for l in logical:
        m = re.match(r"^((?:\\.|[^=:\s\\])+)\s*[=:]?\s*(.*)$", l)
        if not m: continue
        v = m.group(2)
        v = re.sub(r"\\u([0-9A-Fa-f]{4})", lambda m: chr(int(m.group(1), 16)), v)
        v = re.sub(r"\\([nt])", " ", v)
        v = re.sub(r"\\(.)", r"\1", v)
        v = re.sub(r"%(\d+\$)?(S|s|d|ld|lld|u|lu|llu|f|\.\d+f|%)", "", v)
        v = re.sub(r"#\d+", "", v)
        yield v

texts = {n: zf.read(n).decode("utf-8", errors="replace") for n in names}
for n in names:   # terms first: any file may use another's
    if n.endswith(".ftl"):
        for ident, parts in ftl_entries(texts[n]):
            if ident.startswith("-"):
                terms[ident[1:]] = parts[0]

def clean(v):
    v = re.sub(r"<[^<>]*>", "", v)
    v = re.sub(r"\s+", " ", v).strip()
    v = v.replace("()", "").replace("“”", "").replace("\"\"", "")   # emptied by a dropped variable
    return re.sub(r" +([.,:;!?])", r"\1", re.sub(r"\s+", " ", v)).strip()

def vietnamese(v):
    return len(v) >= 12 and any(ord(c) > 0x00C0 for c in v)

seen = set(); lines = []
for n in names:
    if n.endswith(".ftl"):
        vals = [render(p) for ident, parts in ftl_entries(texts[n]) if not ident.startswith("-")
                for p in parts]
    else:
        vals = list(props_values(texts[n]))
    for v in vals:
        v = clean(v)
        if vietnamese(v) and v not in seen:
            seen.add(v); lines.append(v)

data = bytearray(); kept = 0
for l in lines:
    b = (l + "\n").encode("utf-8")
    if len(data) + len(b) > max_bytes: break
    data += b; kept += 1
with open(out, "wb") as fh: fh.write(bytes(data))
print("evalset: %d of %d distinct lines from %d files, %d bytes" %
      (kept, len(lines), len(names), len(data)), file=sys.stderr)
PY
echo "evalset: $(basename "${deb:-$pkg}") -> $out" >&2
b2sum -l 256 "$out" | cut -d' ' -f1
