"""Tokens for tests: HS256 with the standard library, RS256 and ES256 with
the openssl command line."""
import base64
import hashlib
import hmac
import json
import os
import subprocess


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_jwt(claims, secret, alg="HS256"):
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


# RS256 and ES256: keys and signatures made by the openssl command line at
# test time, so the server is checked against an independent implementation.

def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def new_key(directory, name, kind):
    """Makes a private key (kind "RSA" or "EC") and its public PEM; returns
    (private path, public path)."""
    priv, pub = os.path.join(directory, name + ".key"), os.path.join(directory, name + ".pub")
    opts = ["-pkeyopt", "rsa_keygen_bits:2048"] if kind == "RSA" else \
        ["-pkeyopt", "ec_paramgen_curve:P-256"]
    openssl("genpkey", "-algorithm", kind, *opts, "-out", priv)
    openssl("pkey", "-in", priv, "-pubout", "-out", pub)
    return priv, pub


def _der_to_raw(der):
    """An ECDSA DER signature (SEQUENCE of two INTEGERs) as r || s, 32 bytes
    each (RFC 7518 3.4)."""
    assert der[0] == 0x30
    at = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7f)
    out = b""
    for _ in range(2):
        assert der[at] == 0x02
        n = der[at + 1]
        out += der[at + 2:at + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        at += 2 + n
    return out


def sign_jwt(claims, key_path, alg, kid=None):
    head = {"alg": alg, "typ": "JWT"}
    if kid:
        head["kid"] = kid
    signing = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(claims).encode())}"
    sig = openssl("dgst", "-sha256", "-sign", key_path, data=signing.encode())
    if alg == "ES256":
        sig = _der_to_raw(sig)
    return f"{signing}.{b64url(sig)}"


def jwk(pub_path, kid):
    """The public key as a JWK (what an identity provider publishes)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    with open(pub_path, "rb") as f:
        key = load_pem_public_key(f.read())
    if isinstance(key, rsa.RSAPublicKey):
        nums = key.public_numbers()
        return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                "n": b64url(nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")),
                "e": b64url(nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big"))}
    assert isinstance(key, ec.EllipticCurvePublicKey)
    nums = key.public_numbers()
    return {"kty": "EC", "kid": kid, "crv": "P-256", "use": "sig", "alg": "ES256",
            "x": b64url(nums.x.to_bytes(32, "big")), "y": b64url(nums.y.to_bytes(32, "big"))}
