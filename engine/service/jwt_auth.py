"""JWT authentication as in the CDS Hooks security section.

The EHR signs a short-lived JWT with its private key and sends it as
``Authorization: Bearer <jwt>``. The service checks, with PyJWT:

* the issuer (``iss``) is configured, with its public keys (a JWKS file or PEM files);
* the signature, against those keys only (an asymmetric algorithm: RS*, PS*, ES*, EdDSA;
  ``none`` and shared-secret HS* are refused, so a public key can never be used as a secret);
* the audience (``aud``) is this service's URL;
* ``exp`` and ``iat`` (with a small leeway for clock skew) and that the token does not
  live longer than ``max_lifetime_seconds``;
* ``sub`` and ``jti`` are present, and the ``jti`` was not used before (a replay).

Configuration (``service.toml``)::

    [jwt]
    audience = ["https://pathways.example.org/cds-services/ltc-pyramid"]
    leeway_seconds = 30
    max_lifetime_seconds = 3600

    [jwt.issuers.ehr]                 # "ehr" is the name logs and the audit log show
    iss = "https://ehr.example.org"
    jwks = "keys/ehr-jwks.json"       # or: pem = ["keys/ehr-public.pem"]
    jwks_url = ["https://ehr.example.org/.well-known/jwks.json"]   # and/or: keys the EHR publishes

``jwks_url`` lists where the issuer publishes its key set. CDS Hooks lets a
JWT name its key set in the ``jku`` header; the service follows a ``jku``
only when it is one of these URLs (an allow-list: a token can never send
the service to a key set of its own choosing), and a JWT without ``jku``
from an issuer with no key files is checked against the first URL. Key sets
are fetched with PyJWT's ``PyJWKClient``, kept for five minutes and fetched
again when a JWT names a key id they do not have (key rotation; at most once
every 30 seconds, so made-up key ids cannot make the service hammer the EHR).

The wall clock is read here, for expiry: that is security, not evaluation,
which never reads it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import orjson

ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class JwtConfigError(Exception):
    """The [jwt] configuration cannot be used; the message names the setting or file."""


class JwtRejected(Exception):
    """A JWT was refused; the message says why, in plain words (never quoting the token)."""


@dataclass(frozen=True)
class Issuer:
    name: str  # what logs and the audit log show
    iss: str
    keys: tuple = field(repr=False)  # (kid or None, key object), from files
    urls: tuple[str, ...] = ()  # where the issuer publishes its key set (the jku allow-list)


@dataclass(frozen=True)
class JwtSettings:
    issuers: tuple[Issuer, ...] = ()
    audience: tuple[str, ...] = ()
    leeway_seconds: int = 30
    max_lifetime_seconds: int = 3600


def looks_like_jwt(token: str) -> bool:
    """Three base64url parts separated by dots (an opaque bearer token has none)."""
    return token.count(".") == 2 and all(token.split("."))


def parse_settings(table: dict, where: str, base: Path, public_url: str = "") -> JwtSettings:
    """[jwt] of the configuration file; key files are read now, relative to ``base``."""
    known = {"issuers", "audience", "leeway_seconds", "max_lifetime_seconds"}
    unknown = set(table) - known
    if unknown:
        raise JwtConfigError(f"{where} [jwt]: no setting {', '.join(sorted(unknown))}; the settings are "
                             f"{', '.join(sorted(known))}")
    audience = table.get("audience", [])
    if isinstance(audience, str):
        audience = [audience]
    if not isinstance(audience, list) or not all(isinstance(a, str) and a for a in audience):
        raise JwtConfigError(f"{where} [jwt] audience must be a list of URLs")
    if not audience and public_url:
        # CDS Hooks: aud is the service's endpoint; accept the base address and the hook's URL
        base_url = public_url.rstrip("/")
        audience = [base_url, f"{base_url}/cds-services/ltc-pyramid", f"{base_url}/evaluate"]
    numbers = {}
    for key, default in (("leeway_seconds", 30), ("max_lifetime_seconds", 3600)):
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise JwtConfigError(f"{where} [jwt] {key} must be a whole number of seconds, not {value!r}")
        numbers[key] = value
    issuers = []
    for name, spec in (table.get("issuers") or {}).items():
        issuers.append(_issuer(name, spec, f"{where} [jwt.issuers.{name}]", base))
    if issuers and not audience:
        raise JwtConfigError(f"{where} [jwt]: set audience (this service's URL, as the EHR puts it in `aud`) "
                             "or [service] public_url")
    return JwtSettings(tuple(issuers), tuple(audience), **numbers)


def _issuer(name: str, spec, where: str, base: Path) -> Issuer:
    if not isinstance(spec, dict):
        raise JwtConfigError(f"{where} must be a table with iss and jwks or pem")
    unknown = set(spec) - {"iss", "jwks", "pem", "jwks_url"}
    if unknown:
        raise JwtConfigError(f"{where}: no setting {', '.join(sorted(unknown))}; the settings are iss, jwks, pem, "
                             "jwks_url")
    iss = spec.get("iss")
    if not isinstance(iss, str) or not iss:
        raise JwtConfigError(f"{where}: iss (the issuer, as the EHR writes it in its JWTs) is required")
    keys: list = []
    if "jwks" in spec:
        path = _path(spec["jwks"], base, where, "jwks")
        try:
            data = orjson.loads(path.read_bytes())
            keyset = jwt.PyJWKSet.from_dict(data)
        except OSError as exc:
            raise JwtConfigError(f"{where}: cannot read the JWKS file {path}: {exc.strerror or exc}") from None
        except (orjson.JSONDecodeError, jwt.PyJWKSetError, jwt.InvalidKeyError, TypeError) as exc:
            raise JwtConfigError(f"{where}: {path} is not a usable JWKS (a JSON key set): {exc}") from None
        for k in keyset.keys:
            if k.algorithm_name not in ASYMMETRIC:
                raise JwtConfigError(f"{where}: {path}: key {k.key_id or '(no kid)'} uses {k.algorithm_name}; "
                                     "only public-key algorithms are accepted")
            keys.append((k.key_id, k.key))
    pems = spec.get("pem", [])
    for item in [pems] if isinstance(pems, str) else pems:
        path = _path(item, base, where, "pem")
        try:
            from cryptography.hazmat.primitives.serialization import load_pem_public_key
            keys.append((None, load_pem_public_key(path.read_bytes())))
        except OSError as exc:
            raise JwtConfigError(f"{where}: cannot read the PEM file {path}: {exc.strerror or exc}") from None
        except ValueError:
            raise JwtConfigError(f"{where}: {path} is not a PEM public key") from None
    urls = spec.get("jwks_url", [])
    urls = [urls] if isinstance(urls, str) else urls
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise JwtConfigError(f"{where}: jwks_url must be a URL or a list of URLs")
    for url in urls:
        if not _secure(url):
            raise JwtConfigError(f"{where}: jwks_url {url!r} must be an https:// address (plain http only "
                                 "on this machine: localhost or 127.0.0.1)")
    if not keys and not urls:
        raise JwtConfigError(f"{where}: give the issuer's public keys: jwks = \"FILE\", pem = [\"FILE\"] "
                             "or jwks_url = \"https://...\"")
    return Issuer(name, iss, tuple(keys), tuple(urls))


def _secure(url: str) -> bool:
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1")


def _path(value, base: Path, where: str, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise JwtConfigError(f"{where} {key} must be a file name")
    path = Path(value)
    return path if path.is_absolute() else base / path


class SeenIds:
    """JWT ids already accepted, until they expire: a second use is a replay.

    In one process a dictionary; with several worker processes an SQLite file
    they share (a primary key makes "insert if new" one atomic step)."""

    def __init__(self, path: str | Path | None = None):
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], float] = {}
        self._db = None
        if path:
            self._db = sqlite3.connect(str(path), timeout=5, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.execute("CREATE TABLE IF NOT EXISTS seen (iss TEXT, jti TEXT, exp REAL, PRIMARY KEY (iss, jti))")
        self._purged = 0.0

    def first_use(self, iss: str, jti: str, exp: float, now: float) -> bool:
        """Record ``jti``; False if it was already used (and has not yet expired)."""
        with self._lock:
            purge = now - self._purged > 60
            if purge:
                self._purged = now
            if self._db is None:
                if purge:
                    self._seen = {k: e for k, e in self._seen.items() if e >= now}
                if (iss, jti) in self._seen:
                    return False
                self._seen[(iss, jti)] = exp
                return True
            if purge:
                self._db.execute("DELETE FROM seen WHERE exp < ?", (now,))
            try:
                self._db.execute("INSERT INTO seen VALUES (?, ?, ?)", (iss, jti, exp))
            except sqlite3.IntegrityError:
                return False
            return True


class JwtVerifier:
    """Checks a CDS Hooks JWT; :meth:`who` gives the issuer's name or raises JwtRejected."""

    def __init__(self, settings: JwtSettings, seen: SeenIds | None = None, refetch_after_seconds: float = 30):
        self.settings = settings
        self.by_iss = {i.iss: i for i in settings.issuers}
        self.seen = seen or SeenIds()
        # a key id not in the key set sends the service back to the address at most this often,
        # so tokens with made-up key ids cannot make it hammer the EHR
        self.refetch_after_seconds = refetch_after_seconds
        self._clients: dict[str, jwt.PyJWKClient] = {}
        self._clients_lock = threading.Lock()

    def _published_keys(self, issuer: Issuer, url: str, kid) -> list:
        """The issuer's keys published at ``url`` (one of its configured ``jwks_url``), the one
        named ``kid`` if given; fetched, kept five minutes, fetched again for an unknown kid."""
        with self._clients_lock:
            client = self._clients.get(url)
            if client is None:
                client = self._clients[url] = jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=300, timeout=5,
                                                              cooldown_duration=self.refetch_after_seconds)
        try:
            found = [client.get_signing_key(kid)] if isinstance(kid, str) else client.get_signing_keys()
        except jwt.PyJWKClientConnectionError:
            raise JwtRejected(f"issuer {issuer.name!r}'s key set could not be fetched from {url}: "
                              "try again shortly") from None
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, jwt.InvalidKeyError):
            raise JwtRejected(f"the JWT names key {str(kid)[:60]!r}, which is not among issuer "
                              f"{issuer.name!r}'s published keys") from None
        return [k.key for k in found if k.algorithm_name in ASYMMETRIC]

    def _keys(self, issuer: Issuer, header: dict) -> list:
        kid = header.get("kid")
        jku = header.get("jku")
        if jku is not None:
            if not isinstance(jku, str) or jku not in issuer.urls:
                raise JwtRejected(f"the JWT's key set address (jku) is not one this service is configured to "
                                  f"trust for issuer {issuer.name!r}")
            return self._published_keys(issuer, jku, kid)
        keys = [k for k_id, k in issuer.keys if kid is None or k_id is None or k_id == kid]
        if not keys and issuer.urls and (not issuer.keys or kid is not None):
            return self._published_keys(issuer, issuer.urls[0], kid)
        if not keys:
            raise JwtRejected(f"the JWT names key {str(kid)[:60]!r}, which is not among issuer "
                              f"{issuer.name!r}'s configured keys")
        return keys

    def who(self, token: str, now: float | None = None) -> str:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise JwtRejected("the bearer token is neither a configured token nor a readable JWT") from None
        iss = unverified.get("iss")
        issuer = self.by_iss.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise JwtRejected("the JWT's issuer (iss) is not one this service is configured to trust")
        if header.get("alg") not in ASYMMETRIC:
            raise JwtRejected(f"the JWT is signed with {str(header.get('alg'))[:20]!r}; this service accepts "
                              "only public-key signatures (RS384 or ES384 in CDS Hooks)")
        keys = self._keys(issuer, header)
        if not keys:
            raise JwtRejected(f"issuer {issuer.name!r} publishes no public-key signing key this service accepts")
        claims = None
        for key in keys:
            try:
                claims = jwt.decode(token, key, algorithms=ASYMMETRIC, audience=list(self.settings.audience),
                                    issuer=issuer.iss, leeway=self.settings.leeway_seconds,
                                    options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]})
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise JwtRejected("the JWT has expired: ask the EHR for a new one") from None
            except jwt.InvalidAudienceError:
                raise JwtRejected("the JWT's audience (aud) is not this service's URL") from None
            except jwt.MissingRequiredClaimError as exc:
                raise JwtRejected(f"the JWT lacks the {exc.claim!r} claim (CDS Hooks needs iss, sub, aud, "
                                  "exp, iat and jti)") from None
            except jwt.ImmatureSignatureError:
                raise JwtRejected("the JWT was issued in the future (iat): check the EHR's clock") from None
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                raise JwtRejected(f"the JWT cannot be used: {type(exc).__name__}") from None
        if claims is None:
            raise JwtRejected(f"the JWT's signature does not match issuer {issuer.name!r}'s configured keys")
        now = time.time() if now is None else now
        exp, iat = claims["exp"], claims["iat"]
        if not isinstance(iat, (int, float)) or exp - iat > self.settings.max_lifetime_seconds:
            raise JwtRejected(f"the JWT lives longer than the {self.settings.max_lifetime_seconds} seconds "
                              "this service accepts (exp - iat)")
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise JwtRejected("the JWT's id (jti) must be a non-empty text")
        if not self.seen.first_use(issuer.iss, claims["jti"], exp + self.settings.leeway_seconds, now):
            raise JwtRejected("the JWT's id (jti) was already used: a replayed request is refused")
        return issuer.name
