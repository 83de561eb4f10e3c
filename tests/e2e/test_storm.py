"""A reconnect storm: when a pod dies, its clients come back to the others
all at once. Every one must be welcomed or, past MAX_CONNECTIONS, answered
503: none reset, and the server lives (under `make asan` too)."""
import json
import resource
import subprocess

from conftest import BENCH, wait_for
from wsraw import http_get


def storm(srv, procs, each, timeout=120):
    """Starts procs generators at once, each opening `each` connections and
    holding them; returns their reports and the generators (still holding)."""
    gens = [subprocess.Popen([BENCH, "--scenario", "storm", "--port", str(srv.port),
                              "--server-pid", str(srv.proc.pid), "--storm", str(each),
                              "--rooms", "50", "--sources", "4", "--duration", str(timeout)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            for _ in range(procs)]
    reports = [json.loads(g.stdout.readline()) for g in gens]
    return reports, gens


def release(gens):
    for g in gens:
        g.stdin.close()
    for g in gens:
        assert g.wait(60) == 0


def total(reports, key):
    return sum(r[key] for r in reports)


def test_reconnect_storm_welcomes_or_refuses_everyone(start_server):
    """10,000 clients within about a second from four processes, each sending
    its whole head in one write, against MAX_CONNECTIONS=8000."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        srv = start_server(WORKERS=2, MAX_CONNECTIONS=8000)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    reports, gens = storm(srv, 4, 2500)
    try:
        # A storm: every connect issued within seconds (about 0.1 s on a quiet
        # machine), not trickled in.
        assert max(r["connects_issued_s"] for r in reports) < 30, reports
        outcome = {k: total(reports, k) for k in
                   ("welcomed", "refused_503", "refused_other", "reset", "closed_unanswered",
                    "connect_failed", "unsettled")}
        assert outcome == {"welcomed": 8000, "refused_503": 2000, "refused_other": 0,
                           "reset": 0, "closed_unanswered": 0, "connect_failed": 0,
                           "unsettled": 0}, outcome
        st = srv.stats()
        assert st["connections"]["current"] == 8000
        assert st["connections"]["rejected_by_reason"]["max_connections"] == 2000
        assert st["http"]["heads_evicted"] == 0
    finally:
        release(gens)
    assert http_get(srv.port, "/healthz")[0] == 200
    wait_for(lambda: srv.stats()["connections"]["current"] == 0, 60,
             "the storm's connections to be closed")
