#!/usr/bin/env python3
"""Checks that every library includes only its own headers and those of libraries it declares.

Usage: check_layers.py BUILD_DIR SOURCE_DIR

Reads BUILD_DIR/asya_libraries.json (written by asya_library() at configure time: name, source
directory and declared asya dependencies of every library; cmake/AsyaLibrary.cmake already
refuses a dependency on a layer above). A library's public headers are the files under
<its dir>/include/; its private headers are the other .h files in its directory. For each .cc/.h
of a library (not of a library nested inside it), every `#include "…"` must resolve to a header
of the library itself or of a library named in its DEPS — "include what you use": a header that
only arrives through another library's dependencies does not count. Exits 1 and lists every
offending line otherwise.
"""
import json
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def main() -> int:
    build, source = sys.argv[1], os.path.realpath(sys.argv[2])
    with open(os.path.join(build, "asya_libraries.json"), encoding="utf-8") as f:
        libs = json.load(f)
    dirs = {lib["name"]: os.path.realpath(lib["dir"]) for lib in libs}
    deps = {lib["name"]: set(lib["deps"].split()) for lib in libs}
    # Several libraries may share a directory (transport + transport_all): the one whose
    # sources name the file is found below by walking files, so map files -> owner first.
    owner_of = {}  # absolute header/source path -> library
    for name, d in sorted(dirs.items(), key=lambda kv: len(kv[1])):
        for root, subdirs, files in os.walk(d):
            # A nested library's directory belongs to it, not to this one.
            subdirs[:] = [s for s in subdirs
                          if os.path.join(root, s) not in dirs.values()]
            for fn in files:
                if fn.endswith((".h", ".cc")):
                    owner_of.setdefault(os.path.join(root, fn), name)
    public_roots = {name: os.path.join(d, "include") for name, d in dirs.items()}
    src_root = os.path.join(source, "src")

    def resolve(header: str, including_file: str):
        candidates = [os.path.join(os.path.dirname(including_file), header)]
        candidates += [os.path.join(r, header) for r in public_roots.values()]
        candidates.append(os.path.join(src_root, header))
        for c in candidates:
            c = os.path.realpath(c)
            if c in owner_of:
                return c
        return None

    problems = []
    for path, lib in sorted(owner_of.items()):
        allowed = {lib} | deps.get(lib, set())
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for m in INCLUDE.finditer(text):
            header = m.group(1)
            target = resolve(header, path)
            if target is None:
                if header.startswith("asya/"):
                    problems.append(f"{os.path.relpath(path, source)}: includes \"{header}\", "
                                    "which is no library's header")
                continue
            other = owner_of[target]
            if other not in allowed:
                line = text.count("\n", 0, m.start()) + 1
                problems.append(
                    f"{os.path.relpath(path, source)}:{line}: library '{lib}' includes "
                    f"\"{header}\" of library '{other}', which it does not declare "
                    f"(DEPS: {' '.join(sorted(deps.get(lib, ()))) or 'none'})")
    for p in problems:
        print(p)
    if problems:
        print(f"check_layers: {len(problems)} include(s) outside declared dependencies")
        return 1
    print(f"check_layers: {len(owner_of)} files of {len(libs)} libraries include only what "
          "they declare")
    return 0


if __name__ == "__main__":
    sys.exit(main())
