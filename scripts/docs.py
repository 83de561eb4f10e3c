#!/usr/bin/env python3
"""Rewrites the generated tables in docs/*.md: the lines between
<!-- generated: chat-api --settings --> (or --counters) and
<!-- end generated --> become what the binary prints for that option.
Usage: scripts/docs.py BINARY. tests/e2e/test_docs.py checks they agree."""
import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BLOCK = re.compile(r"(<!-- generated: chat-api (--\w+) -->\n)(.*?)(<!-- end generated -->)", re.S)


def regenerate(text, binary):
    def table(m):
        out = subprocess.run([binary, m.group(2)], check=True, capture_output=True, text=True)
        return m.group(1) + out.stdout + m.group(4)
    return BLOCK.sub(table, text)


def main():
    binary = sys.argv[1]
    docs = os.path.join(ROOT, "docs")
    for name in sorted(os.listdir(docs)):
        if name.endswith(".md"):
            path = os.path.join(docs, name)
            text = open(path, encoding="utf-8").read()
            new = regenerate(text, binary)
            if new != text:
                open(path, "w", encoding="utf-8").write(new)
                print(f"docs: rewrote the generated tables of docs/{name}")


if __name__ == "__main__":
    main()
