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
the Patient file. The second maps each resource into the record model.
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
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from pathways import records as r

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

# Skip reasons (docs/data.md explains each).
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
NO_CODE = "no code"
NO_DATE = "no date"
UNMAPPED_ENCOUNTER = "encounter kind not in the mapping"
IGNORED = "the mapping says ignore"
TOO_MANY_ITEMS = "the record has more items than the limit"
MALFORMED_RESOURCE = "an element has a shape FHIR does not allow"
#: what a malformed element raises when the mapping code meets it (never a Python traceback to a user)
_SHAPE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError)
TOO_LARGE = "larger than the record size limit"

_CONDITION_STATUS = {"active": "active", "recurrence": "recurrence", "relapse": "relapse",
                     "inactive": "inactive", "remission": "remission", "resolved": "resolved"}
_REQUEST_STATUS = {"active": "active", "on-hold": "on_hold", "cancelled": "cancelled",
                   "completed": "completed", "stopped": "stopped"}
_STATEMENT_STATUS = {"active": "active", "on-hold": "on_hold", "completed": "completed", "stopped": "stopped"}
_SKIP_STATUS = {
    "MedicationRequest": ("entered-in-error", "draft", "unknown"),
    "MedicationStatement": ("entered-in-error", "intended", "not-taken", "unknown"),
    "Encounter": ("cancelled", "entered-in-error", "planned"),
    "Observation": ("entered-in-error", "cancelled"),
    "Procedure": ("entered-in-error", "not-done"),
}
_GENDERS = {"male": "male", "female": "female", "other": "other", "unknown": "unknown"}

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


class FhirReader:
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

    def _condition(self, res: dict, loc: Loc, rid: str, b: _Builder, rtype: str) -> str | None:
        ver = self.status_code(res.get("verificationStatus"))
        if ver in self.m.skip_verification:
            return f"verificationStatus {ver}"
        codes = self.codings(res.get("code"), rtype)
        if not codes:
            self.problem(loc, "no coded code: the condition cannot be matched", rtype, rid, "code")
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
                    for c in self.codings(ext.get("valueCodeableConcept"), rtype, False):
                        found = m.method_extension_codes.get(c[1])
                        if found:
                            return found
                    coding = ext.get("valueCoding")
                    if isinstance(coding, dict):
                        found = m.method_extension_codes.get(coding.get("code"))
                        if found:
                            return found
        for c in self.codings(res.get("priority"), rtype, False):
            found = m.method_priority.get(c[1])
            if found:
                return found
        hosp = res.get("hospitalization")
        if isinstance(hosp, dict):
            for c in self.codings(hosp.get("admitSource"), rtype, False):
                found = m.method_admit_source.get(c[1])
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
        codes = self.codings(res.get("code"), rtype)
        if not codes:
            self.problem(loc, "no coded code: the observation cannot be matched", rtype, rid, "code")
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
        codes = self.codings(res.get("code"), rtype)
        if not codes:
            self.problem(loc, "no coded code: the procedure cannot be matched", rtype, rid, "code")
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
