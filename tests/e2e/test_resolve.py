"""Redis named by host: every address of the name is tried, and the lookup
never holds up the broker threads (issue 25, item 2)."""
import os
import tempfile

from conftest import Server, ready, wait_for

HERE = os.path.dirname(__file__)
SLOW = os.environ.get("CHAT_SLOW_RESOLVER", os.path.join(HERE, "../../build/slow-resolver.so"))


def test_localhost_with_ipv6_first_reaches_an_ipv4_only_redis(start_server, redis_server):
    """Debian's /etc/hosts names localhost for ::1 and 127.0.0.1, and
    getaddrinfo gives ::1 first. A Redis bound to 127.0.0.1 refuses ::1; the
    pod used to retry ::1 forever (/readyz 503). The pod runs in a mount
    namespace of its own with such a hosts file."""
    r = redis_server()  # --bind 127.0.0.1
    with tempfile.NamedTemporaryFile("w", suffix=".hosts", delete=False) as f:
        f.write("::1 localhost ip6-localhost\n127.0.0.1 localhost\n")
        hosts = f.name
    try:
        wrapper = ("unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', hosts)
        env = {"REDIS_URL": f"redis://localhost:{r.port}", "POD_ID": "pod-v6"}
        srv = Server(env, wrapper=wrapper)
        try:
            wait_for(lambda: ready(srv), 10, "the pod to be ready through localhost")
        finally:
            code, log = srv.stop()
        assert code == 0, log
    finally:
        os.unlink(hosts)


def test_slow_lookups_do_not_keep_the_pod_from_redis(start_server, redis_server):
    """A getaddrinfo that takes 3 s: the lookup runs off the broker threads
    and the connect deadline starts when the connect does. Before, the 1 s
    deadline was taken before the lookup, and the pod was never ready; after
    a Redis restart it never reconnected."""
    r = redis_server()
    name = "redis-slow.test"
    srv = start_server(REDIS_URL=f"redis://{name}:{r.port}", POD_ID="pod-slow",
                       LD_PRELOAD=SLOW, SLOW_RESOLVER_NAME=name, SLOW_RESOLVER_MS=3000,
                       ASAN_OPTIONS=(os.environ.get("ASAN_OPTIONS", "") +
                                     ":verify_asan_link_order=0").lstrip(":"))
    wait_for(lambda: ready(srv), 15, "the pod to be ready through a 3 s lookup")
    # The pod answers HTTP at once while a lookup is under way: the
    # acceptor and workers never wait on it either.
    r.kill()
    wait_for(lambda: not ready(srv), 10, "the pod to notice Redis is gone")
    # Redis stays away until the pod has found every address refused and
    # looked the name up again (a lookup of 3 s under way or done).
    wait_for(lambda: srv.log().count("cannot connect") >= 2, 20,
             "the pod to try the name again while Redis is down")
    r.start()
    wait_for(lambda: ready(srv), 20, "the pod to be ready again after Redis came back")
