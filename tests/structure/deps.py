#!/usr/bin/python3
"""tests/structure/deps.py - which source file uses which, from the
objects' symbol tables (nm): a file uses another when it refers to a
symbol the other defines. Prints every circle of files (a strongly
connected set of two or more), and every source file over the line limit.

    tests/structure/deps.py OBJ_DIR [--max-lines N] [--strict] [--strict-lines]

With --strict it exits 1 on a circle, with --strict-lines also on a file
over the limit (the measure of issue 21)."""
import os
import subprocess
import sys


def symbols(obj):
    out = subprocess.run(["nm", "--defined-only", obj], capture_output=True, text=True, check=True).stdout
    defined = {line.split()[-1] for line in out.splitlines() if len(line.split()) == 3 and line.split()[1] in "TDBRC"}
    out = subprocess.run(["nm", "--undefined-only", obj], capture_output=True, text=True, check=True).stdout
    used = {line.split()[-1] for line in out.splitlines() if line.split()}
    return defined, used


def circles(graph):
    """Tarjan's strongly connected components with two or more members."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main():
    args = sys.argv[1:]
    strict = "--strict" in args
    strict_lines = "--strict-lines" in args
    long_files = 0
    max_lines = 600
    if "--max-lines" in args:
        max_lines = int(args[args.index("--max-lines") + 1])
    objdir = args[0]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    bad = 0
    for program in ("supervisor", "worker"):
        objs = {}
        for folder in (program, "proto"):
            d = os.path.join(objdir, folder)
            for name in sorted(os.listdir(d)):
                # an object whose source is gone (renamed) is left over
                if name.endswith(".o") and os.path.exists(os.path.join(root, folder, name[:-2] + ".c")):
                    objs[f"{folder}/{name[:-2]}.c"] = symbols(os.path.join(d, name))
        owner = {}
        for src, (defined, _) in objs.items():
            for sym in defined:
                owner[sym] = src
        graph = {src: {owner[s] for s in used if s in owner and owner[s] != src} for src, (_, used) in objs.items()}
        for comp in circles(graph):
            bad += 1
            inner = [f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp]
            print(f"{program}: circle of {len(comp)} files: {', '.join(comp)}")
            for edge in inner:
                print(f"    {edge}")
    for folder in ("supervisor", "worker", "proto"):
        for name in sorted(os.listdir(os.path.join(root, folder))):
            if name.endswith(".c"):
                with open(os.path.join(root, folder, name)) as f:
                    n = sum(1 for _ in f)
                if n > max_lines:
                    long_files += 1
                    print(f"{folder}/{name}: {n} lines, over {max_lines}")
    if bad == 0:
        print("no circle of files")
    if long_files == 0:
        print("no file over %d lines" % max_lines)
    return 1 if (strict and bad) or (strict_lines and long_files) else 0


sys.exit(main())
