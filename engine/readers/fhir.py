"""Read FHIR R4 data into patient records.

:func:`read_fhir` takes a Bundle file (``.json`` or ``.json.gz``), a Bulk Data
NDJSON file (``.ndjson`` or ``.ndjson.gz``, one resource a line), or a folder
of either (read recursively, in name order; other files are listed in the
report as ignored). It parses with orjson and picks out only the elements
the record model needs: no validation against FHIR's models.

Reading is in two passes. The first reads every file and indexes what
references point at (``fullUrl``, ``Type/id``, identifiers), so references
across files resolve whatever the order: a patient bundle's ``urn:uuid:``
reference into a shared Organization bundle, an NDJSON Condition read before
the Patient file. The second maps each resource into the record model
(:mod:`engine.readers.fhir_resources`).
``docs/data.md`` has the mapping, element by element.

Nothing is dropped silently: every resource read is mapped or skipped with a
reason, and every problem with the input is reported with its place (see
:mod:`engine.readers.report`).
"""

from __future__ import annotations

import calendar
import functools
import gc
import re
import zlib
from pathlib import Path
from typing import Any

import orjson

from pathways import records as r

from .fhir_resources import IGNORED, NO_CODE, NO_DATE, UNMAPPED_ENCOUNTER  # noqa: F401  (still importable from here)
from .fhir_resources import Loc, ResourceMapper, _Builder, _r, _seq, _text
from .mapping import Mapping, load_mapping
from .report import LoadReport, Problem, ReadError

#: Every resource type of FHIR R4 (4.0.1).
FHIR_R4_TYPES = frozenset("""
Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse AuditEvent
Basic Binary BiologicallyDerivedProduct BodyStructure Bundle CapabilityStatement CarePlan CareTeam
CatalogEntry ChargeItem ChargeItemDefinition Claim ClaimResponse ClinicalImpression CodeSystem
Communication CommunicationRequest CompartmentDefinition Composition ConceptMap Condition Consent
Contract Coverage CoverageEligibilityRequest CoverageEligibilityResponse DetectedIssue Device
DeviceDefinition DeviceMetric DeviceRequest DeviceUseStatement DiagnosticReport DocumentManifest
DocumentReference EffectEvidenceSynthesis Encounter Endpoint EnrollmentRequest EnrollmentResponse
EpisodeOfCare EventDefinition Evidence EvidenceVariable ExampleScenario ExplanationOfBenefit
FamilyMemberHistory Flag Goal GraphDefinition Group GuidanceResponse HealthcareService ImagingStudy
Immunization ImmunizationEvaluation ImmunizationRecommendation ImplementationGuide InsurancePlan
Invoice Library Linkage List Location Measure MeasureReport Media Medication MedicationAdministration
MedicationDispense MedicationKnowledge MedicationRequest MedicationStatement MedicinalProduct
MedicinalProductAuthorization MedicinalProductContraindication MedicinalProductIndication
MedicinalProductIngredient MedicinalProductInteraction MedicinalProductManufactured
MedicinalProductPackaged MedicinalProductPharmaceutical MedicinalProductUndesirableEffect
MessageDefinition MessageHeader MolecularSequence NamingSystem NutritionOrder Observation
ObservationDefinition OperationDefinition OperationOutcome Organization OrganizationAffiliation
Parameters Patient PaymentNotice PaymentReconciliation Person PlanDefinition Practitioner
PractitionerRole Procedure Provenance Questionnaire QuestionnaireResponse RelatedPerson RequestGroup
ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject RiskAssessment
RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest Slot Specimen SpecimenDefinition
StructureDefinition StructureMap Subscription Substance SubstanceNucleicAcid SubstancePolymer
SubstanceProtein SubstanceReferenceInformation SubstanceSourceMaterial SubstanceSpecification
SupplyDelivery SupplyRequest Task TerminologyCapabilities TestReport TestScript ValueSet
VerificationResult VisionPrescription
""".split())

#: Resources other resources point at: indexed so references resolve, not records themselves.
REFERENCE_TYPES = ("Organization", "Practitioner", "PractitionerRole", "Location", "Medication")
#: Resources that become items of a patient's record.
ITEM_TYPES = ("Condition", "MedicationRequest", "MedicationStatement", "Encounter", "Observation", "Procedure")

# Skip reasons (docs/data.md explains each; those a mapper returns are in fhir_resources).
NOT_USED = "not used by the record model"
COPY = "another copy of a resource already read"
DUPLICATE = "duplicate id"
NO_ID = "no id"
NOT_FHIR = "not a FHIR R4 resource type"
NO_TYPE = "no resourceType"
MALFORMED = "malformed JSON"
NOT_OBJECT = "not a JSON object"
NOT_A_BUNDLE = "in a .json file that is not a Bundle"
NO_RESOURCE = "entry without a resource"
NO_SUBJECT = "no subject"
SUBJECT_NOT_PATIENT = "subject is not a Patient"
SUBJECT_MISSING = "subject not found"
TOO_MANY_ITEMS = "the record has more items than the limit"
MALFORMED_RESOURCE = "an element has a shape FHIR does not allow"
#: what a malformed element raises when the mapping code meets it (never a Python traceback to a user)
_SHAPE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError)
TOO_LARGE = "larger than the record size limit"

_SKIP_STATUS = {
    "MedicationRequest": ("entered-in-error", "draft", "unknown"),
    "MedicationStatement": ("entered-in-error", "intended", "not-taken", "unknown"),
    "Encounter": ("cancelled", "entered-in-error", "planned"),
    "Observation": ("entered-in-error", "cancelled"),
    "Procedure": ("entered-in-error", "not-done"),
}

_DATE_RE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d|60)(?:\.\d+)?)?"
    r"(?:Z|[+-](?:0\d|1[0-4]):[0-5]\d)?)?)?)?")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


def read_fhir(path: str | Path, mapping: "Mapping | str | Path | dict | None" = None,
              strict: bool = False, max_items_per_record: int | None = None,
              max_record_bytes: int | None = None) -> tuple[list[r.PatientRecord], LoadReport]:
    """Read FHIR R4 Bundles or Bulk Data NDJSON into patient records.

    ``mapping``: a user mapping file (TOML) extending the default, a dict of
    its tables, or a compiled :class:`~engine.readers.mapping.Mapping`.
    ``strict``: raise :class:`ReadError` at the first problem (its message
    names the place) instead of reporting it and going on.
    ``max_items_per_record``: a patient with more items is not loaded (reported);
    ``max_record_bytes``: a longer NDJSON line is not read (reported). See engine.limits.
    Returns the records of every patient loaded and the :class:`LoadReport`.
    """
    reader = FhirReader(load_mapping(mapping), strict=strict, source=str(path))
    reader.max_items, reader.max_bytes = max_items_per_record, max_record_bytes
    # Reading allocates hundreds of thousands of small dicts and keeps many of them
    # until the records are built; the cyclic garbage collector would walk them over
    # and over (it more than doubles the time) and finds nothing: none of them form
    # cycles. It is paused while reading and restored after.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        reader.read_path(Path(path))
        records = reader.assemble()
    finally:
        if was_enabled:
            gc.enable()
    return records, reader.report


def read_fhir_json(data: "bytes | str | dict | list", source: str = "<request>",
                   mapping: "Mapping | str | Path | dict | None" = None, strict: bool = False,
                   max_items_per_record: int | None = None,
                   max_record_bytes: int | None = None) -> tuple[list[r.PatientRecord], LoadReport]:
    """Read FHIR R4 held in memory (a request body): a Bundle, one resource, or a
    JSON array of resources, as JSON text or already parsed.

    Problems are placed at ``source`` (entry index for a Bundle or an array).
    ``mapping`` may be a compiled :class:`Mapping`, which an embedding service
    should load once and reuse.
    """
    m = mapping if isinstance(mapping, Mapping) else load_mapping(mapping)
    reader = FhirReader(m, strict=strict, source=source)
    reader.max_items, reader.max_bytes = max_items_per_record, max_record_bytes
    reader.report.files.append(source)
    reader.report.formats["bundle"] += 1
    here = (source, None, None)
    doc: Any = data
    if isinstance(data, (bytes, str)):
        size = len(data)
        if max_record_bytes is not None and size > max_record_bytes:
            reader.problem(here, f"the data is {size:,} bytes; the limit is {max_record_bytes:,}")
            reader.report.files_failed.append(source)
            return [], reader.report
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            reader.problem((source, e.lineno, None), f"malformed JSON: {e.msg} (column {e.colno})")
            reader.report.files_failed.append(source)
            return [], reader.report
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        reader._bundle(doc, source, None)
    elif isinstance(doc, dict):
        reader.take(doc, here, None, None)
    elif isinstance(doc, list):
        for i, res in enumerate(doc):
            reader.take(res, (source, None, i), None, None)
    else:
        reader.problem(here, "not FHIR: expected a JSON object (a Bundle or a resource) or an array of resources")
        reader.report.files_failed.append(source)
        return [], reader.report
    return reader.assemble(), reader.report


def file_kind(name: str) -> str | None:
    """"bundle", "ndjson", or None for a file that is not FHIR data by its name."""
    low = name.lower()
    if low.endswith(".gz"):
        low = low[:-3]
    if low.endswith((".ndjson", ".jsonl")):
        return "ndjson"
    if low.endswith(".json"):
        return "bundle"
    return None


class FhirReader(ResourceMapper):
    """The reader's state across files. Use :func:`read_fhir`."""

    def __init__(self, mapping: Mapping, strict: bool = False, source: str = ""):
        self.m = mapping
        self.strict = strict
        self.report = LoadReport(source=source)
        self.max_items: int | None = None  # items per record (engine.limits)
        self.max_bytes: int | None = None  # bytes per NDJSON line
        self.fullurls: dict[str, tuple[str, str]] = {}
        self.identifiers: dict[tuple[str, str], tuple[str, str]] = {}
        self.targets: dict[tuple[str, str], dict] = {}
        self.target_digest: dict[tuple[str, str], bytes] = {}
        self.roles: dict[str, dict] = {}  # practitioner id -> PractitionerRole
        self.patients: list[tuple[Loc, dict, str]] = []
        self.first_seen: dict[tuple[str, str], Loc] = {}
        self.items: list[tuple[str, Loc, dict, str]] = []
        self._dates: dict[str, r.PartialDate | str] = {}
        self._systems: dict[str, str] = {}
        self._known_systems = set(mapping.systems.values())
        #: codes that record a social fact or a life event
        self._side_keys = set(mapping.social) | set(mapping.life_events) | mapping.household_size

    # -- problems and counts ---------------------------------------------------------

    def problem(self, loc: Loc, message: str, rtype: str | None = None, rid: str | None = None,
                field: str | None = None) -> None:
        p = Problem(file=loc[0], line=loc[1], entry=loc[2], resource_type=rtype, resource_id=rid,
                    field=field, message=message)
        if self.strict:
            raise ReadError(str(p), p)
        self.report.add_problem(p)

    def skip(self, rtype: str, reason: str) -> None:
        self.report.skipped[(rtype, reason)] += 1

    # -- pass 1: files ---------------------------------------------------------------

    def read_path(self, path: Path) -> None:
        if not path.exists():
            raise ReadError(f"{path}: no such file or folder")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            for f in files:
                kind = file_kind(f.name)
                if kind is None:
                    self.report.files_ignored.append(str(f))
                else:
                    self.read_file(f, kind)
        else:
            self.read_file(path, file_kind(path.name) or "bundle")

    def _bytes(self, f: Path) -> bytes | None:
        name = str(f)
        try:
            data = f.read_bytes()
        except OSError as e:
            self.problem((name, None, None), f"cannot read the file: {e.strerror or e}")
            return None
        if data[:2] == b"\x1f\x8b":
            try:
                data = _gunzip(data)
            except (OSError, EOFError, zlib.error) as e:
                self.problem((name, None, None), f"not a valid gzip file (truncated or corrupt): {e}")
                return None
        elif name.lower().endswith(".gz"):
            self.problem((name, None, None), "named .gz but not gzip-compressed; the file is not read")
            return None
        if data[:3] == b"\xef\xbb\xbf":
            data = data[3:]
        if not data.strip():
            self.problem((name, None, None), "empty file")
            return None
        return data

    def read_file(self, f: Path, kind: str) -> None:
        name = str(f)
        self.report.files.append(name)
        self.report.formats[kind] += 1
        data = self._bytes(f)
        if data is None:
            self.report.files_failed.append(name)
            return
        if kind == "ndjson":
            self._read_ndjson(data, name, f.name)
            return
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            self.problem((name, e.lineno, None), f"malformed JSON: {e.msg} (column {e.colno})")
            self.report.files_failed.append(name)
            return
        if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
            self._bundle(doc, name, None)
            return
        if not isinstance(doc, dict):
            self.problem((name, None, None), "not a FHIR resource: expected a JSON object (a Bundle)")
            self.report.files_failed.append(name)
            return
        rtype = doc.get("resourceType")
        label = rtype if isinstance(rtype, str) and rtype else "(no resourceType)"
        rid = doc.get("id") if isinstance(doc.get("id"), str) else None
        self.problem((name, None, None), f"expected a Bundle, found {label}; the file is not read",
                     label, rid, "resourceType")
        self.report.read[label] += 1
        self.skip(label, NOT_A_BUNDLE)

    def _read_ndjson(self, data: bytes, name: str, base: str) -> None:
        expected = base.split(".", 1)[0]
        if expected not in FHIR_R4_TYPES:
            expected = None
        loads = orjson.loads
        for lineno, line in enumerate(data.split(b"\n"), 1):
            if not line.strip():
                continue
            if self.max_bytes is not None and len(line) > self.max_bytes:
                self.problem((name, lineno, None), f"this line is {len(line):,} bytes; the limit is "
                             f"{self.max_bytes:,} per resource, so it is not read")
                self.report.read["(too large)"] += 1
                self.skip("(too large)", TOO_LARGE)
                continue
            try:
                res = loads(line)
            except orjson.JSONDecodeError as e:
                self.problem((name, lineno, None), f"malformed JSON: {e.msg} (column {e.colno})")
                self.report.read["(malformed JSON)"] += 1
                self.skip("(malformed JSON)", MALFORMED)
                continue
            if isinstance(res, dict) and res.get("resourceType") == "Bundle":
                self._bundle(res, name, lineno)
            else:
                self.take(res, (name, lineno, None), None, expected)

    def _bundle(self, doc: dict, name: str, line: int | None) -> None:
        entries = doc.get("entry", [])
        if not isinstance(entries, list):
            self.problem((name, line, None), "Bundle.entry is not a list", "Bundle", doc.get("id"), "entry")
            return
        for i, e in enumerate(entries):
            loc = (name, line, i)
            if not isinstance(e, dict) or not isinstance(e.get("resource"), dict):
                self.problem(loc, "entry without a resource", "Bundle", None, "entry.resource")
                self.report.read["(entry without a resource)"] += 1
                self.skip("(entry without a resource)", NO_RESOURCE)
                continue
            full = e.get("fullUrl")
            res = e["resource"]
            if res.get("resourceType") == "Bundle":
                self._bundle(res, name, line)  # a Bundle inside a Bundle: its entries are read
                continue
            self.take(res, loc, full if isinstance(full, str) else None, None)

    def take(self, res: Any, loc: Loc, full: str | None, expected: str | None) -> None:
        """Count one resource and index it (pass 1)."""
        report = self.report
        if not isinstance(res, dict):
            self.problem(loc, "not a FHIR resource: expected a JSON object")
            report.read["(not a JSON object)"] += 1
            self.skip("(not a JSON object)", NOT_OBJECT)
            return
        rtype = res.get("resourceType")
        rid = res.get("id")
        if not isinstance(rid, str) or not rid:
            rid = None
        if rtype is None or rtype == "":
            self.problem(loc, "no resourceType", None, rid, "resourceType")
            report.read["(no resourceType)"] += 1
            self.skip("(no resourceType)", NO_TYPE)
            return
        if not isinstance(rtype, str) or rtype not in FHIR_R4_TYPES:
            label = rtype[:80] if isinstance(rtype, str) else _r(rtype)
            self.problem(loc, f"{_r(rtype)} is not a FHIR R4 resource type", label, rid, "resourceType")
            report.read[label] += 1
            self.skip(label, NOT_FHIR)
            return
        report.read[rtype] += 1
        if expected is not None and rtype != expected:
            self.problem(loc, f"a {rtype} in a file of {expected} resources (read as a {rtype})",
                         rtype, rid, "resourceType")
        if rid is None and full:
            rid = full.rsplit(":", 1)[-1].rsplit("/", 1)[-1] or None  # urn:uuid:X or .../Type/X
        if rtype in ITEM_TYPES:
            if not self._first(rtype, rid, loc):
                return
            if full:
                self.fullurls[full] = (rtype, rid)
            self.items.append((rtype, loc, res, rid))
        elif rtype == "Patient":
            if not self._first(rtype, rid, loc):
                self.report.patients_skipped[DUPLICATE if rid else NO_ID] += 1
                return
            if full:
                self.fullurls[full] = (rtype, rid)
            self._identifiers(res, rtype, rid)
            self.patients.append((loc, res, rid))
        elif rtype in REFERENCE_TYPES:
            self._target(res, rtype, rid, loc, full)
        else:
            self.skip(rtype, NOT_USED)

    def _first(self, rtype: str, rid: str | None, loc: Loc) -> bool:
        """Whether this is the first resource of its type with this id (reported and skipped if not)."""
        if rid is None:
            self.problem(loc, "no id: the resource cannot be referred to or traced", rtype, None, "id")
            self.skip(rtype, NO_ID)
            return False
        key = (rtype, rid)
        first = self.first_seen.get(key)
        if first is not None:
            where = Problem(file=first[0], line=first[1], entry=first[2], message="").place
            self.problem(loc, f"duplicate id: {rtype}/{rid} was already read at {where}; this copy is skipped",
                         rtype, rid, "id")
            self.skip(rtype, DUPLICATE)
            return False
        self.first_seen[key] = loc
        return True

    def _identifiers(self, res: dict, rtype: str, rid: str) -> None:
        for ident in _seq(res.get("identifier")):
            if isinstance(ident, dict):
                system, value = ident.get("system"), ident.get("value")
                if isinstance(value, str):
                    self.identifiers.setdefault((_text(system) or "", value), (rtype, rid))

    def _target(self, res: dict, rtype: str, rid: str | None, loc: Loc, full: str | None) -> None:
        if rid is None:
            self.problem(loc, "no id: the resource cannot be referred to", rtype, None, "id")
            self.skip(rtype, NO_ID)
            return
        key = (rtype, rid)
        # the elements the reader uses; other differences between copies do not matter
        try:
            digest = orjson.dumps([res.get("name"), res.get("identifier"), res.get("organization"),
                                   res.get("practitioner"), res.get("code")], option=orjson.OPT_SORT_KEYS)
        except TypeError:  # nested deeper than JSON allows: only an object built in memory can be
            self.problem(loc, "an element is nested too deeply to read; the resource is skipped", rtype, rid)
            self.skip(rtype, MALFORMED_RESOURCE)
            return
        seen = self.target_digest.get(key)
        if full:
            self.fullurls.setdefault(full, key)
        if seen is not None:
            if seen == digest:
                self.skip(rtype, COPY)
            else:
                first = self.first_seen[key]
                where = Problem(file=first[0], line=first[1], entry=first[2], message="").place
                self.problem(loc, f"duplicate id: {rtype}/{rid} was already read at {where} with a different "
                             "name, identifier or code; the first copy is kept", rtype, rid, "id")
                self.skip(rtype, DUPLICATE)
            return
        self.target_digest[key] = digest
        self.first_seen[key] = loc
        self.targets[key] = res
        self._identifiers(res, rtype, rid)
        self.report.mapped[rtype] += 1

    # -- references ------------------------------------------------------------------

    def _resolve(self, ref: Any) -> tuple[str | None, str | None] | None:
        """(type, id) a Reference points at; type None when a urn does not resolve, id None when a
        conditional or logical reference names nothing read. None for no reference at all."""
        if not isinstance(ref, dict):
            return None
        text = ref.get("reference")
        if isinstance(text, str) and text:
            hit = self.fullurls.get(text)
            if hit is not None:
                return hit
            if text.startswith("urn:"):
                return None, text.rsplit(":", 1)[-1]
            if text.startswith("#"):
                return "#", text[1:]
            if "?" in text:
                rtype, _, query = text.partition("?")
                for part in query.split("&"):
                    key, _, value = part.partition("=")
                    if key == "identifier":
                        system, bar, code = value.partition("|")
                        hit = self.identifiers.get((system, code) if bar else ("", system))
                        if hit is not None:
                            return hit
                        return rtype.rsplit("/", 1)[-1], None
                return rtype.rsplit("/", 1)[-1], None
            parts = text.split("/_history/", 1)[0].rstrip("/").split("/")
            if len(parts) >= 2:
                return parts[-2], parts[-1]
            return None, parts[-1]
        ident = ref.get("identifier")
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            hit = self.identifiers.get((ident.get("system") or "", ident["value"]))
            if hit is not None:
                return hit
            return ref.get("type") if isinstance(ref.get("type"), str) else None, None
        return None

    # -- codes and dates -------------------------------------------------------------

    def system(self, uri: Any, rtype: str) -> str:
        if not isinstance(uri, str):
            uri = ""
        found = self._systems.get(uri)
        if found is None:
            found = self._systems[uri] = self.m.system(uri)
        if found not in self._known_systems:
            self.report.unknown_codes[(rtype, "code system not in the mapping", uri or "(none)", "", "")] += 1
        return found

    def codings(self, concept: Any, rtype: str, count: bool = True) -> list[tuple[str, str, str]]:
        """(system short name, code, display) of each coding of a CodeableConcept. ``count``:
        count codings from systems the mapping does not know (for clinical codes, not statuses)."""
        if not isinstance(concept, dict):
            return []
        out = []
        for c in _seq(concept.get("coding")):
            if isinstance(c, dict):
                code = c.get("code")
                if isinstance(code, str) and code:
                    display = c.get("display")
                    system = self.system(c.get("system"), rtype) if count else self.m.system(c.get("system") or "")
                    out.append((system, code, display if isinstance(display, str) else ""))
        return out

    def status_code(self, value: Any) -> str | None:
        """The code of a status that is a CodeableConcept (R4) or a plain code (STU3)."""
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            for c in _seq(value.get("coding")):
                if isinstance(c, dict) and isinstance(c.get("code"), str):
                    return c["code"]
        return None

    def pick(self, codings: list[tuple[str, str, str]]) -> tuple[str, str, str]:
        prefer = self.m.prefer
        best, rank = codings[0], prefer.get(codings[0][0], 99)
        for c in codings[1:]:
            k = prefer.get(c[0], 99)
            if k < rank:
                best, rank = c, k
        return best

    def date(self, value: Any, loc: Loc, rtype: str, rid: str, field: str) -> r.PartialDate | None:
        """A FHIR date, dateTime or instant as a PartialDate (the date as written, with its
        precision; any time and zone are dropped). An impossible date is reported and left out."""
        if not isinstance(value, str):
            self.problem(loc, f"{_r(value)} is not a date", rtype, rid, field)
            return None
        hit = self._dates.get(value)
        if hit is None:
            hit = self._dates[value] = _parse_date(value)
        if isinstance(hit, str):
            self.problem(loc, hit + "; the field is left empty", rtype, rid, field)
            return None
        return hit

    def _first_date(self, res: dict, loc: Loc, rtype: str, rid: str,
                    fields: tuple[str, ...]) -> r.PartialDate | None:
        for name in fields:
            if "." in name:
                outer, inner = name.split(".", 1)
                holder = res.get(outer)
                value = holder.get(inner) if isinstance(holder, dict) else None
            else:
                value = res.get(name)
            if value is not None:
                found = self.date(value, loc, rtype, rid, name)
                if found is not None:
                    return found
        return None

    # -- pass 2: mapping -------------------------------------------------------------

    def assemble(self) -> list[r.PatientRecord]:
        for (rtype, _), res in self.targets.items():
            if rtype == "PractitionerRole":  # every file read, so its practitioner resolves
                who = self._resolve(res.get("practitioner"))
                if who is not None and who[1]:
                    self.roles.setdefault(who[1], res)
        builders: dict[str, _Builder] = {}
        for loc, res, pid in self.patients:
            try:
                builders[pid] = _Builder(loc, res, self._patient(res, loc, pid))
            except _SHAPE_ERRORS as exc:
                self._malformed(loc, "Patient", pid, exc)
                self.report.patients_skipped[MALFORMED_RESOURCE] += 1
        self._builders = builders
        mappers = {"Condition": self._condition, "MedicationRequest": self._medication,
                   "MedicationStatement": self._medication, "Encounter": self._encounter,
                   "Observation": self._observation, "Procedure": self._procedure}
        for rtype, loc, res, rid in self.items:
            try:
                b = self._subject(res, rtype, rid, loc)
                if b is None:
                    continue
                status = res.get("status")
                if isinstance(status, str) and status in _SKIP_STATUS.get(rtype, ()):
                    self.skip(rtype, f"status {status}")
                    continue
                reason = mappers[rtype](res, loc, rid, b, rtype)
            except _SHAPE_ERRORS as exc:
                self._malformed(loc, rtype, rid, exc)
                continue
            if reason is None:
                self.report.mapped[rtype] += 1
                b.counts[rtype] += 1
            else:
                self.skip(rtype, reason)
        records = []
        items = self.report.items
        for pid, b in builders.items():
            if self.max_items is not None and sum(b.counts.values()) > self.max_items:
                self._too_many(b, pid)
                continue
            try:
                self._practice(b, pid)
                self._social(b)
                rec = r.PatientRecord(
                    patient=r.Patient(**b.fields), conditions=tuple(b.conditions), medications=tuple(b.medications),
                    encounters=tuple(b.encounters), observations=tuple(b.observations),
                    procedures=tuple(b.procedures), life_events=tuple(b.life_events))
            except _SHAPE_ERRORS as exc:
                self._drop(b, pid, MALFORMED_RESOURCE, f"the record cannot be built ({_why(exc)}); "
                           "the patient is not loaded")
                continue
            records.append(rec)
            self.report.mapped["Patient"] += 1
            items["conditions"] += len(b.conditions)
            items["medications"] += len(b.medications)
            items["procedures"] += len(b.procedures)
            items["life_events"] += len(b.life_events)
            for e in b.encounters:
                items["encounters: " + e.kind + (f" ({e.method or 'method unknown'})" if e.kind == "admission" else "")] += 1
            for o in b.observations:
                items["observations: " + o.kind + (
                    (" (impaired)" if o.impaired else " (not impaired)") if o.kind in ("adl", "iadl", "cognition")
                    else "")] += 1
        self.report.patients_loaded = len(records)
        return records

    def _too_many(self, b: _Builder, pid: str) -> None:
        """A record over the item limit is not loaded at all: evaluating part of a
        record would give an answer that looks complete and is not."""
        total = sum(b.counts.values())
        self._drop(b, pid, TOO_MANY_ITEMS, f"this patient's record has {total:,} items; the limit is "
                   f"{self.max_items:,} per record, so the patient is not loaded")

    def _drop(self, b: _Builder, pid: str, reason: str, message: str) -> None:
        self.problem(b.loc, message, "Patient", pid)
        for rtype, n in b.counts.items():  # the items move from mapped to skipped: the counts still balance
            self.report.mapped[rtype] -= n
            self.report.skipped[(rtype, reason)] += n
        self.skip("Patient", reason)
        self.report.patients_skipped[reason] += 1

    def _malformed(self, loc: Loc, rtype: str, rid: str | None, exc: Exception) -> None:
        self.problem(loc, f"an element does not have the shape FHIR gives it ({_why(exc)}); "
                     "the resource is skipped", rtype, rid)
        self.skip(rtype, MALFORMED_RESOURCE)

    def _subject(self, res: dict, rtype: str, rid: str, loc: Loc) -> _Builder | None:
        ref = res.get("subject")
        if ref is None and rtype == "MedicationStatement":
            ref = res.get("patient")
        target = self._resolve(ref)
        if target is None:
            self.problem(loc, "no subject: the item cannot be given to a patient", rtype, rid, "subject")
            self.skip(rtype, NO_SUBJECT)
            return None
        ttype, tid = target
        if ttype not in ("Patient", None):
            self.skip(rtype, SUBJECT_NOT_PATIENT)
            return None
        b = self._builders.get(tid) if tid else None
        if b is None:
            shown = ref.get("reference") or f"identifier {ref.get('identifier')}"
            self.problem(loc, f"refers to {shown}, which is not in the data", rtype, rid, "subject")
            self.skip(rtype, SUBJECT_MISSING)
            return None
        return b


def _why(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return f"{type(exc).__name__}: {_r(str(exc))[1:-1]}"


def _gunzip(data: bytes) -> bytes:
    """Decompress gzip data, every member of it (zlib checks each member's CRC and length)."""
    out = []
    while data:
        d = zlib.decompressobj(wbits=47)
        out.append(d.decompress(data))
        if not d.eof:
            raise EOFError("compressed data ended before the end-of-stream marker")
        data = d.unused_data
        if data[:2] != b"\x1f\x8b":
            if data.strip(b"\x00"):
                raise OSError("trailing data after the gzip stream")
            break
    return b"".join(out)


@functools.lru_cache(maxsize=1 << 16)  # a service reads the same dates request after request
def _parse_date(text: str) -> r.PartialDate | str:
    """A PartialDate, or the reason the text is not a date."""
    m = _DATE_RE.fullmatch(text)
    if m is None:
        return f"{text!r} is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD, or a dateTime)"
    year, month, day = m.group(1), m.group(2), m.group(3)
    if year == "0000":
        return f"{text!r} is not a date: there is no year 0"
    if month is not None and not 1 <= int(month) <= 12:
        return f"{text!r} is not a date: there is no month {int(month)}"
    if day is not None:
        last = calendar.monthrange(int(year), int(month))[1]
        if not 1 <= int(day) <= last:
            return f"{text!r} is not a date: there is no {int(day)} {_MONTHS[int(month) - 1]} {year}"
    text = "-".join(p for p in (year, month, day) if p is not None)
    found = _DAYS.get(text)
    if found is None:
        found = _DAYS[text] = r.PartialDate(text=text)
    return found


#: PartialDates by their text, shared between reads (they are immutable)
_DAYS: dict[str, r.PartialDate] = {}
