"""The source's shape (issue 18): no module includes another that,
directly or not, includes it back, and only main.c and server.c know
struct server; every other thread gets narrow handles."""
import glob
import os
import re

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")


def include_graph():
    """module -> modules it includes (a module is a .c and its .h)."""
    graph = {}
    for path in glob.glob(os.path.join(SRC, "**", "*.[ch]"), recursive=True):
        mod = os.path.splitext(os.path.relpath(path, SRC))[0]
        with open(path) as f:
            for inc in re.findall(r'^#include "([^"]+)"', f.read(), re.M):
                dep = os.path.splitext(inc)[0]
                if dep != mod and os.path.exists(os.path.join(SRC, inc)):
                    graph.setdefault(mod, set()).add(dep)
    return graph


def circles(graph):
    """The strongly connected components of more than one module."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(comp))
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_no_include_circle():
    assert circles(include_graph()) == []


def test_the_circle_finder_finds_one():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_main_and_server_know_the_server():
    knows = sorted(os.path.relpath(p, SRC)
                   for p in glob.glob(os.path.join(SRC, "**", "*.[ch]"), recursive=True)
                   if '#include "server.h"' in open(p).read())
    assert knows == ["main.c", "server.c"]


def test_test_helpers_shadow_no_module():
    """A helper module of these tests must not take the name of a standard
    module or an installed package (tests/e2e/jwt.py once hid PyJWT)."""
    import importlib.machinery
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    others = [p for p in sys.path if os.path.abspath(p or ".") != here]
    helpers = [os.path.splitext(n)[0] for n in os.listdir(here)
               if n.endswith(".py") and not n.startswith("test_") and n != "conftest.py"]
    assert len(helpers) >= 5
    for name in helpers:
        assert name not in sys.stdlib_module_names, f"{name}.py shadows the standard library"
        assert importlib.machinery.PathFinder.find_spec(name, others) is None, \
            f"{name}.py shadows an installed module"
