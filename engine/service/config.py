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
public_url = ""          # the address clients reach the service at (for card links)
audit = ""               # an audit log to append every evaluation to
audit_fsync = false

[limits]                 # engine.limits.Limits
max_items_per_record = 50000
```

``PATHWAYS_TOKENS="name:token,name2:token2"`` adds tokens (and wins on a name
in both). Tokens are never logged or echoed.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..limits import LimitError, Limits


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
    public_url: str = ""
    audit: str = ""
    audit_fsync: bool = False
    limits: Limits = field(default_factory=Limits)


_SERVICE_KEYS = {"admins": (list,), "card_protocol": (str,), "card_outcome": (str,), "require_as_of": (bool,),
                 "max_request_bytes": (int,), "request_seconds": (int, float), "public_url": (str,),
                 "audit": (str,), "audit_fsync": (bool,)}


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
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - {"tokens", "service", "limits"}
    if unknown:
        raise ConfigError(f"{where}: unknown table(s) {', '.join(sorted(unknown))}; "
                          "the tables are [tokens], [service] and [limits]")
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
    try:
        limits = Limits.from_dict(data.get("limits") or {}, f"{where} [limits]")
    except LimitError as exc:
        raise ConfigError(str(exc)) from None
    return ServiceConfig(tokens=tokens, limits=limits, **values)
