"""Map FHIR R4 resources into the record model: pass 2 of :mod:`engine.readers.fhir`.

:class:`ResourceMapper` turns one Patient, Condition, MedicationRequest or
MedicationStatement, Encounter, Observation or Procedure into the fields and
items of a patient's record (``docs/data.md`` has the mapping, element by
element), and derives the patient facts that come from the whole record
(practice, social facts). It is a mixin of
:class:`~engine.readers.fhir.FhirReader`, which does the reading, the
reference index and the assembling; use :func:`engine.readers.read_fhir`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from pathways import records as r

# Skip reasons a mapper returns (docs/data.md explains each; the reader's own are in engine.readers.fhir).
NO_CODE = "no code"
NO_DATE = "no date"
UNMAPPED_ENCOUNTER = "encounter kind not in the mapping"
IGNORED = "the mapping says ignore"

_CONDITION_STATUS = {"active": "active", "recurrence": "recurrence", "relapse": "relapse",
                     "inactive": "inactive", "remission": "remission", "resolved": "resolved"}
_REQUEST_STATUS = {"active": "active", "on-hold": "on_hold", "cancelled": "cancelled",
                   "completed": "completed", "stopped": "stopped"}
_STATEMENT_STATUS = {"active": "active", "on-hold": "on_hold", "completed": "completed", "stopped": "stopped"}
_GENDERS = {"male": "male", "female": "female", "other": "other", "unknown": "unknown"}


Loc = tuple[str, "int | None", "int | None"]  # (file, line, entry)


class _Builder:
    """One patient's record while it is assembled."""

    __slots__ = ("loc", "res", "fields", "conditions", "medications", "encounters", "observations",
                 "procedures", "life_events", "social", "gp_providers", "counts")

    def __init__(self, loc: Loc, res: dict, fields: dict):
        self.loc, self.res, self.fields = loc, res, fields
        self.conditions: list = []
        self.medications: list = []
        self.encounters: list = []
        self.observations: list = []
        self.procedures: list = []
        self.life_events: list = []
        self.social: list = []  # (date, fact, value)
        self.gp_providers: list = []  # (start, reference object, loc)
        self.counts: Counter = Counter()  # resource type -> items mapped (for the item limit)


class ResourceMapper:
    """How each kind of resource becomes part of a record. A mixin of FhirReader, whose state
    (``m``, ``report``, ``targets``, ``roles``, ``_side_keys``) and helpers (``problem``,
    ``codings``, ``pick``, ``status_code``, ``date``, ``_first_date``, ``_resolve``) it uses."""

    def _patient(self, res: dict, loc: Loc, pid: str) -> dict:
        fields: dict[str, Any] = {"id": pid}
        birth = res.get("birthDate")
        if birth is None:
            self.problem(loc, "no birth date: the patient is loaded and their age is unknown",
                         "Patient", pid, "birthDate")
        else:
            fields["birth_date"] = self.date(birth, loc, "Patient", pid, "birthDate")
        gender = res.get("gender")
        if gender is not None:
            sex = _GENDERS.get(gender) if isinstance(gender, str) else None
            if sex is None:
                self.problem(loc, f"{_r(gender)} is not a FHIR gender (male, female, other, unknown); "
                             "sex is left unknown", "Patient", pid, "gender")
            else:
                fields["sex"] = sex
        died = res.get("deceasedDateTime")
        if died is not None:
            fields["date_of_death"] = self.date(died, loc, "Patient", pid, "deceasedDateTime")
        for ext in _seq(res.get("extension")):
            if isinstance(ext, dict):
                fact = self.m.social_extensions.get(_text(ext.get("url")))
                if fact is not None:
                    value = ext.get("valueBoolean")
                    if isinstance(value, bool):
                        fields[fact] = value
                    else:
                        self.problem(loc, f"the {fact.replace('_', ' ')} extension has no valueBoolean",
                                     "Patient", pid, "extension")
        return fields

    # conditions ---------------------------------------------------------------------

    def _coded(self, res: dict, loc: Loc, rtype: str, rid: str, what: str) -> list:
        """The resource's coded ``code`` (none: reported, for the caller to skip it)."""
        codes = self.codings(res.get("code"), rtype)
        if not codes:
            self.problem(loc, f"no coded code: the {what} cannot be matched", rtype, rid, "code")
        return codes

    def _condition(self, res: dict, loc: Loc, rid: str, b: _Builder, rtype: str) -> str | None:
        ver = self.status_code(res.get("verificationStatus"))
        if ver in self.m.skip_verification:
            return f"verificationStatus {ver}"
        codes = self._coded(res, loc, rtype, rid, "condition")
        if not codes:
            return NO_CODE
        system, code, _ = self.pick(codes)
        onset = self._first_date(res, loc, rtype, rid, ("onsetDateTime", "onsetPeriod.start"))
        if onset is None and self.m.onset_from_recorded_date:
            onset = self._first_date(res, loc, rtype, rid, ("recordedDate",))
        abatement = self._first_date(res, loc, rtype, rid, ("abatementDateTime", "abatementPeriod.end",
                                                            "abatementPeriod.start"))
        clinical = self.status_code(res.get("clinicalStatus"))
        if clinical is not None:
            status = _CONDITION_STATUS.get(clinical)
            if status is None:
                status = "resolved" if abatement else "active"
                self.problem(loc, f"{_r(clinical)} is not a condition-clinical status; taken as {status}",
                             rtype, rid, "clinicalStatus")
        else:
            status = "resolved" if abatement else "active"
        b.conditions.append(r.Condition(source_id=rid, code=code, system=system, onset=onset,
                                        abatement=abatement, status=status))
        when = onset or abatement
        if when is not None and any((c[0], c[1]) in self._side_keys or (c[0], c[1]) in self.m.observations
                                    for c in codes):
            self._side_effects(codes, [], None, when, rid, b, for_condition=True)
        return None

    def _side_effects(self, codes: list, value_codes: list, value: float | None, when: r.PartialDate,
                      rid: str, b: _Builder, for_condition: bool) -> None:
        """Social facts and life events a code (or coded value) records; for a Condition, also
        the observation rules that need no value (a fall, an impairment finding)."""
        m = self.m
        facts = set()
        events = set()
        for c in (*codes, *value_codes):
            key = (c[0], c[1])
            fact = m.social.get(key)
            if fact is not None and fact[0] not in facts:
                facts.add(fact[0])
                b.social.append((when, fact[0], fact[1]))
            event = m.life_events.get(key)
            if event is not None and event != "ignore" and event not in events:
                events.add(event)
                b.life_events.append(r.LifeEvent(source_id=rid, event=event, date=when))
        if value is not None and "lives_alone" not in facts:
            for c in codes:
                if (c[0], c[1]) in m.household_size:
                    b.social.append((when, "lives_alone", value <= 1))
                    break
        if for_condition:
            for c in codes:
                rule = m.observations.get((c[0], c[1]))
                if rule is not None and not rule.needs_value and rule.kind not in ("other", "ignore"):
                    b.observations.append(r.Observation(
                        source_id=rid, kind=rule.kind, impaired=True if rule.impaired is None else rule.impaired,
                        code=c[1], system=c[0], date=when))
                    break
        return None

    # medicines ----------------------------------------------------------------------

    def _medication(self, res: dict, loc: Loc, rid: str, b: _Builder, rtype: str) -> str | None:
        raw_status = res.get("status")
        table = _REQUEST_STATUS if rtype == "MedicationRequest" else _STATEMENT_STATUS
        status = table.get(raw_status) if isinstance(raw_status, str) else None
        if status is None:
            self.problem(loc, f"{_r(raw_status)} is not a {rtype} status", rtype, rid, "status")
            return "no usable status"
        codes = self.codings(res.get("medicationCodeableConcept"), rtype)
        if not codes and res.get("medicationReference") is not None:
            codes = self._medication_reference(res, loc, rid, rtype)
        if not codes:
            self.problem(loc, "no coded medicine (medicationCodeableConcept or a Medication with a code)",
                         rtype, rid, "medication[x]")
            return NO_CODE
        system, code, _ = self.pick(codes)
        if rtype == "MedicationRequest":
            start = self._first_date(res, loc, rtype, rid, ("authoredOn",))
            validity = (res.get("dispenseRequest") or {}).get("validityPeriod") if isinstance(
                res.get("dispenseRequest"), dict) else None
            if start is None and isinstance(validity, dict) and validity.get("start") is not None:
                start = self.date(validity["start"], loc, rtype, rid, "dispenseRequest.validityPeriod.start")
            end = None
            if isinstance(validity, dict) and validity.get("end") is not None:
                end = self.date(validity["end"], loc, rtype, rid, "dispenseRequest.validityPeriod.end")
        else:
            start = self._first_date(res, loc, rtype, rid, ("effectivePeriod.start", "effectiveDateTime",
                                                            "dateAsserted"))
            end = self._first_date(res, loc, rtype, rid, ("effectivePeriod.end",))
        if start is not None and end is not None and end.latest < start.earliest:
            self.problem(loc, f"ends ({end}) before it starts ({start}); the end is left empty", rtype, rid,
                         "end")
            end = None
        cost = self._cost(res, loc, rid, rtype, codes)
        b.medications.append(r.Medication(source_id=rid, code=code, system=system, start=start, end=end,
                                          status=status, monthly_cost=cost))
        return None

    def _medication_reference(self, res: dict, loc: Loc, rid: str, rtype: str) -> list:
        target = self._resolve(res.get("medicationReference"))
        if target is None:
            return []
        ttype, tid = target
        med = None
        if ttype == "#":
            for c in _seq(res.get("contained")):
                if isinstance(c, dict) and c.get("id") == tid:
                    med = c
                    break
        elif tid is not None:
            med = self.targets.get(("Medication", tid))
        if med is None:
            shown = res["medicationReference"].get("reference") or "an identifier"
            self.problem(loc, f"refers to {shown}, which is not in the data", rtype, rid, "medicationReference")
            return []
        return self.codings(med.get("code"), rtype)

    def _cost(self, res: dict, loc: Loc, rid: str, rtype: str, codes: list) -> float | None:
        m = self.m
        if m.cost_extensions:
            for ext in _seq(res.get("extension")):
                if not isinstance(ext, dict) or _text(ext.get("url")) not in m.cost_extensions:
                    continue
                money = ext.get("valueMoney")
                if isinstance(money, dict):
                    value, currency = money.get("value"), money.get("currency", "GBP")
                else:
                    value, currency = ext.get("valueDecimal"), "GBP"
                if currency != "GBP":
                    self.problem(loc, f"monthly cost in {currency}, not GBP; the cost is left empty",
                                 rtype, rid, "extension (monthly cost)")
                    return None
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    self.problem(loc, f"monthly cost {_r(value)} is not an amount; the cost is left empty",
                                 rtype, rid, "extension (monthly cost)")
                    return None
                return float(value)
        if m.monthly_cost:
            for c in codes:
                cost = m.monthly_cost.get((c[0], c[1]))
                if cost is not None:
                    return cost
        return None

    # encounters ---------------------------------------------------------------------

    def _encounter(self, res: dict, loc: Loc, rid: str, b: _Builder, rtype: str) -> str | None:
        klass = res.get("class")
        if isinstance(klass, list):  # R5: a list of CodeableConcepts
            klass = next((c for cc in klass if isinstance(cc, dict) for c in _seq(cc.get("coding"))), None)
        cls = klass.get("code") if isinstance(klass, dict) else None
        cls = cls if isinstance(cls, str) else ""
        types = []
        for concept in _seq(res.get("type")):
            types.extend(self.codings(concept, rtype))
        service = res.get("serviceType")
        if service is not None:
            for concept in (service if isinstance(service, list) else [service]):
                types.extend(self.codings(concept, rtype))
        keys = [(t[0], t[1]) for t in types]
        kind = None
        for rule in self.m.encounter_rules:
            if rule.classes is not None and cls not in rule.classes:
                continue
            if rule.types is not None and not any(k in rule.types for k in keys):
                continue
            kind = rule.kind
            break
        if kind is None:
            unknown = self.report.unknown_codes
            what = f"kind (class {cls or 'none'})"
            if types:
                for t in types:
                    unknown[(rtype, what, t[0], t[1], t[2])] += 1
            else:
                unknown[(rtype, what, "", "", "")] += 1
            return UNMAPPED_ENCOUNTER
        if kind == "ignore":
            return IGNORED
        period = res.get("period")
        start = end = None
        if isinstance(period, dict):
            if period.get("start") is not None:
                start = self.date(period["start"], loc, rtype, rid, "period.start")
            if period.get("end") is not None:
                end = self.date(period["end"], loc, rtype, rid, "period.end")
        if start is None:
            if not (isinstance(period, dict) and period.get("start") is not None):  # else reported as not a date
                self.problem(loc, "no start date (period.start): the encounter cannot be placed in time",
                             rtype, rid, "period.start")
            return NO_DATE
        if end is not None and end.latest < start.earliest:
            self.problem(loc, f"ends ({end}) before it starts ({start}); the end is left empty",
                         rtype, rid, "period.end")
            end = None
        method = self._method(res, types, rtype) if kind == "admission" else None
        code = self.pick(types)[1] if types else ""
        b.encounters.append(r.Encounter(source_id=rid, kind=kind, start=start, end=end, method=method, code=code))
        if kind == "gp" and isinstance(res.get("serviceProvider"), dict):
            b.gp_providers.append((start, res["serviceProvider"], loc))
        return None

    def _method(self, res: dict, types: list, rtype: str) -> str | None:
        m = self.m
        if m.method_extensions:
            hosp = res.get("hospitalization")
            exts = list(_seq(res.get("extension")))
            if isinstance(hosp, dict):
                exts.extend(_seq(hosp.get("extension")))
            for ext in exts:
                if isinstance(ext, dict) and ext.get("url") in m.method_extensions:
                    found = _mapped(m.method_extension_codes, self.codings(ext.get("valueCodeableConcept"), rtype,
                                                                             False))
                    if found:
                        return found
                    coding = ext.get("valueCoding")
                    if isinstance(coding, dict):
                        found = m.method_extension_codes.get(coding.get("code"))
                        if found:
                            return found
        found = _mapped(m.method_priority, self.codings(res.get("priority"), rtype, False))
        if found:
            return found
        hosp = res.get("hospitalization")
        if isinstance(hosp, dict):
            found = _mapped(m.method_admit_source, self.codings(hosp.get("admitSource"), rtype, False))
            if found:
                return found
        for t in types:
            found = m.method_types.get((t[0], t[1]))
            if found:
                return found
        unknown = self.report.unknown_codes
        if types:
            for t in types:
                unknown[(rtype, "admission method", t[0], t[1], t[2])] += 1
        else:
            unknown[(rtype, "admission method", "", "", "")] += 1
        return None

    # observations and procedures ----------------------------------------------------

    def _observation(self, res: dict, loc: Loc, rid: str, b: _Builder, rtype: str) -> str | None:
        codes = self._coded(res, loc, rtype, rid, "observation")
        if not codes:
            return NO_CODE
        when = res.get("effectiveDateTime")
        date = None if when is None else self.date(when, loc, rtype, rid, "effectiveDateTime")
        if date is None:
            date = self._first_date(res, loc, rtype, rid, ("effectivePeriod.start", "effectiveInstant", "issued"))
        if date is None:
            if not _given(res, _OBSERVATION_DATES):  # else reported as not a date
                self.problem(loc, "no date (effective[x] or issued): the observation cannot be placed in time",
                             rtype, rid, "effective[x]")
            return NO_DATE
        value = None
        unit = ""
        value_codes: list = []
        q = res.get("valueQuantity")
        if isinstance(q, dict):
            v = q.get("value")
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                value = float(v)
            elif v is not None:
                self.problem(loc, f"{_r(v)} is not a number; the value is left empty", rtype, rid,
                             "valueQuantity.value")
            u = q.get("unit") or q.get("code")
            unit = u if isinstance(u, str) else ""
        elif "valueInteger" in res:
            v = res["valueInteger"]
            if isinstance(v, int) and not isinstance(v, bool):
                value = float(v)
            else:
                self.problem(loc, f"{_r(v)} is not an integer; the value is left empty", rtype, rid, "valueInteger")
        elif "valueCodeableConcept" in res:
            value_codes = self.codings(res["valueCodeableConcept"], rtype, False)
        elif "valueBoolean" in res and isinstance(res["valueBoolean"], bool):
            value = 1.0 if res["valueBoolean"] else 0.0
        rule = None
        rules = self.m.observations
        for c in codes:
            rule = rules.get((c[0], c[1]))
            if rule is not None:
                break
        kind, impaired = "other", True
        if rule is not None:
            if rule.kind == "ignore":
                return IGNORED
            kind = rule.kind
            if kind in ("adl", "iadl", "cognition"):
                reading = rule.reading(value, [(c[0], c[1]) for c in value_codes])
                if reading is None:
                    self.problem(loc, f"a {kind} assessment whose value cannot be read as impaired or not; "
                                 "kept as an ordinary observation", rtype, rid, "value[x]")
                    kind = "other"
                else:
                    impaired = reading
        system, code, _ = self.pick(codes)
        b.observations.append(r.Observation(source_id=rid, kind=kind, impaired=impaired, code=code, system=system,
                                            date=date, value=value, unit=unit))
        side = self._side_keys
        if any((c[0], c[1]) in side for c in codes) or any((c[0], c[1]) in side for c in value_codes):
            self._side_effects(codes, value_codes, value, date, rid, b, for_condition=False)
        return None

    def _procedure(self, res: dict, loc: Loc, rid: str, b: _Builder, rtype: str) -> str | None:
        codes = self._coded(res, loc, rtype, rid, "procedure")
        if not codes:
            return NO_CODE
        date = self._first_date(res, loc, rtype, rid, ("performedDateTime", "performedPeriod.start",
                                                       "performedPeriod.end"))
        if date is None:
            if not _given(res, ("performedDateTime", "performedPeriod.start", "performedPeriod.end")):
                self.problem(loc, "no date (performed[x]): the procedure cannot be placed in time",
                             rtype, rid, "performed[x]")
            return NO_DATE
        system, code, _ = self.pick(codes)
        b.procedures.append(r.Procedure(source_id=rid, code=code, system=system, date=date))
        return None

    # patient facts from the whole record --------------------------------------------

    def _practice(self, b: _Builder, pid: str) -> None:
        res, loc = b.res, b.loc
        for source in self.m.practice_from:
            found = None
            if source == "generalPractitioner":
                refs = _seq(res.get("generalPractitioner"))
                for i, ref in enumerate(refs if isinstance(refs, list) else [refs]):
                    found = self._organisation(ref, loc, pid, f"generalPractitioner[{i}]")
                    if found:
                        break
            elif source == "managingOrganization":
                if res.get("managingOrganization") is not None:
                    found = self._organisation(res["managingOrganization"], loc, pid, "managingOrganization")
            elif source == "gp_encounters" and b.gp_providers:
                count: Counter = Counter()
                latest: dict[str, str] = {}
                where: dict[str, tuple] = {}
                for start, ref, eloc in b.gp_providers:
                    key = orjson.dumps(ref, option=orjson.OPT_SORT_KEYS).decode()
                    count[key] += 1
                    if key not in latest or start.text > latest[key]:
                        latest[key] = start.text
                    where.setdefault(key, (ref, eloc))
                best = max(count, key=lambda k: (count[k], latest[k]))
                ref, eloc = where[best]
                found = self._organisation(ref, eloc, pid, "serviceProvider", rtype="Encounter")
            if found:
                b.fields["practice"] = found
                return

    def _organisation(self, ref: Any, loc: Loc, pid: str, field: str, rtype: str = "Patient",
                      depth: int = 0) -> str | None:
        """The practice label of the Organization a reference names (through a Practitioner's
        PractitionerRole); a reference to an organisation that is not in the data is reported
        and labelled by the id or identifier it gives."""
        target = self._resolve(ref)
        if target is None:
            return None
        ttype, tid = target
        if ttype == "Practitioner" and tid and depth == 0:
            role = self.roles.get(tid)
            if role is not None:
                return self._organisation(role.get("organization"), loc, pid, field + " (PractitionerRole)",
                                          rtype, 1)
            return None
        if ttype not in ("Organization", None):
            return None
        org = self.targets.get(("Organization", tid)) if tid else None
        if org is None:
            shown = ref.get("reference") if isinstance(ref.get("reference"), str) else f"identifier {ref.get('identifier')}"
            label = tid
            if label is None:
                ident = ref.get("identifier")
                label = ident.get("value") if isinstance(ident, dict) else None
                if label is None and isinstance(shown, str) and "|" in shown:
                    label = shown.rsplit("|", 1)[-1]
            self.problem(loc, f"refers to {shown}, which is not in the data; the practice is named "
                         f"{label!r} from the reference" if label else
                         f"refers to {shown}, which is not in the data", rtype,
                         pid if rtype == "Patient" else None, field)
            return label
        label = self.m.practice_label
        if label == "name" and isinstance(org.get("name"), str) and org["name"]:
            return org["name"]
        if label == "identifier":
            for ident in _seq(org.get("identifier")):
                if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                    return ident["value"]
        return tid

    def _social(self, b: _Builder) -> None:
        if not b.social:
            return
        latest: dict[str, tuple] = {}
        for when, fact, value in b.social:
            if fact in b.fields:  # an extension on the Patient says it outright
                continue
            seen = latest.get(fact)
            if seen is None or when.earliest >= seen[0].earliest:
                latest[fact] = (when, value)
        for fact, (_, value) in latest.items():
            b.fields[fact] = value


_OBSERVATION_DATES = ("effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued")


def _given(res: dict, fields: tuple[str, ...]) -> bool:
    """Whether any of these (dotted) elements is present, valid or not."""
    for name in fields:
        outer, _, inner = name.partition(".")
        value = res.get(outer)
        if inner:
            value = value.get(inner) if isinstance(value, dict) else None
        if value is not None:
            return True
    return False


def _seq(value: Any) -> Any:
    """A repeating element as a list; anything else (a number, a text, an object) as empty."""
    return value if isinstance(value, list) else ()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _r(value: Any) -> str:
    """A value quoted in a message: short, and safe however deeply it nests."""
    try:
        text = repr(value) if isinstance(value, (str, int, float, bool, type(None))) \
            else orjson.dumps(value).decode()
    except (TypeError, RecursionError):
        text = "(a value nested too deeply to show)"
    return text if len(text) <= 80 else text[:79] + "…"


def _mapped(table: dict, codes: list):
    """What ``table`` maps the first of the codings' codes it knows to, or None."""
    return next((table[c[1]] for c in codes if table.get(c[1])), None)
