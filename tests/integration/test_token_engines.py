"""Differential test of the two signature engines behind the same strict checks.

Every token of the catalogue in test_tokens.py (the bad ones and the good
ones, both modes) goes through `rlsworker token verify --engine libjwt` (what
the worker and the intake use) and `--engine openssl` (rlsworker's own
OpenSSL verifier, kept as a second implementation). Both must give the same
verdict: the same reason for a refused token, the same claims for an
accepted one, and that verdict must be the catalogue's. Needs no database.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_token_engines.py
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_tokens as cat  # noqa: E402  (the catalogue, minted with throw-away keys)

ENGINES = ("libjwt", "openssl")


@pytest.fixture(scope="module")
def jwks_url():
    s = cat.JwksServer()
    yield s.url
    s.httpd.shutdown()


def verdicts(engine, tokens, env):
    """One verdict per token: ("ok", claims) or ("refused", reason)."""
    batch = [t for t in tokens if "\n" not in t]
    p = subprocess.run([cat.BIN, "token", "verify", "-", "--json", "--engine", engine],
                       env=env, input="".join(t + "\n" for t in batch),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode in (0, 1), p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == len(batch), p.stderr
    by_token = dict(zip(batch, lines))
    out = []
    for t in tokens:
        if t not in by_token:           # a newline inside: pass it in argv
            q = cat.verify(t, env, "--json", "--engine", engine)
            by_token[t] = q.stdout.strip()
        v = json.loads(by_token[t])
        out.append(("ok", v["claims"]) if v["valid"] else ("refused", v["reason"]))
    return out


def catalogue(good, bad):
    """[(name, token, expected)] with expected "ok" or the reason."""
    rows = [(n, make(), "ok") for n, make in good.items()]
    rows += [(n, make(), reason) for n, (make, reason) in bad.items()]
    return rows


def summary(verdict):
    return "ok" if verdict[0] == "ok" else verdict[1]


def check_mode(rows, env):
    tokens = [t for _, t, _ in rows]
    results = {e: verdicts(e, tokens, env) for e in ENGINES}
    for i, (name, _, expected) in enumerate(rows):
        lj, ossl = results["libjwt"][i], results["openssl"][i]
        assert lj == ossl, f"{name}: libjwt says {summary(lj)}, openssl {summary(ossl)}"
        assert summary(lj) == expected, f"{name}: {summary(lj)} (expected {expected})"
    return results


def test_catalogue_is_complete():
    assert len(cat.SECRET_BAD) + len(cat.JWKS_BAD) == 86
    assert len(cat.SECRET_GOOD) + len(cat.JWKS_GOOD) == 13


def test_secret_mode_engines_agree():
    env = cat.secret_env(RLSWORKER_CLAIMS_MAX_BYTES="4096")
    results = check_mode(catalogue(cat.SECRET_GOOD, cat.SECRET_BAD), env)
    assert sum(v[0] == "ok" for v in results["libjwt"]) == len(cat.SECRET_GOOD)


def test_jwks_mode_engines_agree(jwks_url):
    env = cat.jwks_env(jwks_url)
    results = check_mode(catalogue(cat.JWKS_GOOD, cat.JWKS_BAD), env)
    assert sum(v[0] == "ok" for v in results["libjwt"]) == len(cat.JWKS_GOOD)


def test_binary_links_libjwt():
    p = subprocess.run(["ldd", cat.BIN], capture_output=True, text=True)
    assert "libjwt" in p.stdout, p.stdout


def test_engine_flag_is_checked():
    t = cat.hs()
    p = cat.verify(t, cat.secret_env(), "--engine", "none")
    assert p.returncode == 2
    assert "--engine takes" in p.stderr
    for engine in ENGINES:
        cat.assert_accepted(cat.verify(t, cat.secret_env(), "--engine", engine))
