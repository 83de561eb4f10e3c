"""The README's and docs/' Markdown, for the tests that run or check it."""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DOCS = [os.path.join(ROOT, "README.md")] + sorted(
    os.path.join(ROOT, "docs", n) for n in os.listdir(os.path.join(ROOT, "docs")) if n.endswith(".md"))


def text(path):
    return open(path, encoding="utf-8").read()


def block(name):
    """The lines of the sh block marked <!-- test: name -->, wherever it is."""
    for path in DOCS:
        m = re.search(r"<!-- test: " + re.escape(name) + r" -->\n\s*```sh\n(.*?)```", text(path),
                      re.S)
        if m:
            return [line.strip() for line in m.group(1).splitlines() if line.strip()]
    raise AssertionError(f"no block marked test: {name} in the README or docs/")


def sh_blocks(path):
    """(line number, the marker line before it or '') of every sh block."""
    lines = text(path).splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.strip() == "```sh":
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            out.append((i + 1, lines[j].strip() if j >= 0 else ""))
    return out
