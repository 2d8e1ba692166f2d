"""Patient records: what the engine evaluates a protocol against.

Every item keeps ``source_id``, the id of the record it came from (a FHIR
resource id, a row number), so an explanation can point back to it.
Dates may be known only to the month or the year (:class:`PartialDate`).
"""

from __future__ import annotations

import calendar
import datetime as dt
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PartialDate(_Frozen):
    """A date known to the day, the month or the year: ``2021-04-01``, ``2021-04``, ``2021``.

    ``earliest`` and ``latest`` are the first and last days it could be.

    >>> PartialDate.parse("2020-02").latest
    datetime.date(2020, 2, 29)
    >>> PartialDate.parse("1950").precision
    'year'
    """

    text: str

    @field_validator("text")
    @classmethod
    def _valid(cls, text: str) -> str:
        parts = text.split("-")
        if not (1 <= len(parts) <= 3 and len(parts[0]) == 4 and all(p.isdigit() for p in parts)
                and all(len(p) == 2 for p in parts[1:])):
            raise ValueError(f"{text!r} is not a date (YYYY, YYYY-MM or YYYY-MM-DD)")
        nums = [int(p) for p in parts]
        if nums[0] < 1 or (len(nums) > 1 and not 1 <= nums[1] <= 12):
            raise ValueError(f"{text!r} is not a date")
        if len(nums) == 3:
            dt.date(*nums)  # raises ValueError for 2023-02-30
        return text

    @classmethod
    def parse(cls, text: str) -> "PartialDate":
        return cls(text=text)

    @classmethod
    def of(cls, day: dt.date) -> "PartialDate":
        return cls(text=day.isoformat())

    @property
    def precision(self) -> Literal["day", "month", "year"]:
        return ("year", "month", "day")[self.text.count("-")]

    @cached_property
    def earliest(self) -> dt.date:
        parts = [int(p) for p in self.text.split("-")]
        return dt.date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)

    @cached_property
    def latest(self) -> dt.date:
        parts = [int(p) for p in self.text.split("-")]
        if len(parts) == 3:
            return dt.date(*parts)
        month = parts[1] if len(parts) > 1 else 12
        return dt.date(parts[0], month, calendar.monthrange(parts[0], month)[1])

    def __str__(self) -> str:
        return self.text


class Item(_Frozen):
    """Fields every record item has."""

    source_id: str = ""


class Patient(_Frozen):
    id: str
    birth_date: PartialDate | None = None
    sex: Literal["female", "male", "other", "unknown"] = "unknown"
    date_of_death: PartialDate | None = None
    practice: str | None = None
    lives_alone: bool | None = None  # None: not recorded
    has_carer: bool | None = None


class Condition(Item):
    code: str
    system: str = "snomed"
    onset: PartialDate | None = None
    abatement: PartialDate | None = None
    status: Literal["active", "recurrence", "relapse", "inactive", "remission", "resolved"] = "active"


class Medication(Item):
    code: str
    system: str = "dmd"
    start: PartialDate | None = None
    end: PartialDate | None = None
    status: Literal["active", "on_hold", "stopped", "completed", "cancelled"] = "active"
    monthly_cost: float | None = None  # GBP, when known


EncounterKind = Literal["admission", "ae", "outpatient", "gp", "community", "social_work"]


class Encounter(Item):
    """A contact with a service: an inpatient admission (elective or emergency),
    an A&E attendance, an outpatient appointment, a GP consultation, a
    community or district-nursing contact, a social-work assessment visit."""

    kind: EncounterKind
    start: PartialDate
    end: PartialDate | None = None
    method: Literal["emergency", "elective", "other"] | None = None  # admissions
    code: str = ""


ObservationKind = Literal["adl", "iadl", "cognition", "fall", "other"]


class Observation(Item):
    """An observation or assessment: ADL/IADL impairment, cognitive impairment,
    a fall, or any coded observation with a value and unit.

    For an assessment (``adl``, ``iadl``, ``cognition``), ``impaired`` says what
    it found: False records that the patient was assessed and no impairment
    was found, which is how "not impaired" differs from "never assessed"."""

    kind: ObservationKind = "other"
    impaired: bool = True
    code: str = ""
    system: str = "snomed"
    date: PartialDate
    value: float | None = None
    unit: str = ""


class Procedure(Item):
    code: str
    system: str = "snomed"
    date: PartialDate


class LifeEvent(Item):
    event: Literal["bereavement", "carer_death", "moved_home", "entered_care_home"]
    date: PartialDate


class PathwayEventRecord(Item):
    event: Literal["referred", "approached", "consented", "declined", "assessed", "plan_agreed",
                   "reviewed", "admitted", "discharged", "exited", "died"]
    date: PartialDate
    pathway: str = ""


class PatientRecord(_Frozen):
    """Everything known about one patient."""

    patient: Patient
    conditions: tuple[Condition, ...] = ()
    medications: tuple[Medication, ...] = ()
    encounters: tuple[Encounter, ...] = ()
    observations: tuple[Observation, ...] = ()
    procedures: tuple[Procedure, ...] = ()
    life_events: tuple[LifeEvent, ...] = ()
    pathway_events: tuple[PathwayEventRecord, ...] = ()

    @property
    def id(self) -> str:
        return self.patient.id
