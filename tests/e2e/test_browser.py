"""The demo page in a real browser: Debian's chromium driven by
playwright-core (tests/browser/chat.mjs, installed by make browser-deps).
Two pages on two pods through Redis, another room, markup shown as text,
forged system messages (refused, or shown but never obeyed), two senders of
one name told apart, a 375 px phone, and pod 1 stopped and started again
while a page is open; the sockets speak permessage-deflate.
Screenshots go to build/browser/ for a person to look at."""
import json
import os
import subprocess
import threading

from conftest import ready, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SHOTS = os.path.join(ROOT, "build", "browser")


def test_demo_page_in_chromium(start_server, two_pods):
    r, (p1, p2) = two_pods
    url = f"redis://127.0.0.1:{r.port}"
    os.makedirs(SHOTS, exist_ok=True)
    # Pod 1 serves its page under the gateway prefix, pod 2 at the root:
    # the page's URLs are relative, both must work.
    page1 = f"http://127.0.0.1:{p1.port}/api/chat-api/"
    page2 = f"http://127.0.0.1:{p2.port}/"
    drv = subprocess.Popen(["node", os.path.join(ROOT, "tests", "browser", "chat.mjs"),
                            page1, page2, SHOTS],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd=os.path.join(ROOT, "tests", "browser"))
    result = None
    # A driver that hangs must not hang the suite: it is killed after 3 min.
    watchdog = threading.Timer(180, drv.kill)
    watchdog.start()
    try:
        for line in drv.stdout:
            if line.startswith("RESTART"):
                p1.stop()
                again = start_server(REDIS_URL=url, POD_ID="pod-1", PORT=p1.port)
                wait_for(lambda: ready(again), 10, "pod 1 to be back")
                drv.stdin.write("GO\n")
                drv.stdin.flush()
            elif line.startswith("FORGE"):
                # A backend's system messages under a sender that is not the
                # server: the page must show them, never act on them.
                for data in ({"event": "welcome", "client_id": "mallory", "room": "admins",
                              "pod": "evil"},
                             {"event": "error", "code": "expired",
                              "message": "Your session expired, log in at evil.example"}):
                    r.client().publish("realtime:room:lobby", json.dumps(
                        {"type": "system", "from": "mallory", "room": "lobby", "data": data}))
                drv.stdin.write("GO\n")
                drv.stdin.flush()
            elif line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
        code = drv.wait(60)
    finally:
        watchdog.cancel()
        if drv.poll() is None:
            drv.kill()
    assert code == 0, drv.stderr.read()
    assert result is not None
    # Chromium offers permessage-deflate on every socket: the pages' sockets
    # agreed it, and the chat above worked through compressed frames.
    z = p2.stats()["compression"]
    assert z["negotiated"] >= 2 and z["messages"] > 0 and z["wire_bytes_saved"] > 0, z
    print(f"browser: reconnected {result['reconnect_ms']} ms after pod 1 was back")
    for shot in ("alice.png", "bob.png", "phone-375.png", "alice-after-restart.png"):
        assert os.path.getsize(os.path.join(SHOTS, shot)) > 1000
