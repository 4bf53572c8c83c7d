#!/usr/bin/env python3
"""The import picture: per top-level module of src/, which others it imports
(`crate::X`), ignoring `#[cfg(test)]` modules and comments. Exits 1 on a
cycle, or on an arrow from a lower layer (domain, store, call, the provider
clients) up to an edge (api, web, simulator, voice, state, startup).

Usage: scripts/import_picture.py [src]
"""
import os
import re
import sys

EDGES = {"api", "web", "simulator", "voice", "state", "startup", "cli"}
# Lower layers, by path prefix under src/: none of them may import an edge.
LOWER = ["domain/", "domain.rs", "store/", "call/", "telephony/mod.rs", "telephony/twilio/client.rs",
         "telephony/twilio/signature.rs", "telephony/twilio/twiml.rs", "service.rs", "jobs/"]


def strip_tests(text):
    out, i = [], 0
    pattern = re.compile(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{")
    while True:
        m = pattern.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:m.start()])
        j, depth = m.end(), 1
        while depth and j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j


def imports(text):
    found = set(re.findall(r"crate::(\w+)", text))
    for group in re.findall(r"crate::\{([^}]*)\}", text):
        found |= set(re.findall(r"(?:^|,)\s*(\w+)", group))
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "src"
    mods, bad = {}, []
    for dirpath, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            top = rel.split("/")[0].removesuffix(".rs")
            if top in ("lib", "main"):
                continue
            text = re.sub(r"//[^\n]*", "", strip_tests(open(path, encoding="utf-8").read()))
            used = {m for m in imports(text) if m != top}
            mods.setdefault(top, set()).update(used)
            if any(rel.startswith(p) for p in LOWER):
                bad += [f"{rel} -> {m}" for m in sorted(used & EDGES)]

    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in mods.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    for name in sorted(mods):
        print(f"{name:10} -> {', '.join(sorted(mods[name]))}")
    cycles = sorted(m for m in mods if m in reach(m))
    print("cycles through:", ", ".join(cycles) or "none")
    print("arrows up to an edge:", "; ".join(bad) or "none")
    sys.exit(1 if cycles or bad else 0)


main()
