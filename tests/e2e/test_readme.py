"""The terminal examples of the README and docs/, run as printed: the
blocks under <!-- test: NAME --> markers (test_docs.py checks every sh
block has such a marker or says why it is not run), with only localhost:8080 and redis-cli's port
changed to the test's own. websocat is the real one when installed, else
tests/e2e/websocat.py stands in for it (same command line, same behaviour
for lines of text)."""
import json
import os
import queue
import re
import shutil
import stat
import subprocess
import threading

import pytest

from conftest import ready, wait_for
from doc_blocks import block

HERE = os.path.dirname(os.path.abspath(__file__))
T = 5


@pytest.fixture
def shell_env(tmp_path):
    """PATH with websocat: the real one, or the stand-in."""
    env = dict(os.environ)
    if not shutil.which("websocat"):
        shim = tmp_path / "websocat"
        shim.write_text(f"#!/bin/sh\nexec /usr/bin/python3 {HERE}/websocat.py \"$@\"\n")
        shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
        env["PATH"] = f"{tmp_path}:{env['PATH']}"
    return env


class Terminal:
    """A command from the README running in a shell, typed into line by line."""

    def __init__(self, cmd, env):
        self.p = subprocess.Popen(["sh", "-c", cmd], env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))

    def type(self, text):
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def next_json(self, timeout=T):
        return json.loads(self.lines.get(timeout=timeout))

    def quiet(self, seconds=0.3):
        try:
            line = self.lines.get(timeout=seconds)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected output: {line}")

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def as_printed(line, port, redis_port=None):
    line = line.replace("localhost:8080", f"localhost:{port}")
    if redis_port is not None:
        line = re.sub(r"^redis-cli ", f"redis-cli -p {redis_port} ", line)
    return line


def test_terminal_chat_backend_and_stats(start_server, redis_server, shell_env):
    r = redis_server()
    srv = start_server(REDIS_URL=f"redis://localhost:{r.port}")
    wait_for(lambda: ready(srv), 10, "the server to be ready")
    room_cmd, global_cmd = block("terminal-chat")
    one, two = Terminal(as_printed(room_cmd, srv.port), shell_env), \
        Terminal(as_printed(room_cmd, srv.port), shell_env)
    everyone = Terminal(as_printed(global_cmd, srv.port), shell_env)
    terms = (one, two, everyone)
    try:
        for t, room in ((one, "lobby"), (two, "lobby"), (everyone, None)):
            w = t.next_json()
            assert w["data"]["event"] == "welcome" and w["data"]["room"] == room
        one.type("hello from a terminal")
        for t in (one, two):
            m = t.next_json()
            assert m["data"] == {"text": "hello from a terminal"} and m["room"] == "lobby"
        everyone.quiet()

        # The backend examples reach the room, then everyone, as published.
        for line in block("backend"):
            out = subprocess.run(["sh", "-c", as_printed(line, srv.port, r.port)], env=shell_env,
                                 capture_output=True, text=True, check=True)
            assert out.stdout.strip() == "1", "one subscriber: the pod"
        room_note = {"type": "notification", "data": {"text": "deploy finished"}}
        all_note = {"type": "notification", "data": {"text": "maintenance at 18:00"}}
        for t in (one, two):
            assert t.next_json() == room_note
            assert t.next_json() == all_note
        assert everyone.next_json() == all_note
        for t in terms:
            t.quiet()

        stats_cmd, ready_cmd = block("stats")
        def printed_stats():
            out = subprocess.run(["sh", "-c", as_printed(stats_cmd, srv.port)], env=shell_env,
                                 capture_output=True, text=True, check=True)
            return json.loads(out.stdout)
        # The rooms in stats are a snapshot at most about a second old.
        stats = wait_for(lambda: (s := printed_stats())["rooms"]["members"] == {"lobby": 2} and s,
                         5, "the README's stats command to show the room")
        assert stats["connections"]["current"] == 3
        out = subprocess.run(["sh", "-c", as_printed(ready_cmd, srv.port)], env=shell_env,
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "ready"
    finally:
        for t in terms:
            t.close()
