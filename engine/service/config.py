"""The service's configuration: a TOML file and the environment.

```toml
[tokens]                 # name = token; the name is what logs and the audit log show
gp_system = "a-long-random-secret"

[service]
admins = ["ops"]         # token names allowed to POST /admin/reload (default: every token)
card_protocol = "ltc_pyramid"   # the protocol behind the patient-view cards
card_outcome = "level"
require_as_of = false    # true: patient-view requests must say their as-of date
max_request_bytes = 5000000
request_seconds = 10
inline_bytes = 262144    # smaller bodies run on the event loop; larger in a thread cut off at the limit
public_url = ""          # the address clients reach the service at (for card links)
audit = ""               # an audit log to append every evaluation to
audit_fsync = false
reference = ""           # reference population(s) for ranked terms (pathways reference), or a list

[limits]                 # engine.limits.Limits
max_items_per_record = 50000

[jwt]                    # CDS Hooks JWTs (engine.service.jwt_auth), next to the tokens
audience = ["https://pathways.example.org/cds-services/ltc-pyramid"]
[jwt.issuers.ehr]
iss = "https://ehr.example.org"
jwks = "ehr-jwks.json"   # or pem = ["ehr-public.pem"]; relative to this file
```

``PATHWAYS_TOKENS="name:token,name2:token2"`` adds tokens (and wins on a name
in both). Tokens are never logged or echoed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..limits import LimitError, Limits
from .jwt_auth import JwtConfigError, JwtSettings, parse_settings


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why."""


@dataclass(frozen=True)
class ServiceConfig:
    tokens: dict[str, str] = field(default_factory=dict, repr=False)  # name -> token
    admins: tuple[str, ...] = ()
    card_protocol: str = "ltc_pyramid"
    card_outcome: str = "level"
    require_as_of: bool = False
    max_request_bytes: int = 5_000_000
    request_seconds: float = 10.0
    inline_bytes: int = 262_144  # bodies up to this size are evaluated on the event loop (app.run_limited)
    public_url: str = ""
    audit: str = ""
    audit_fsync: bool = False
    limits: Limits = field(default_factory=Limits)
    jwt: JwtSettings = field(default_factory=JwtSettings)  # CDS Hooks JWTs, next to bearer tokens
    reference: tuple[str, ...] = ()  # reference populations for ranked terms (`pathways reference` files)


_SERVICE_KEYS = {"admins": (list,), "card_protocol": (str,), "card_outcome": (str,), "require_as_of": (bool,),
                 "max_request_bytes": (int,), "request_seconds": (int, float), "inline_bytes": (int,),
                 "public_url": (str,),
                 "audit": (str,), "audit_fsync": (bool,), "reference": (str, list)}


def parse_tokens(text: str, where: str = "PATHWAYS_TOKENS") -> dict[str, str]:
    """``name:token,name2:token2`` -> {name: token}."""
    out: dict[str, str] = {}
    for number, item in enumerate((t.strip() for t in text.split(",")), start=1):
        if not item:
            continue
        name, sep, token = item.partition(":")
        if not sep or not name.strip() or not token.strip():
            raise ConfigError(f"{where}: item {number} is not written name:token")
        _check_token(name.strip(), token.strip(), where)
        out[name.strip()] = token.strip()
    return out


def _check_token(name: str, token: str, where: str) -> None:
    if len(token) < 16:
        raise ConfigError(f"{where}: the token for {name!r} is shorter than 16 characters; "
                          "use a long random one (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)")


def load_config(path: str | Path | None = None, environ: dict | None = None) -> ServiceConfig:
    """Read the configuration file (if any) and ``PATHWAYS_TOKENS``; raise ConfigError on a mistake."""
    environ = os.environ if environ is None else environ
    data: dict = {}
    where = str(path) if path else "configuration"
    if path:
        from ..limits import read_toml
        data = read_toml(path, ConfigError)
    unknown = set(data) - {"tokens", "service", "limits", "jwt"}
    if unknown:
        raise ConfigError(f"{where}: unknown table(s) {', '.join(sorted(unknown))}; "
                          "the tables are [tokens], [service], [limits] and [jwt]")
    tokens: dict[str, str] = {}
    for name, token in (data.get("tokens") or {}).items():
        if not isinstance(token, str):
            raise ConfigError(f"{where}: [tokens] {name} must be a text value")
        _check_token(name, token, f"{where} [tokens]")
        tokens[name] = token
    tokens.update(parse_tokens(environ.get("PATHWAYS_TOKENS", "")))
    values: dict = {}
    for key, value in (data.get("service") or {}).items():
        kinds = _SERVICE_KEYS.get(key)
        if kinds is None:
            raise ConfigError(f"{where}: [service] has no setting {key!r}; the settings are "
                              f"{', '.join(_SERVICE_KEYS)}")
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ConfigError(f"{where}: [service] {key} has the wrong kind of value: {value!r}")
        values[key] = tuple(value) if key == "admins" else value
    for key in ("max_request_bytes", "request_seconds"):
        if key in values and values[key] <= 0:
            raise ConfigError(f"{where}: [service] {key} must be more than 0")
    if values.get("inline_bytes", 0) < 0:
        raise ConfigError(f"{where}: [service] inline_bytes must be 0 (always use a thread) or more")
    try:
        limits = Limits.from_dict(data.get("limits") or {}, f"{where} [limits]")
    except LimitError as exc:
        raise ConfigError(str(exc)) from None
    base = Path(path).resolve().parent if path else Path.cwd()
    if "reference" in values:  # relative to the configuration file, like the JWT key files
        given = values["reference"]
        given = [given] if isinstance(given, str) else given
        if not all(isinstance(f, str) and f for f in given):
            raise ConfigError(f"{where}: [service] reference must be a file name or a list of them")
        values["reference"] = tuple(str(base / f) for f in given)
    try:
        jwt_settings = parse_settings(data.get("jwt") or {}, where, base, values.get("public_url", ""))
    except JwtConfigError as exc:
        raise ConfigError(str(exc)) from None
    return ServiceConfig(tokens=tokens, limits=limits, jwt=jwt_settings, **values)
