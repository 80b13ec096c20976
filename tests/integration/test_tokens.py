"""Token verification, end to end through `rlsworker token verify`.

A catalogue of good and bad tokens, all minted here with throw-away keys
(PyJWT where it can express the token, hand-built segments where it cannot),
run in both modes: JWT_SECRET (HS256) and JWKS_URL (RS256/ES256, the key set
served by a local http.server on 127.0.0.1). Each bad token must be refused
with exactly the expected reason, and the token must never be echoed.
Needs no database.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_tokens.py
(binary from $RLSWORKER_BIN, default <repo>/build/rlsworker)
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("RLSWORKER_BIN", str(REPO / "build" / "rlsworker"))
SECRET = "s3cr3t-for-tests-" + "x" * 32          # 49 bytes
ISSUER = "https://issuer.test"
AUDIENCE = "rlsworker"

# ---------------------------------------------------------------- keys

RSA_A = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_ATTACKER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_WEAK = rsa.generate_private_key(public_exponent=65537, key_size=1024)
EC_A = ec.generate_private_key(ec.SECP256R1())
EC_384 = ec.generate_private_key(ec.SECP384R1())
RSA_A_PEM = RSA_A.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_b64(n: int, size: int = 0) -> str:
    size = size or (n.bit_length() + 7) // 8
    return b64(n.to_bytes(size, "big"))


def jwk(key, kid, **extra):
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        d = {"kty": "RSA", "n": int_b64(nums.n), "e": int_b64(nums.e)}
    else:
        nums = pub.public_numbers()
        size = (pub.curve.key_size + 7) // 8
        crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[pub.curve.name]
        d = {"kty": "EC", "crv": crv, "x": int_b64(nums.x, size), "y": int_b64(nums.y, size)}
    d["kid"] = kid
    d.update(extra)
    return d


def jwks_doc(*keys):
    return json.dumps({"keys": list(keys)}).encode()


BASE_JWKS = jwks_doc(
    jwk(RSA_A, "rsa-a", use="sig"),
    jwk(EC_A, "ec-a"),
    jwk(RSA_A, "rsa-a-alg", alg="RS256"),
    jwk(RSA_A, "rsa-ps256", alg="PS256"),
    jwk(RSA_A, "rsa-enc", use="enc"),
    jwk(RSA_WEAK, "rsa-weak"),
    jwk(EC_384, "ec-384"),
    {"kty": "oct", "kid": "oct-1", "k": b64(RSA_A_PEM)},
)

# ---------------------------------------------------------------- minting


def now():
    return int(time.time())


def claims(**over):
    c = {"sub": "user-1", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 300, "iat": now()}
    for k, v in over.items():
        if v is DROP:
            c.pop(k, None)
        else:
            c[k] = v
    return c


DROP = object()


def sign(alg, key, data: bytes) -> bytes:
    if alg == "HS256":
        return hmac.new(key if isinstance(key, bytes) else key.encode(), data,
                        hashlib.sha256).digest()
    if alg == "RS256":
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    raise ValueError(alg)


def raw(header, body, alg=None, key=None, sig=None):
    """Hand-built token; header/body are dicts or raw bytes."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    b = body if isinstance(body, bytes) else json.dumps(body).encode()
    signing_input = f"{b64(h)}.{b64(b)}"
    if sig is None:
        sig = sign(alg, key, signing_input.encode()) if alg else b""
    return f"{signing_input}.{b64(sig)}"


def hs(body=None, header=None, key=SECRET):
    return raw(header or {"alg": "HS256", "typ": "JWT"}, body or claims(), "HS256", key)


def rs(body=None, kid="rsa-a", key=RSA_A, header=None):
    h = header or {"alg": "RS256", "typ": "JWT", "kid": kid}
    return raw(h, body or claims(), "RS256", key)


def es(body=None, kid="ec-a", key=EC_A, header=None):
    h = header or {"alg": "ES256", "kid": kid}
    return raw(h, body or claims(), "ES256", key)


def with_char_in_sig(make, chars="-_"):
    """A token whose signature segment holds one of chars (varying a nonce)."""
    for i in range(200):
        t = make(claims(nonce=i))
        if any(c in t.rsplit(".", 1)[1] for c in chars):
            return t
    raise AssertionError("no signature with the wanted characters")


def to_std_b64(token):
    head, sig = token.rsplit(".", 1)
    return head + "." + sig.replace("-", "+").replace("_", "/")


def non_canonical(token):
    """Sets the unused trailing bits of the signature's last character."""
    head, sig = token.rsplit(".", 1)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    v = alphabet.index(sig[-1])
    assert len(sig) % 4 in (2, 3)
    return head + "." + sig[:-1] + alphabet[v | 1]


def pyjwt_hs(payload, **kw):
    return jwt.encode(payload, SECRET, algorithm="HS256", **kw)


# ---------------------------------------------------------------- JWKS server


class JwksServer:
    def __init__(self):
        self.body = BASE_JWKS
        self.status = 200
        self.delay = 0.0
        self.hits = {}
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                state.hits[self.path] = state.hits.get(self.path, 0) + 1
                if state.delay:
                    time.sleep(state.delay)
                body = state.body if self.path == "/jwks.json" else b"{}"
                try:
                    self.send_response(state.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def reset(self):
        self.body, self.status, self.delay, self.hits = BASE_JWKS, 200, 0.0, {}


@pytest.fixture(scope="module")
def server():
    s = JwksServer()
    yield s
    s.httpd.shutdown()


@pytest.fixture
def jwks(server):
    server.reset()
    yield server
    server.reset()


# ---------------------------------------------------------------- running


def base_env(**env):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("JWT_", "JWKS_", "RLSWORKER_"))}
    e.update({k: v for k, v in env.items() if v is not None})
    return e


def secret_env(**over):
    return base_env(JWT_SECRET=SECRET, JWT_ISSUER=ISSUER, JWT_AUDIENCE=AUDIENCE, **over)


def jwks_env(url, **over):
    return base_env(JWKS_URL=url, JWT_ISSUER=ISSUER, JWT_AUDIENCE=AUDIENCE, **over)


def verify(token, env, *flags, timeout=20):
    return subprocess.run([BIN, "token", "verify", token, *flags], env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_rejected(p, reason, token):
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip().splitlines()[-1] == f"rlsworker: token rejected: {reason}", p.stderr
    assert p.stdout == ""
    for part in token.split("."):   # never echoed, not even in part
        if len(part) >= 16:
            assert part[:16] not in p.stderr


def assert_accepted(p, sub="user-1"):
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert json.loads(p.stdout)["sub"] == sub


# ---------------------------------------------------------------- secret mode

SECRET_GOOD = {
    "plain": lambda: hs(),
    "pyjwt": lambda: pyjwt_hs(claims()),
    "aud array": lambda: hs(claims(aud=["other", AUDIENCE])),
    "nbf iat past": lambda: hs(claims(nbf=now() - 60, iat=now() - 60)),
    "exp within leeway": lambda: hs(claims(exp=now() - 10)),
    "nbf within leeway": lambda: hs(claims(nbf=now() + 10)),
    "no typ, kid ignored": lambda: hs(header={"alg": "HS256", "kid": "whatever"}),
    "sub 255 bytes": lambda: hs(claims(sub="u" * 255)),
}


@pytest.mark.parametrize("name", SECRET_GOOD)
def test_secret_good(name):
    sub = "u" * 255 if name == "sub 255 bytes" else "user-1"
    assert_accepted(verify(SECRET_GOOD[name](), secret_env()), sub)


H = {"alg": "HS256", "typ": "JWT"}
BIG = "x" * 8200

SECRET_BAD = {
    # algorithm
    "alg none": (lambda: raw({"alg": "none"}, claims()), "algorithm not allowed"),
    "alg None": (lambda: raw({"alg": "None"}, claims()), "algorithm not allowed"),
    "alg none signed": (lambda: raw({"alg": "none"}, claims(), "HS256", SECRET),
                        "algorithm not allowed"),
    "alg hs256 lower case": (lambda: raw({"alg": "hs256"}, claims(), "HS256", SECRET),
                             "algorithm not allowed"),
    "alg missing": (lambda: raw({"typ": "JWT"}, claims(), "HS256", SECRET),
                    "algorithm not allowed"),
    "alg HS512": (lambda: jwt.encode(claims(), SECRET, algorithm="HS512"),
                  "algorithm not allowed"),
    "RS256 in secret mode": (lambda: rs(), "algorithm not allowed"),
    # signature
    "empty signature": (lambda: hs().rsplit(".", 1)[0] + ".", "bad signature"),
    "wrong secret": (lambda: hs(key="another-secret-that-is-long-enough-000"),
                     "bad signature"),
    "tampered claims": (lambda: (lambda t: t[0] + "." + b64(json.dumps(claims(sub="admin")).encode())
                                 + "." + t[2])(hs().split(".")), "bad signature"),
    "short signature": (lambda: (lambda t: t[0] + "." + t[1] + "." + b64(
        base64.urlsafe_b64decode(t[2] + "==")[:31]))(hs().split(".")), "bad signature"),
    # token shape
    "too large": (lambda: hs(claims(pad=BIG)), "token too large"),
    "four segments": (lambda: hs() + ".abc", "malformed"),
    "two segments": (lambda: hs().rsplit(".", 1)[0], "malformed"),
    "empty header segment": (lambda: "." + hs().split(".", 1)[1], "malformed"),
    "padding": (lambda: hs() + "=", "malformed"),
    "std base64 +/": (lambda: to_std_b64(with_char_in_sig(hs)), "malformed"),
    "trailing space": (lambda: hs() + " ", "malformed"),
    "leading space": (lambda: " " + hs(), "malformed"),
    "newline inside": (lambda: hs().replace(".", ".\n", 1), "malformed"),
    "non-canonical base64": (lambda: non_canonical(hs()), "malformed"),
    "bearer prefix": (lambda: "Bearer " + hs(), "malformed"),
    # header
    "header not json": (lambda: raw(b"{alg:HS256}", claims(), "HS256", SECRET), "bad header"),
    "header array": (lambda: raw(b'["HS256"]', claims(), "HS256", SECRET), "bad header"),
    "header duplicate alg": (lambda: raw(b'{"alg":"none","alg":"HS256"}', claims(), "HS256",
                                         SECRET), "bad header"),
    "typ not JWT": (lambda: hs(header={"alg": "HS256", "typ": "at+jwt"}), "bad header"),
    "typ lower case": (lambda: hs(header={"alg": "HS256", "typ": "jwt"}), "bad header"),
    "crit": (lambda: hs(header={"alg": "HS256", "crit": ["exp"], "exp": 1}), "unsupported crit"),
    # claims syntax
    "claims array": (lambda: raw(H, b'[{"sub":"user-1"}]', "HS256", SECRET), "bad claims"),
    "claims duplicate sub": (lambda: raw(H, ('{"sub":"user-1","sub":"admin","exp":%d}'
                                            % (now() + 300)).encode(), "HS256", SECRET),
                             "bad claims"),
    "claims invalid utf-8": (lambda: raw(H, b'{"sub":"user-1","name":"\xff\xfe","exp":%d}'
                                         % (now() + 300), "HS256", SECRET), "bad claims"),
    "claims trailing data": (lambda: raw(H, json.dumps(claims()).encode() + b"{}", "HS256",
                                         SECRET), "bad claims"),
    "claims NUL in a string": (lambda: hs(claims(name="a\u0000b")), "bad claims"),
    "claims too large": (lambda: hs(claims(pad="p" * 5000)), "claims too large"),
    # time claims
    "exp missing": (lambda: hs(claims(exp=DROP)), "missing exp"),
    "exp string": (lambda: hs(claims(exp=str(now() + 300))), "bad time claim"),
    "exp float": (lambda: hs(claims(exp=now() + 300.5)), "bad time claim"),
    "exp bool": (lambda: hs(claims(exp=True)), "bad time claim"),
    "nbf string": (lambda: hs(claims(nbf="0")), "bad time claim"),
    "iat float": (lambda: hs(claims(iat=1.5)), "bad time claim"),
    "expired": (lambda: hs(claims(exp=now() - 60)), "expired"),
    "expired long ago": (lambda: pyjwt_hs(claims(exp=1)), "expired"),
    "nbf future": (lambda: hs(claims(nbf=now() + 120)), "not yet valid"),
    "iat future": (lambda: hs(claims(iat=now() + 120)), "issued in the future"),
    # issuer, audience, subject
    "iss wrong": (lambda: hs(claims(iss="https://evil.test")), "bad issuer"),
    "iss case": (lambda: hs(claims(iss=ISSUER.upper())), "bad issuer"),
    "iss missing": (lambda: hs(claims(iss=DROP)), "bad issuer"),
    "iss array": (lambda: hs(claims(iss=[ISSUER])), "bad issuer"),
    "aud wrong": (lambda: hs(claims(aud="other")), "bad audience"),
    "aud case": (lambda: hs(claims(aud="RLSWORKER")), "bad audience"),
    "aud missing": (lambda: hs(claims(aud=DROP)), "bad audience"),
    "aud empty array": (lambda: hs(claims(aud=[])), "bad audience"),
    "aud array non-string": (lambda: hs(claims(aud=[AUDIENCE, 7])), "bad audience"),
    "aud array without it": (lambda: hs(claims(aud=["a", "b"])), "bad audience"),
    "sub missing": (lambda: hs(claims(sub=DROP)), "bad subject"),
    "sub empty": (lambda: hs(claims(sub="")), "bad subject"),
    "sub 256 bytes": (lambda: hs(claims(sub="u" * 256)), "bad subject"),
    "sub NUL": (lambda: hs(claims(sub="user-1\u0000admin")), "bad subject"),
    "sub number": (lambda: hs(claims(sub=42)), "bad subject"),
}


@pytest.mark.parametrize("name", SECRET_BAD)
def test_secret_bad(name):
    make, reason = SECRET_BAD[name]
    token = make()
    env = secret_env(RLSWORKER_CLAIMS_MAX_BYTES="4096")
    assert_rejected(verify(token, env), reason, token)


def test_secret_good_token_passes_the_same_checks():
    """Guards the catalogue: the base token of most bad cases is accepted."""
    assert_accepted(verify(hs(claims(nonce=1)), secret_env()))


def test_no_issuer_or_audience_configured():
    t = hs(claims(iss=DROP, aud=DROP))
    assert_accepted(verify(t, base_env(JWT_SECRET=SECRET)))


def test_leeway_is_configurable():
    t = hs(claims(exp=now() - 10))
    assert_rejected(verify(t, secret_env(), "--jwt-leeway", "0"), "expired", t)


# ---------------------------------------------------------------- JWKS mode

JWKS_GOOD = {
    "RS256": lambda: rs(),
    "RS256 pyjwt": lambda: jwt.encode(claims(), RSA_A, algorithm="RS256",
                                      headers={"kid": "rsa-a"}),
    "RS256 key alg RS256": lambda: rs(kid="rsa-a-alg"),
    "ES256": lambda: es(),
    "ES256 pyjwt": lambda: jwt.encode(claims(), EC_A, algorithm="ES256",
                                      headers={"kid": "ec-a"}),
}


@pytest.mark.parametrize("name", JWKS_GOOD)
def test_jwks_good(jwks, name):
    assert_accepted(verify(JWKS_GOOD[name](), jwks_env(jwks.url)))


def es_der(kid="ec-a"):
    h = {"alg": "ES256", "kid": kid}
    si = f"{b64(json.dumps(h).encode())}.{b64(json.dumps(claims()).encode())}"
    return si + "." + b64(EC_A.sign(si.encode(), ec.ECDSA(hashes.SHA256())))


JWKS_BAD = {
    "algorithm confusion HS256 with RSA PEM": (
        lambda: raw({"alg": "HS256", "kid": "rsa-a"}, claims(), "HS256", RSA_A_PEM),
        "algorithm not allowed"),
    "HS256 naming an oct JWK": (
        lambda: raw({"alg": "HS256", "kid": "oct-1"}, claims(), "HS256", RSA_A_PEM),
        "algorithm not allowed"),
    "alg none": (lambda: raw({"alg": "none", "kid": "rsa-a"}, claims()), "algorithm not allowed"),
    "alg None": (lambda: raw({"alg": "None", "kid": "rsa-a"}, claims()), "algorithm not allowed"),
    "alg rs256 lower case": (lambda: rs(header={"alg": "rs256", "kid": "rsa-a"}),
                             "algorithm not allowed"),
    "alg RS384": (lambda: jwt.encode(claims(), RSA_A, algorithm="RS384",
                                     headers={"kid": "rsa-a"}), "algorithm not allowed"),
    "alg PS256": (lambda: jwt.encode(claims(), RSA_A, algorithm="PS256",
                                     headers={"kid": "rsa-a"}), "algorithm not allowed"),
    "kid missing": (lambda: rs(header={"alg": "RS256"}), "missing kid"),
    "kid number": (lambda: rs(header={"alg": "RS256", "kid": 1}), "missing kid"),
    "kid unknown": (lambda: rs(kid="nope"), "unknown kid"),
    "kid of a skipped oct key": (lambda: rs(kid="oct-1"), "unknown kid"),
    "RS256 with an EC key": (lambda: rs(kid="ec-a"), "key mismatch"),
    "ES256 with an RSA key": (lambda: es(kid="rsa-a"), "key mismatch"),
    "ES256 with a P-384 key": (lambda: es(kid="ec-384", key=EC_384), "key mismatch"),
    "JWK alg PS256 for RS256": (lambda: rs(kid="rsa-ps256"), "key mismatch"),
    "JWK use enc": (lambda: rs(kid="rsa-enc"), "key mismatch"),
    "RSA 1024-bit key": (lambda: rs(kid="rsa-weak", key=RSA_WEAK), "weak key"),
    "ES256 DER signature": (lambda: es_der(), "bad signature"),
    "ES256 empty signature": (lambda: es().rsplit(".", 1)[0] + ".", "bad signature"),
    "RS256 empty signature": (lambda: rs().rsplit(".", 1)[0] + ".", "bad signature"),
    "RS256 attacker key": (lambda: rs(key=RSA_ATTACKER), "bad signature"),
    "embedded jwk header": (
        lambda: rs(key=RSA_ATTACKER, header={"alg": "RS256", "kid": "rsa-a",
                                             "jwk": jwk(RSA_ATTACKER, "rsa-a")}),
        "bad signature"),
    "x5u and jku headers": (
        lambda: rs(key=RSA_ATTACKER, header={"alg": "RS256", "kid": "evil",
                                             "jku": "http://127.0.0.1:9/evil.json",
                                             "x5u": "http://127.0.0.1:9/evil.pem"}),
        "unknown kid"),
    "ES256 tampered": (lambda: (lambda t: t[0] + "." + b64(json.dumps(claims(sub="admin")).encode())
                                + "." + t[2])(es().split(".")), "bad signature"),
    "expired ES256": (lambda: es(claims(exp=now() - 100)), "expired"),
    "RS256 wrong audience": (lambda: rs(claims(aud="other")), "bad audience"),
    "crit": (lambda: rs(header={"alg": "RS256", "kid": "rsa-a", "crit": ["b64"], "b64": False}),
             "unsupported crit"),
}


@pytest.mark.parametrize("name", JWKS_BAD)
def test_jwks_bad(jwks, name):
    make, reason = JWKS_BAD[name]
    token = make()
    assert_rejected(verify(token, jwks_env(jwks.url)), reason, token)


def test_catalogue_size():
    assert len(SECRET_BAD) + len(JWKS_BAD) >= 40


# ---------------------------------------------------------------- JWKS fetching


class Session:
    """One `token verify -` process: tokens in, one JSON line out each."""

    def __init__(self, env, *flags):
        self.p = subprocess.Popen([BIN, "token", "verify", "-", "--json", *flags], env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)

    def check(self, token):
        self.p.stdin.write(token + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        assert line, self.p.stderr.read()
        out = json.loads(line)
        return "ok" if out["valid"] else out["reason"]

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)
        return self.p.stderr.read()


def test_jwks_refresh_rate_limit_and_last_good_set(jwks):
    """Unknown kid → one refetch per interval; a failed refetch keeps the set."""
    s = Session(jwks_env(jwks.url), "--jwks-refresh-interval", "2")
    try:
        jwks.body = jwks_doc(jwk(RSA_A, "k1"))
        assert s.check(rs(kid="k1")) == "ok"
        assert jwks.hits["/jwks.json"] == 1
        # a new key appears, but the last fetch was just now: rate-limited
        jwks.body = jwks_doc(jwk(RSA_A, "k1"), jwk(EC_A, "k2"))
        assert s.check(es(kid="k2")) == "unknown kid"
        assert jwks.hits["/jwks.json"] == 1
        time.sleep(2.2)
        assert s.check(es(kid="k2")) == "ok"            # refetched on unknown kid
        assert jwks.hits["/jwks.json"] == 2
        assert s.check(rs(kid="k3")) == "unknown kid"   # within the interval again
        assert jwks.hits["/jwks.json"] == 2
        # the endpoint breaks: the refetch fails, the last good set stays
        jwks.status = 500
        time.sleep(2.2)
        assert s.check(rs(kid="k3")) == "unknown kid"
        assert jwks.hits["/jwks.json"] == 3
        assert s.check(rs(kid="k1")) == "ok"
        assert s.check(es(kid="k2")) == "ok"
        jwks.status, jwks.body = 200, b"not json"
        time.sleep(2.2)
        assert s.check(rs(kid="k4")) == "unknown kid"
        assert jwks.hits["/jwks.json"] == 4
        assert s.check(rs(kid="k1")) == "ok"
        assert jwks.hits["/jwks.json"] == 4
    finally:
        err = s.close()
    assert "keeping the last good key set" in err


def test_jwks_unreachable_at_start(jwks):
    jwks.status = 503
    t = rs()
    assert_rejected(verify(t, jwks_env(jwks.url)), "keys unavailable", t)


def test_jwks_too_large(jwks):
    jwks.body = BASE_JWKS + b" " * 4096
    t = rs()
    p = verify(t, jwks_env(jwks.url), "--http-max-response", "4096")
    assert_rejected(p, "keys unavailable", t)
    assert "larger than 4096 bytes" in p.stderr


def test_jwks_timeout(jwks):
    jwks.delay = 4
    t = rs()
    started = time.monotonic()
    p = verify(t, jwks_env(jwks.url), "--jwks-timeout", "1")
    assert time.monotonic() - started < 3.5
    assert_rejected(p, "keys unavailable", t)


def test_jwks_no_redirect(jwks):
    jwks.status = 302
    t = rs()
    assert_rejected(verify(t, jwks_env(jwks.url)), "keys unavailable", t)


def test_jwks_never_fetches_jku(jwks):
    t = rs(key=RSA_ATTACKER, header={"alg": "RS256", "kid": "evil",
                                     "jku": jwks.url.replace("jwks.json", "evil.json")})
    assert_rejected(verify(t, jwks_env(jwks.url)), "unknown kid", t)
    assert "/evil.json" not in jwks.hits


# ---------------------------------------------------------------- configuration and usage


def test_no_mode_configured():
    p = verify(hs(), base_env())
    assert p.returncode == 1
    assert "JWKS_URL" in p.stderr and "JWT_SECRET" in p.stderr


def test_both_modes_refused(jwks):
    p = verify(hs(), base_env(JWT_SECRET=SECRET, JWKS_URL=jwks.url))
    assert p.returncode == 1
    assert "both JWKS_URL and JWT_SECRET" in p.stderr


def test_short_secret_refused():
    p = verify(hs(key="x" * 31), base_env(JWT_SECRET="x" * 31))
    assert p.returncode == 1
    assert "JWT_SECRET is 31 bytes" in p.stderr


def test_secret_flag_works():
    p = verify(hs(claims(iss=DROP, aud=DROP)), base_env(), "--jwt-secret", SECRET)
    assert_accepted(p)


@pytest.mark.parametrize("url", ["http://example.com/jwks.json", "ftp://127.0.0.1/jwks",
                                 "not a url"])
def test_jwks_url_must_be_https_or_loopback(url):
    p = verify(rs(), base_env(JWKS_URL=url))
    assert p.returncode == 1
    assert "JWKS_URL" in p.stderr


def test_usage_errors():
    assert subprocess.run([BIN, "token"], env=secret_env(), capture_output=True).returncode == 2
    assert subprocess.run([BIN, "token", "verify"], env=secret_env(),
                          capture_output=True).returncode == 2
    assert subprocess.run([BIN, "token", "verify", "a", "b"], env=secret_env(),
                          capture_output=True).returncode == 2
    assert subprocess.run([BIN, "token", "verify", hs(), "--bogus"], env=secret_env(),
                          capture_output=True).returncode == 2
    p = subprocess.run([BIN, "token", "verify", "-"], env=secret_env(), input="",
                       capture_output=True, text=True)
    assert p.returncode == 2


def test_stdin_token_and_json_output():
    t = hs()
    p = subprocess.run([BIN, "token", "verify", "-", "--json"], env=secret_env(),
                       input=t + "\n", capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["valid"] is True and out["claims"]["sub"] == "user-1"
    assert abs(out["verified_at"] - now()) < 5


def test_stdin_several_tokens_one_bad():
    p = subprocess.run([BIN, "token", "verify", "-", "--json"], env=secret_env(),
                       input=f"{hs()}\n{hs(claims(exp=1))}\n", capture_output=True, text=True)
    assert p.returncode == 1
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert [x["valid"] for x in lines] == [True, False]
    assert lines[1]["reason"] == "expired"


def test_stdin_oversized_line():
    p = subprocess.run([BIN, "token", "verify", "-"], env=secret_env(),
                       input="a" * 20000 + "\n", capture_output=True, text=True)
    assert p.returncode == 1
    assert "token rejected: token too large" in p.stderr
