"""Reference populations for population-relative terms ("in the top 3% of the practice").

One patient's request cannot rank them among the practice's patients: the
ranking needs everyone's values. ``pathways reference PROTOCOL --data PATH
--as-of DATE --out FILE`` works those values out once, over a population
(``Program.distributions``), and writes them as JSON; ``pathways serve
--reference FILE`` ranks each patient against them. Without a reference the
terms stay unknown.

A reference belongs to the *terms*, not to a file name: each term carries a
digest of the protocol that owns it and everything that protocol imports. At
start-up and on every reload the service uses a term's distribution only for
protocols in which that term's digest is unchanged (so the pyramid's
reference also serves a pathway protocol that imports the pyramid), and only
for requests with the parameters the reference was made with. A protocol
changed since the reference was made ranks nobody (unknown) until a new
reference is made; the log says so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import orjson

SCHEMA = "ltc-pathways/reference/1"


class ReferenceFileError(Exception):
    """A reference file cannot be used; the message names the file and the field."""


def digest(compiled) -> str:
    """The sha256 of a protocol and, transitively, everything it imports."""
    seen: dict[str, str] = {}
    stack = [compiled]
    while stack:
        c = stack.pop()
        seen[c.protocol.header.name] = c.protocol.sha256
        stack.extend(c.imports.values())
    text = "\n".join(f"{name} {sha}" for name, sha in sorted(seen.items()))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def build(program, records, as_of, parameters: dict | None = None) -> dict:
    """The reference document for ``program`` over ``records`` on ``as_of``."""
    from dsl.formatter import expr_to_text

    from ..program import _as_date, engine_version

    records = list(records)
    day = _as_date(as_of)
    groups = program.distributions(records, day, parameters)
    terms = {}
    for path, owner, term in program.population_terms():
        terms[term.id] = {"owner": owner.protocol.header.name, "digest": digest(owner),
                          "expression": expr_to_text(term), "group": term.group,
                          "groups": groups.get(term.id, {})}
    header = program.protocol.header
    return {"schema": SCHEMA, "protocol": {"name": header.name, "version": header.version,
                                           "sha256": program.protocol.sha256},
            "engine_version": engine_version(), "as_of": day.isoformat(),
            "parameters": dict(sorted((parameters or {}).items())), "patients": len(records), "terms": terms}


def dumps(doc: dict) -> bytes:
    """Canonical bytes: the same population, protocol and date give the same file."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


@dataclass(frozen=True)
class Reference:
    file: str
    protocol: str
    as_of: str
    patients: int
    parameters: dict = field(default_factory=dict)
    terms: dict = field(default_factory=dict, repr=False)  # term id -> {"digest", "groups", ...}

    def describe(self) -> dict:
        return {"file": Path(self.file).name, "protocol": self.protocol, "as_of": self.as_of,
                "patients": self.patients}


def load(path: str | Path) -> Reference:
    """Read and check a reference file; ReferenceFileError names what is wrong and where."""
    where = str(path)
    try:
        doc = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ReferenceFileError(f"cannot read the reference {where}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ReferenceFileError(f"{where}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ReferenceFileError(f"{where}: not a reference population (schema {SCHEMA!r}); make one with "
                             "`pathways reference PROTOCOL --data PATH --as-of DATE --out FILE`")
    for key, kind in (("protocol", dict), ("as_of", str), ("patients", int), ("parameters", dict), ("terms", dict)):
        if not isinstance(doc.get(key), kind):
            raise ReferenceFileError(f"{where}: field {key!r} is missing or of the wrong kind")
    for term_id, term in doc["terms"].items():
        place = f"{where}: terms.{term_id}"
        if not isinstance(term, dict) or not isinstance(term.get("digest"), str) \
                or not isinstance(term.get("groups"), dict):
            raise ReferenceFileError(f"{place}: needs a digest and groups")
        for group, values in term["groups"].items():
            if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                       for v in values):
                raise ReferenceFileError(f"{place}.groups.{group}: must be a list of numbers")
            if values != sorted(values):
                raise ReferenceFileError(f"{place}.groups.{group}: the values must be in ascending order")
    return Reference(where, str(doc["protocol"].get("name", "")), doc["as_of"], doc["patients"],
                     doc["parameters"], doc["terms"])


def populations(program, references: list[Reference]) -> tuple[dict, Reference | None, list[str]]:
    """(distributions by term id, the reference used, notes) for one served program.

    A term with no matching reference gets empty groups: it evaluates as unknown."""
    out: dict = {}
    used = None
    notes = []
    for _path, owner, term in program.population_terms():
        out[term.id] = {}
        wanted = digest(owner)
        for ref in references:
            found = ref.terms.get(term.id)
            if found is None or (ref.parameters and ref.protocol != program.protocol.header.name):
                continue  # overrides are named from the reference's own protocol
            if found["digest"] != wanted:
                notes.append(f"{Path(ref.file).name}: `{found.get('expression', term.id)}` was ranked with "
                             f"another version of {found.get('owner', 'its protocol')}; it stays unknown")
                continue
            out[term.id] = found["groups"]
            used = used or ref
            break
    return out, used, notes
