"""The mapping: which local codes, encounter classes and types mean what in the record model.

A mapping is a TOML file (read with :mod:`tomllib`). The package ships
``default_mapping.toml``; a user file has the same shape and extends it:

* its ``[[encounter]]``, ``[[observation]]`` and ``[[life_event]]`` rules are
  checked before the default's, so they win;
* its code lists are added to the default's (a code given a new meaning
  takes it: a code the user lists under ``[lives_alone] no`` is no longer a
  ``yes``);
* its settings (``practice_from``, ``prefer``...) replace the default's.

``extends_default = false`` at the top of a user file makes it the whole mapping.
``docs/data.md`` describes every section.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pathways import schema

from .report import ReadError

Code = tuple[str, str]  # (system short name or URI, code)

ENCOUNTER_KINDS = ("admission", "ae", "outpatient", "gp", "community", "social_work", "ignore")
OBSERVATION_KINDS = ("adl", "iadl", "cognition", "fall", "other", "ignore")
LIFE_EVENTS = ("bereavement", "carer_death", "moved_home", "entered_care_home", "ignore")
METHODS = ("emergency", "elective", "other")
PRACTICE_SOURCES = ("generalPractitioner", "managingOrganization", "gp_encounters")
PRACTICE_LABELS = ("id", "name", "identifier")

_SECTIONS: dict[str, tuple[str, ...]] = {
    "codes": ("systems", "prefer"),
    "patient": ("practice_from", "practice_label"),
    "lives_alone": ("extensions", "yes", "no", "household_size"),
    "has_carer": ("extensions", "yes", "no"),
    "admission_method": ("extensions", "extension_codes", "priority", "admit_source", "emergency",
                         "elective", "other"),
    "medication": ("cost_extensions", "monthly_cost"),
    "condition": ("onset_from_recorded_date", "skip_verification"),
}
_RULES: dict[str, tuple[str, ...]] = {
    "encounter": ("class", "type", "kind", "note"),
    "observation": ("kind", "codes", "impaired", "impaired_below", "impaired_above",
                    "impaired_values", "not_impaired_values", "note"),
    "life_event": ("event", "codes", "note"),
}
_TOP = ("format", "extends_default", *_SECTIONS, *_RULES)


class MappingError(ReadError):
    """A mapping file that cannot be used; the message names the file and the key."""


def _base_systems() -> dict[str, str]:
    out = {uri.lower(): short for short, uri in schema.CODE_SYSTEMS.items()}
    out.update({short: short for short in schema.CODE_SYSTEMS})
    return out


@dataclass
class EncounterRule:
    classes: frozenset[str] | None
    types: frozenset[Code] | None
    kind: str
    origin: str


@dataclass
class ObservationRule:
    kind: str
    impaired: bool | None = None
    below: float | None = None
    above: float | None = None
    impaired_values: frozenset[Code] = frozenset()
    not_impaired_values: frozenset[Code] = frozenset()
    origin: str = ""

    @property
    def needs_value(self) -> bool:
        """Whether the rule reads the observation's value (so it cannot apply to a Condition)."""
        return self.kind in ("adl", "iadl", "cognition") and self.impaired is None

    def reading(self, value: float | None, value_codes: list[Code]) -> bool | None:
        """Impaired (True), assessed and not impaired (False), or cannot tell (None)."""
        if self.impaired is not None:
            return self.impaired
        if self.impaired_values or self.not_impaired_values:
            for c in value_codes:
                if c in self.impaired_values:
                    return True
                if c in self.not_impaired_values:
                    return False
        if value is not None:
            if self.below is not None:
                return value < self.below
            if self.above is not None:
                return value > self.above
        return None


@dataclass
class Mapping:
    """A compiled mapping. Build it with :func:`load_mapping`."""

    sources: list[str] = field(default_factory=list)
    systems: dict[str, str] = field(default_factory=_base_systems)
    prefer: dict[str, int] = field(default_factory=dict)
    practice_from: tuple[str, ...] = PRACTICE_SOURCES
    practice_label: str = "id"
    social_extensions: dict[str, str] = field(default_factory=dict)  # url -> fact
    social: dict[Code, tuple[str, bool]] = field(default_factory=dict)  # code -> (fact, value)
    household_size: set[Code] = field(default_factory=set)
    encounter_rules: list[EncounterRule] = field(default_factory=list)
    method_extensions: tuple[str, ...] = ()
    method_extension_codes: dict[str, str] = field(default_factory=dict)
    method_priority: dict[str, str] = field(default_factory=dict)
    method_admit_source: dict[str, str] = field(default_factory=dict)
    method_types: dict[Code, str] = field(default_factory=dict)
    observations: dict[Code, ObservationRule] = field(default_factory=dict)
    life_events: dict[Code, str] = field(default_factory=dict)
    cost_extensions: tuple[str, ...] = ()
    monthly_cost: dict[Code, float] = field(default_factory=dict)
    onset_from_recorded_date: bool = True
    skip_verification: frozenset[str] = frozenset({"refuted", "entered-in-error"})

    def system(self, uri: str) -> str:
        """The short name records use for a code system URI (the URI itself when unknown)."""
        found = self.systems.get(uri)
        if found is None:
            found = self.systems.get(uri.lower(), uri)
        return found

    def known_system(self, name: str) -> bool:
        return name in self.prefer or name in schema.CODE_SYSTEMS


# -- loading ----------------------------------------------------------------------------

def default_mapping_text() -> str:
    return resources.files("engine.readers").joinpath("default_mapping.toml").read_text(encoding="utf-8")


def _parse(text: str, origin: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise MappingError(f"{origin}: not valid TOML: {e}") from None


def load_mapping(mapping: "Mapping | str | Path | dict | None" = None) -> Mapping:
    """The default mapping, extended by a user mapping (a TOML file path, or its tables as a dict)."""
    if isinstance(mapping, Mapping):
        return mapping
    default = _parse(default_mapping_text(), "default_mapping.toml")
    if mapping is None:
        return _compile([(default, "default_mapping.toml")])
    if isinstance(mapping, dict):
        user, origin = mapping, "mapping"
    else:
        path = Path(mapping)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise MappingError(f"{path}: cannot read the mapping file: {e.strerror or e}") from None
        user, origin = _parse(text, str(path)), str(path)
    extends = user.get("extends_default", True)
    if not isinstance(extends, bool):
        raise MappingError(f"{origin}: extends_default: expected true or false")
    layers = [(default, "default_mapping.toml"), (user, origin)] if extends else [(user, origin)]
    return _compile(layers)


def _compile(layers: list[tuple[dict, str]]) -> Mapping:
    m = Mapping()
    m.sources = [origin for _, origin in layers]
    # systems first: codes in every section are normalised with them
    for raw, origin in layers:
        _check_keys(raw, origin)
        codes = _table(raw, "codes", origin)
        systems = _table(codes, "systems", origin, "[codes] systems")
        for uri, short in systems.items():
            if not isinstance(short, str):
                raise MappingError(f"{origin}: [codes] systems: {uri!r} must name a short system name")
            m.systems[uri] = short
            m.systems[uri.lower()] = short
            m.systems.setdefault(short, short)
        if "prefer" in codes:
            m.prefer = {s: i for i, s in enumerate(_strings(codes["prefer"], origin, "[codes] prefer"))}
    user_rules: list[EncounterRule] = []
    for i, (raw, origin) in enumerate(layers):
        first = i == 0
        _patient(m, _table(raw, "patient", origin), origin)
        for fact in ("lives_alone", "has_carer"):
            _social(m, fact, _table(raw, fact, origin), origin)
        rules = [_encounter_rule(m, r, origin, n) for n, r in enumerate(_array(raw, "encounter", origin))]
        if first:
            m.encounter_rules = rules
        else:
            user_rules.extend(rules)
        _method(m, _table(raw, "admission_method", origin), origin)
        for n, r in enumerate(_array(raw, "observation", origin)):
            rule = _observation_rule(m, r, origin, n)
            for code in _codes(m, r.get("codes"), origin, f"[[observation]] #{n + 1} codes"):
                m.observations[code] = rule
        for n, r in enumerate(_array(raw, "life_event", origin)):
            where = f"[[life_event]] #{n + 1}"
            _only(r, _RULES["life_event"], origin, where)
            event = r.get("event")
            if event not in LIFE_EVENTS:
                raise MappingError(f"{origin}: {where} event: {event!r} is not one of {', '.join(LIFE_EVENTS)}")
            for code in _codes(m, r.get("codes"), origin, f"{where} codes"):
                m.life_events[code] = event
        _medication(m, _table(raw, "medication", origin), origin)
        cond = _table(raw, "condition", origin)
        if "onset_from_recorded_date" in cond:
            value = cond["onset_from_recorded_date"]
            if not isinstance(value, bool):
                raise MappingError(f"{origin}: [condition] onset_from_recorded_date: expected true or false")
            m.onset_from_recorded_date = value
        if "skip_verification" in cond:
            m.skip_verification = frozenset(_strings(cond["skip_verification"], origin,
                                                     "[condition] skip_verification"))
    m.encounter_rules = user_rules + m.encounter_rules
    return m


def _check_keys(raw: dict, origin: str) -> None:
    for key in raw:
        if key not in _TOP:
            raise MappingError(f"{origin}: unknown section {key!r} (expected one of {', '.join(_TOP)})")
    for section, keys in _SECTIONS.items():
        if section in raw:
            _only(_table(raw, section, origin), keys, origin, f"[{section}]")


def _only(table: dict, keys: tuple[str, ...], origin: str, where: str) -> None:
    for key in table:
        if key not in keys:
            raise MappingError(f"{origin}: {where}: unknown key {key!r} (expected one of {', '.join(keys)})")


def _table(raw: dict, key: str, origin: str, where: str | None = None) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise MappingError(f"{origin}: {where or '[' + key + ']'}: expected a table")
    return value


def _array(raw: dict, key: str, origin: str) -> list[dict]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise MappingError(f"{origin}: {key}: expected [[{key}]] tables")
    return value


def _strings(value: Any, origin: str, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MappingError(f"{origin}: {where}: expected a list of strings")
    return value


def _codes(m: Mapping, table: Any, origin: str, where: str) -> list[Code]:
    """``{system = [codes]}`` -> [(system short name, code)]."""
    if table is None:
        return []
    if not isinstance(table, dict):
        raise MappingError(f"{origin}: {where}: expected a table of code system = [codes]")
    out = []
    for system, codes in table.items():
        short = m.system(system)
        for code in _strings(codes, origin, f"{where}.{system}"):
            out.append((short, code))
    return out


def _patient(m: Mapping, table: dict, origin: str) -> None:
    if "practice_from" in table:
        sources = _strings(table["practice_from"], origin, "[patient] practice_from")
        for s in sources:
            if s not in PRACTICE_SOURCES:
                raise MappingError(f"{origin}: [patient] practice_from: {s!r} is not one of "
                                   f"{', '.join(PRACTICE_SOURCES)}")
        m.practice_from = tuple(sources)
    if "practice_label" in table:
        label = table["practice_label"]
        if label not in PRACTICE_LABELS:
            raise MappingError(f"{origin}: [patient] practice_label: {label!r} is not one of "
                               f"{', '.join(PRACTICE_LABELS)}")
        m.practice_label = label


def _social(m: Mapping, fact: str, table: dict, origin: str) -> None:
    for url in _strings(table.get("extensions", []), origin, f"[{fact}] extensions"):
        m.social_extensions[url] = fact
    for key, value in (("yes", True), ("no", False)):
        for code in _codes(m, table.get(key), origin, f"[{fact}] {key}"):
            m.social[code] = (fact, value)
    if fact == "lives_alone":
        m.household_size.update(_codes(m, table.get("household_size"), origin, "[lives_alone] household_size"))


def _encounter_rule(m: Mapping, r: dict, origin: str, n: int) -> EncounterRule:
    where = f"[[encounter]] #{n + 1}"
    _only(r, _RULES["encounter"], origin, where)
    kind = r.get("kind")
    if kind not in ENCOUNTER_KINDS:
        raise MappingError(f"{origin}: {where} kind: {kind!r} is not one of {', '.join(ENCOUNTER_KINDS)}")
    classes = frozenset(_strings(r["class"], origin, f"{where} class")) if "class" in r else None
    types = frozenset(_codes(m, r["type"], origin, f"{where} type")) if "type" in r else None
    if classes is None and types is None:
        raise MappingError(f"{origin}: {where}: a rule needs a class, a type or both")
    return EncounterRule(classes, types, kind, origin)


def _method_table(table: dict, key: str, origin: str) -> dict[str, str]:
    value = _table(table, key, origin, f"[admission_method] {key}")
    for code, method in value.items():
        if method not in METHODS:
            raise MappingError(f"{origin}: [admission_method] {key}.{code}: {method!r} is not one of "
                               f"{', '.join(METHODS)}")
    return value


def _method(m: Mapping, table: dict, origin: str) -> None:
    if "extensions" in table:
        m.method_extensions = tuple(dict.fromkeys(
            [*m.method_extensions, *_strings(table["extensions"], origin, "[admission_method] extensions")]))
    m.method_extension_codes.update(_method_table(table, "extension_codes", origin))
    m.method_priority.update(_method_table(table, "priority", origin))
    m.method_admit_source.update(_method_table(table, "admit_source", origin))
    for method in METHODS:
        for code in _codes(m, table.get(method), origin, f"[admission_method] {method}"):
            m.method_types[code] = method


def _number(value: Any, origin: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MappingError(f"{origin}: {where}: expected a number")
    return float(value)


def _observation_rule(m: Mapping, r: dict, origin: str, n: int) -> ObservationRule:
    where = f"[[observation]] #{n + 1}"
    _only(r, _RULES["observation"], origin, where)
    kind = r.get("kind")
    if kind not in OBSERVATION_KINDS:
        raise MappingError(f"{origin}: {where} kind: {kind!r} is not one of {', '.join(OBSERVATION_KINDS)}")
    if "codes" not in r:
        raise MappingError(f"{origin}: {where}: a rule needs codes")
    rule = ObservationRule(kind=kind, origin=origin)
    if "impaired" in r:
        if not isinstance(r["impaired"], bool):
            raise MappingError(f"{origin}: {where} impaired: expected true or false")
        rule.impaired = r["impaired"]
    if "impaired_below" in r:
        rule.below = _number(r["impaired_below"], origin, f"{where} impaired_below")
    if "impaired_above" in r:
        rule.above = _number(r["impaired_above"], origin, f"{where} impaired_above")
    rule.impaired_values = frozenset(_codes(m, r.get("impaired_values"), origin, f"{where} impaired_values"))
    rule.not_impaired_values = frozenset(_codes(m, r.get("not_impaired_values"), origin,
                                                f"{where} not_impaired_values"))
    readers = sum(x is not None for x in (rule.impaired, rule.below, rule.above)) + bool(
        rule.impaired_values or rule.not_impaired_values)
    if kind in ("adl", "iadl", "cognition") and readers == 0:
        raise MappingError(f"{origin}: {where}: an assessment rule says how an impairment is read "
                           "(impaired, impaired_below, impaired_above or impaired_values)")
    if readers > 1 and rule.impaired is not None:
        raise MappingError(f"{origin}: {where}: `impaired` and a value rule exclude each other")
    return rule


def _medication(m: Mapping, table: dict, origin: str) -> None:
    if "cost_extensions" in table:
        m.cost_extensions = tuple(dict.fromkeys(
            [*m.cost_extensions, *_strings(table["cost_extensions"], origin, "[medication] cost_extensions")]))
    costs = _table(table, "monthly_cost", origin, "[medication] monthly_cost")
    for system, codes in costs.items():
        if not isinstance(codes, dict):
            raise MappingError(f"{origin}: [medication.monthly_cost.{system}]: expected code = cost")
        short = m.system(system)
        for code, cost in codes.items():
            m.monthly_cost[(short, code)] = _number(cost, origin, f"[medication.monthly_cost.{system}] {code}")
