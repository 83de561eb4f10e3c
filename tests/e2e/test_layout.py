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


def function_lengths():
    """(body lines, file, signature) of every function defined in src/: a
    definition opens with '{' alone in column 0 and ends at '}' there
    (the house style, clang-format's)."""
    out = []
    for path in glob.glob(os.path.join(SRC, "**", "*.c"), recursive=True):
        lines = open(path).read().split("\n")
        start = None
        for i, line in enumerate(lines):
            if line == "{":
                start = i
            elif line == "}" and start is not None:
                out.append((i - start - 1, os.path.relpath(path, SRC), lines[start - 1].strip()))
                start = None
    return out


def test_no_function_is_longer_than_a_hundred_lines():
    lengths = function_lengths()
    assert len(lengths) > 300  # the walk found the functions
    assert [f for f in lengths if f[0] > 100] == []


def test_the_worker_is_no_hub():
    """worker.c keeps the loop, the inbox and delivery (issue 26): the
    connection is conn.c's."""
    with open(os.path.join(SRC, "worker.c")) as f:
        assert len(f.readlines()) <= 700


def test_only_the_map_walks_its_buckets():
    """Walks go through hmap_each / hmap_iter (hmap.h), so one file knows
    how the buckets are laid out."""
    walkers = sorted(os.path.relpath(p, SRC)
                     for p in glob.glob(os.path.join(SRC, "**", "*.[ch]"), recursive=True)
                     if re.search(r"(\.|->)n?buckets\b", open(p).read()))
    assert walkers == ["hmap.c", "hmap.h"]


def test_one_container_of():
    defs = sorted(os.path.relpath(p, SRC)
                  for p in glob.glob(os.path.join(SRC, "**", "*.[ch]"), recursive=True)
                  if re.search(r"offsetof\(type, member\)", open(p).read()))
    assert defs == ["common.h"]


def test_links_and_the_map_are_opaque_outside_the_node_set():
    """The publisher and the subscriber use nodes.h only: the fields of a
    link (link_internal.h) and of the slot map (route.h) are read by
    link.c, route.c and nodes.c alone (issue 26), and the compiler holds
    everyone else to it."""
    users = {inc: sorted(os.path.relpath(p, SRC)
                         for p in glob.glob(os.path.join(SRC, "**", "*.[ch]"), recursive=True)
                         if f'#include "{inc}"' in open(p).read())
             for inc in ("redis/link_internal.h", "redis/route.h")}
    assert users["redis/link_internal.h"] == ["redis/link.c", "redis/nodes.c", "redis/route.h"]
    assert users["redis/route.h"] == ["redis/nodes.c", "redis/route.c"]


def test_one_event_loop():
    """Every thread's loop is loop.c's (issue 26): handlers registered with
    their descriptor, no loop of its own that compares epoll pointers."""
    callers = sorted(os.path.relpath(p, SRC)
                     for p in glob.glob(os.path.join(SRC, "**", "*.c"), recursive=True)
                     if re.search(r"\bepoll_(wait|ctl|create1?)\(", open(p).read()))
    assert callers == ["loop.c"]
