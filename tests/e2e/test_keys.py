"""Tokens from identity providers (RS256, ES256, keys in PEM or JWKS, chosen
by kid, rotated on SIGHUP), algorithm confusion, and limits per client
address with and without a trusted proxy."""
import json
import os
import shutil
import signal
import tempfile

import pytest

from conftest import wait_for
from tokens import b64url, jwk, make_jwt, new_key, sign_jwt
from wsraw import upgrade_request


def status(srv, token, path="/ws/x"):
    return upgrade_request(srv.port, path, f"Authorization: Bearer {token}\r\n")[0]


@pytest.fixture(scope="module")
def keys():
    d = tempfile.mkdtemp(prefix="chat-keys-")
    k = {name: new_key(d, name, kind) for name, kind in
         (("rsa1", "RSA"), ("rsa2", "RSA"), ("ec1", "EC"), ("ec2", "EC"))}
    k["dir"] = d
    yield k
    shutil.rmtree(d, ignore_errors=True)


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)  # a reader never sees half a file


def pem(keys, *names):
    return "".join(open(keys[n][1]).read() for n in names)


def test_rs256_and_es256_from_pem(start_server, keys):
    path = os.path.join(keys["dir"], "pem-both")
    write(path, pem(keys, "rsa1", "ec1"))
    srv = start_server(AUTH_ENABLED="true", JWT_ALGORITHMS="RS256,ES256", JWT_PUBLIC_KEYS_FILE=path)
    claims = {"sub": "idp-user"}
    assert status(srv, sign_jwt(claims, keys["rsa1"][0], "RS256")) == 101
    assert status(srv, sign_jwt(claims, keys["ec1"][0], "ES256")) == 101
    # Signed by keys the server does not have, or with the wrong algorithm named.
    assert status(srv, sign_jwt(claims, keys["rsa2"][0], "RS256")) == 401
    assert status(srv, sign_jwt(claims, keys["ec2"][0], "ES256")) == 401
    rs = sign_jwt(claims, keys["rsa1"][0], "RS256").split(".")
    as_es = b64url(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
    assert status(srv, f"{as_es}.{rs[1]}.{rs[2]}") == 401, "an RSA signature named ES256"
    # HS256 is not in JWT_ALGORITHMS here, and none never is.
    assert status(srv, make_jwt(claims, "whatever")) == 401
    none_head = b64url(json.dumps({"alg": "none"}).encode())
    none = f"{none_head}.{b64url(json.dumps(claims).encode())}."
    assert status(srv, none) == 401


def test_kid_chooses_among_keys_of_a_jwks(start_server, keys):
    path = os.path.join(keys["dir"], "jwks")
    write(path, json.dumps({"keys": [jwk(keys["rsa1"][1], "a"), jwk(keys["rsa2"][1], "b"),
                                     jwk(keys["ec1"][1], "c"), {"kty": "oct", "kid": "x"}]}))
    srv = start_server(AUTH_ENABLED="true", JWT_ALGORITHMS="RS256,ES256", JWT_PUBLIC_KEYS_FILE=path)
    claims = {"sub": "k"}
    assert status(srv, sign_jwt(claims, keys["rsa2"][0], "RS256", kid="b")) == 101
    assert status(srv, sign_jwt(claims, keys["rsa1"][0], "RS256", kid="a")) == 101
    assert status(srv, sign_jwt(claims, keys["ec1"][0], "ES256", kid="c")) == 101
    # The kid names the key: a signature by another key of the set fails.
    assert status(srv, sign_jwt(claims, keys["rsa2"][0], "RS256", kid="a")) == 401
    assert status(srv, sign_jwt(claims, keys["rsa1"][0], "RS256", kid="nope")) == 401


def test_jwks_keys_not_for_signing_this_alg_are_not_used(start_server, keys):
    """A JWK for encryption (use "enc"), one declared for another alg, and one
    whose kid is over the 128-byte limit verify nothing; the one good key of
    the file still does."""
    path = os.path.join(keys["dir"], "jwks-uses")
    long_kid = "k" * 129
    write(path, json.dumps({"keys": [
        dict(jwk(keys["ec1"][1], "enc"), use="enc"),
        dict(jwk(keys["rsa1"][1], "rs512"), alg="RS512"),
        jwk(keys["rsa2"][1], long_kid),
        dict(jwk(keys["ec2"][1], "good"), use="sig", alg="ES256")]}))
    srv = start_server(AUTH_ENABLED="true", JWT_ALGORITHMS="RS256,ES256", JWT_PUBLIC_KEYS_FILE=path)
    claims = {"sub": "k"}
    assert status(srv, sign_jwt(claims, keys["ec1"][0], "ES256", kid="enc")) == 401
    assert status(srv, sign_jwt(claims, keys["ec1"][0], "ES256")) == 401
    assert status(srv, sign_jwt(claims, keys["rsa1"][0], "RS256", kid="rs512")) == 401
    assert status(srv, sign_jwt(claims, keys["rsa2"][0], "RS256", kid=long_kid)) == 401
    assert status(srv, sign_jwt(claims, keys["rsa2"][0], "RS256")) == 401, "not kept kid-less"
    assert status(srv, sign_jwt(claims, keys["ec2"][0], "ES256", kid="good")) == 101
    assert srv.stats()["auth"]["public_keys"] == 1


def test_a_token_without_kid_costs_at_most_four_signature_checks(start_server, keys):
    """With many keys and no kid, only the first four keys of the token's
    algorithm are tried: a key fifth in the file is not reached."""
    extra = [f"ec-extra{i}" for i in range(4)]
    for name in extra:
        if name not in keys:
            keys[name] = new_key(keys["dir"], name, "EC")
    path = os.path.join(keys["dir"], "many")
    write(path, pem(keys, "rsa1", *extra, "ec1"))  # the RSA key is not tried for ES256
    srv = start_server(AUTH_ENABLED="true", JWT_ALGORITHMS="RS256,ES256", JWT_PUBLIC_KEYS_FILE=path)
    assert status(srv, sign_jwt({"sub": "k"}, keys[extra[3]][0], "ES256")) == 101
    assert status(srv, sign_jwt({"sub": "k"}, keys["ec1"][0], "ES256")) == 401
    write(path, pem(keys, "ec1", *extra))
    srv.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: srv.stats()["auth"]["key_reloads"] == 1, 5, "the file to be read again")
    assert status(srv, sign_jwt({"sub": "k"}, keys["ec1"][0], "ES256")) == 101


def test_algorithm_confusion_fails(start_server, keys):
    """An attacker signs HS256 with the server's RSA public key as the HMAC
    secret: public keys are never HMAC secrets."""
    path = os.path.join(keys["dir"], "pem-rsa1")
    write(path, pem(keys, "rsa1"))
    public = open(keys["rsa1"][1]).read()
    for algs, secret in (("RS256", None), ("RS256,HS256", "real-hs-secret")):
        env = {"AUTH_ENABLED": "true", "JWT_ALGORITHMS": algs, "JWT_PUBLIC_KEYS_FILE": path}
        if secret:
            env["JWT_SECRET"] = secret
        srv = start_server(**env)
        assert status(srv, make_jwt({"sub": "mallory"}, public)) == 401
        assert status(srv, sign_jwt({"sub": "ok"}, keys["rsa1"][0], "RS256")) == 101
        if secret:
            assert status(srv, make_jwt({"sub": "ok"}, secret)) == 101


def test_keys_rotate_on_sighup(start_server, keys):
    path = os.path.join(keys["dir"], "rotating")
    write(path, pem(keys, "rsa1"))
    srv = start_server(AUTH_ENABLED="true", JWT_ALGORITHMS="RS256", JWT_PUBLIC_KEYS_FILE=path,
                       LOG_LEVEL="info")
    old = sign_jwt({"sub": "u"}, keys["rsa1"][0], "RS256")
    new = sign_jwt({"sub": "u"}, keys["rsa2"][0], "RS256")
    assert status(srv, old) == 101 and status(srv, new) == 401
    write(path, pem(keys, "rsa2"))
    srv.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: srv.stats()["auth"]["key_reloads"] == 1, 5, "the file to be read again")
    assert status(srv, new) == 101
    assert status(srv, old) == 401, "the old key is gone"
    # A bad file keeps the keys in use.
    write(path, "-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n")
    srv.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: srv.stats()["auth"]["key_reload_failures"] == 1, 5, "the bad file to be seen")
    assert status(srv, new) == 101
    assert srv.stats()["auth"]["public_keys"] == 1
    code, err = srv.stop()
    assert code == 0
    assert "public keys read again" in err
    assert "keeping the keys in use: JWT_PUBLIC_KEYS_FILE: no RSA or P-256 EC public key" in err


def test_bad_keys_file_stops_the_start(keys):
    import subprocess
    from conftest import BIN, free_port
    path = os.path.join(keys["dir"], "empty")
    write(path, "{}")
    p = subprocess.run([BIN], env={"AUTH_ENABLED": "true", "JWT_ALGORITHMS": "ES256",
                                   "JWT_PUBLIC_KEYS_FILE": path, "PORT": str(free_port())},
                       capture_output=True, timeout=10)
    assert p.returncode == 2 and b"JWT_PUBLIC_KEYS_FILE" in p.stderr
    p = subprocess.run([BIN], env={"AUTH_ENABLED": "true", "JWT_ALGORITHMS": "RS256",
                                   "PORT": str(free_port())}, capture_output=True, timeout=10)
    assert p.returncode == 2 and b"JWT_PUBLIC_KEYS_FILE" in p.stderr


def test_connections_per_address(start_server):
    from wsraw import Raw
    srv = start_server(MAX_CONNECTIONS_PER_IP="2")
    a, b = Raw(srv.port, "/ws/x"), Raw(srv.port, "/ws/x")
    assert a.status == b.status == 101
    st, headers, body = upgrade_request(srv.port, "/ws/x")
    assert st == 503 and headers["retry-after"] == ["5"] and b"MAX_CONNECTIONS_PER_IP" in body
    # Without a trusted proxy, X-Forwarded-For is not believed.
    assert upgrade_request(srv.port, "/ws/x", "X-Forwarded-For: 198.51.100.7\r\n")[0] == 503
    a.close()
    # Once the server has seen a go, the address has a slot again (asking
    # before that would be refused, and counted, as it should).
    wait_for(lambda: srv.stats()["connections"]["current"] == 1, 5, "a's close to be seen")
    assert Raw(srv.port, "/ws/x").status == 101
    c = srv.stats()["connections"]
    assert c["rejected_by_reason"]["per_ip"] == 2
    b.close()


def test_connections_per_address_behind_a_trusted_proxy(start_server):
    from wsraw import Raw
    srv = start_server(MAX_CONNECTIONS_PER_IP="1", TRUSTED_PROXIES="127.0.0.0/8")

    def via(client):
        return f"X-Forwarded-For: {client}\r\n"
    one = Raw(srv.port, "/ws/x", via("198.51.100.7"))
    two = Raw(srv.port, "/ws/x", via("198.51.100.8"))
    assert one.status == two.status == 101, "two clients behind one proxy"
    assert upgrade_request(srv.port, "/ws/x", via("198.51.100.7"))[0] == 503
    # A client cannot hide behind a fake leftmost entry: the proxy appended the real one.
    assert upgrade_request(srv.port, "/ws/x", via("10.9.9.9, 198.51.100.7"))[0] == 503
    one.close()
    two.close()


def test_forwarded_for_with_ports_and_ipv6_prefixes(start_server):
    """X-Forwarded-For entries with a port or brackets name their client (not
    the proxy, which would put every such client in one quota), and IPv6
    clients are counted per /64 unless PER_IP_IPV6_PREFIX says otherwise."""
    from wsraw import Raw
    srv = start_server(MAX_CONNECTIONS_PER_IP="1", TRUSTED_PROXIES="127.0.0.0/8")

    def via(client):
        return f"X-Forwarded-For: {client}\r\n"
    held = [Raw(srv.port, "/ws/x", via(c)) for c in
            ("1.2.3.6:5555", "1.2.3.7:5555", "[2001:db8:1:2::1]:443", "[2001:db8:1:3::1]")]
    assert [h.status for h in held] == [101] * 4, "four clients, four quotas"
    assert upgrade_request(srv.port, "/ws/x", via("1.2.3.6:6000"))[0] == 503
    # Another address in the same /64: the same subscriber.
    assert upgrade_request(srv.port, "/ws/x", via("2001:db8:1:2:ffff::9"))[0] == 503
    assert srv.stats()["connections"]["rejected_by_reason"]["per_ip"] == 2
    per_address = start_server(MAX_CONNECTIONS_PER_IP="1", TRUSTED_PROXIES="127.0.0.0/8",
                               PER_IP_IPV6_PREFIX="128")
    one = Raw(per_address.port, "/ws/x", via("2001:db8:1:2::1"))
    two = Raw(per_address.port, "/ws/x", via("2001:db8:1:2::2"))
    assert one.status == two.status == 101
    for c in held + [one, two]:
        c.close()
