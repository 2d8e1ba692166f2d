"""Key sets an EHR publishes (``jwks_url``) and the ``jku`` header of CDS Hooks JWTs.

A small HTTP server on this machine plays the EHR's key-set address; the
verifier fetches from it only addresses it is configured to trust.
"""

from __future__ import annotations

import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from engine.service.jwt_auth import JwtConfigError, JwtRejected, JwtVerifier, parse_settings

EHR = "https://ehr.example.org"
AUD = "https://pathways.example.org/cds-services/ltc-pyramid"


class KeySets:
    """What the EHR's address serves (changed by the tests: key rotation), and how often it was asked."""

    def __init__(self):
        self.body = b'{"keys": []}'
        self.requests = 0


def _jwk(key, kid: str) -> dict:
    public = orjson.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid, "alg": "ES384", "use": "sig"}


@pytest.fixture(scope="module")
def ehr():
    served = KeySets()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            served.requests += 1
            if self.path != "/jwks.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(served.body)

        def log_message(self, *args):  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    yield served
    server.shutdown()


def _verifier(table: dict, refetch_after_seconds: float = 30) -> JwtVerifier:
    return JwtVerifier(parse_settings({"audience": [AUD], "issuers": {"ehr": {"iss": EHR, **table}}},
                                      "service.toml", Path(".")), refetch_after_seconds=refetch_after_seconds)


def _token(key, kid: str, jku: str | None = None, **claims) -> str:
    now = int(time.time())
    body = {"iss": EHR, "sub": "ehr-client", "aud": AUD, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()),
            **claims}
    headers = {"kid": kid, **({"jku": jku} if jku else {})}
    return jwt.encode(body, key, algorithm="ES384", headers=headers)


def test_a_jwt_is_checked_against_the_key_set_the_issuer_publishes(ehr):
    key = ec.generate_private_key(ec.SECP384R1())
    ehr.body = orjson.dumps({"keys": [_jwk(key, "k1")]})
    verifier = _verifier({"jwks_url": ehr.url})
    assert verifier.who(_token(key, "k1")) == "ehr"  # no jku: the issuer's first address
    assert verifier.who(_token(key, "k1", jku=ehr.url)) == "ehr"  # jku: one of its addresses
    stranger = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(JwtRejected, match="signature does not match issuer 'ehr'"):
        verifier.who(_token(stranger, "k1"))


def test_a_rotated_key_is_fetched_again_and_an_unknown_one_refused(ehr):
    old, new = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    ehr.body = orjson.dumps({"keys": [_jwk(old, "2024")]})
    verifier = _verifier({"jwks_url": [ehr.url]}, refetch_after_seconds=0)
    assert verifier.who(_token(old, "2024")) == "ehr"
    before = ehr.requests
    assert verifier.who(_token(old, "2024")) == "ehr"
    assert ehr.requests == before  # kept, not fetched for every request
    ehr.body = orjson.dumps({"keys": [_jwk(old, "2024"), _jwk(new, "2025")]})
    assert verifier.who(_token(new, "2025")) == "ehr"  # a key id it has not seen: fetched again
    with pytest.raises(JwtRejected, match="not among issuer 'ehr''s published keys"):
        verifier.who(_token(new, "1999"))


def test_made_up_key_ids_do_not_send_the_service_back_to_the_ehr_every_time(ehr):
    key = ec.generate_private_key(ec.SECP384R1())
    ehr.body = orjson.dumps({"keys": [_jwk(key, "k1")]})
    verifier = _verifier({"jwks_url": ehr.url})  # the default: at most every 30 seconds
    assert verifier.who(_token(key, "k1")) == "ehr"
    before = ehr.requests
    for n in range(5):
        with pytest.raises(JwtRejected, match="not among issuer 'ehr''s published keys"):
            verifier.who(_token(key, f"made-up-{n}"))
    assert ehr.requests - before <= 1


def test_a_jku_the_service_does_not_trust_is_never_fetched(ehr):
    key = ec.generate_private_key(ec.SECP384R1())
    ehr.body = orjson.dumps({"keys": [_jwk(key, "k1")]})
    verifier = _verifier({"jwks_url": ehr.url})
    before = ehr.requests
    elsewhere = ehr.url.replace("/jwks.json", "/attacker-keys.json")
    with pytest.raises(JwtRejected, match=r"key set address \(jku\) is not one this service"):
        verifier.who(_token(key, "k1", jku=elsewhere))
    assert ehr.requests == before


def test_an_address_that_does_not_answer_is_a_plain_refusal():
    key = ec.generate_private_key(ec.SECP384R1())
    verifier = _verifier({"jwks_url": "http://127.0.0.1:9/jwks.json"})  # the discard port: nothing listens
    with pytest.raises(JwtRejected, match="key set could not be fetched from http://127.0.0.1:9/jwks.json"):
        verifier.who(_token(key, "k1"))


def test_key_files_and_published_keys_together(ehr, tmp_path):
    """Keys from a file answer first; a key id the file lacks is looked up at the published address."""
    local, published = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    (tmp_path / "ehr.json").write_bytes(orjson.dumps({"keys": [_jwk(local, "file-1")]}))
    ehr.body = orjson.dumps({"keys": [_jwk(published, "web-1")]})
    verifier = JwtVerifier(parse_settings({"audience": [AUD], "issuers": {"ehr": {
        "iss": EHR, "jwks": "ehr.json", "jwks_url": ehr.url}}}, "service.toml", tmp_path))
    assert verifier.who(_token(local, "file-1")) == "ehr"
    assert verifier.who(_token(published, "web-1")) == "ehr"


@pytest.mark.parametrize("value, message", [
    ("http://ehr.example.org/jwks.json", "must be an https:// address"),
    (["https://ehr.example.org/jwks.json", 3], "a URL or a list of URLs"),
])
def test_bad_jwks_urls_are_configuration_errors(value, message):
    with pytest.raises(JwtConfigError, match=message):
        _verifier({"jwks_url": value})
    with pytest.raises(JwtConfigError, match=r"jwks = \"FILE\", pem = \[\"FILE\"\] or jwks_url"):
        _verifier({})
