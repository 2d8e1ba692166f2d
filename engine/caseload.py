"""Caseload planning: how many patients a protocol selects, and how many case managers that means.

Patients are counted per level (the protocol's first ``levels``, else an
imported protocol's) and per
step of each pathway. Case managers needed = patients on the top level
(the first level declared, case management) divided by the caseload, rounded
up (``ceil``): 81 patients at a caseload of 80 need 2 case managers. The
domain's sustainable range is 50 to 80 patients per community matron, so
both are given, for each practice and overall. The overall figure is the
population's count divided and rounded up once; the per-practice figures
are each rounded up, so their sum can exceed the overall one (a matron
working across practices is the difference).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from pathways import model as m
from pathways.records import PatientRecord

CASELOADS = (50, 80)
NO_PRACTICE = "(no practice)"


def case_managers(patients: int, caseload: int) -> int:
    """Case managers needed for ``patients`` at ``caseload`` each, rounded up.

    >>> case_managers(81, 80), case_managers(80, 80), case_managers(0, 50)
    (2, 1, 0)
    """
    if caseload <= 0:
        raise ValueError("a caseload is a number of patients, 1 or more")
    return math.ceil(patients / caseload)


@dataclass
class Caseload:
    """The counts behind a caseload plan."""

    levels_name: str | None
    level_labels: dict[object, str] = field(default_factory=dict)  # number -> label, in declared order
    top_level: object = None
    patients: int = 0
    per_level: Counter = field(default_factory=Counter)  # level (None: unknown) -> patients
    top_by_practice: Counter = field(default_factory=Counter)
    per_step: dict[str, Counter] = field(default_factory=dict)  # pathway -> step (or exit:NAME) -> patients
    caseloads: tuple[int, ...] = CASELOADS

    def managers(self) -> list[dict]:
        """Case managers needed, overall first, then per practice (by name)."""
        top = self.per_level.get(self.top_level, 0)
        rows = [{"practice": "overall", "patients": top,
                 **{f"at_{c}": case_managers(top, c) for c in self.caseloads}}]
        for practice in sorted(self.top_by_practice):
            n = self.top_by_practice[practice]
            rows.append({"practice": practice, "patients": n,
                         **{f"at_{c}": case_managers(n, c) for c in self.caseloads}})
        return rows

    def to_dict(self) -> dict:
        return {
            "patients": self.patients,
            "levels": self.levels_name,
            "per_level": [{"level": k, "label": self.level_labels.get(k, "unknown"), "patients": self.per_level.get(k, 0)}
                          for k in [*self.level_labels, None] if k is not None or self.per_level.get(None)],
            "per_step": {p: dict(c) for p, c in self.per_step.items()},
            "case_managers": self.managers(),
            "rule": "case managers = patients on the top level / caseload, rounded up (ceil)",
        }


def levels_ref(protocol: m.Protocol, purpose: str = "levels") -> tuple[m.Levels, m.Ref] | None:
    """The protocol's first ``levels`` (else the first one an imported protocol declares,
    e.g. the pyramid that case_management.pw uses), with a reference to evaluate it."""
    found = protocol.of_kind("levels")
    if found:
        return found[0], m.Ref(id=f"{purpose}:{found[0].name}", name=found[0].name, target=f"decl:{found[0].name}")
    for use in protocol.uses:
        inner = use.protocol.of_kind("levels") if use.protocol is not None else []
        if inner:
            return inner[0], m.Ref(id=f"{purpose}:{use.alias}.{inner[0].name}", name=inner[0].name,
                                   namespace=use.alias, target=f"import:{use.alias}:{inner[0].name}")
    return None


def caseload(program, records: Iterable[PatientRecord], as_of, parameters=None,
             caseloads: tuple[int, ...] = CASELOADS) -> Caseload:
    """Count patients per level and per pathway step on ``as_of``."""
    from .pathway_state import states_of
    from .worklist import population_for

    records = list(records)
    protocol = program.protocol
    found = levels_ref(protocol, "caseload")
    levels, ref = found if found else (None, None)
    out = Caseload(ref.dotted if ref else None, caseloads=caseloads)
    pathways_ = protocol.of_kind("pathway")
    for p in pathways_:
        out.per_step[p.name] = Counter({s.name: 0 for s in p.steps})
    if levels is not None:
        for lv in (*levels.levels, *((levels.fallback,) if levels.fallback else ())):
            out.level_labels[lv.number] = lv.label
        out.top_level = levels.levels[0].number if levels.levels else None
    population = population_for(program, records, as_of, parameters)
    wanted = (ref,) if ref is not None else ()
    for record in records:
        out.patients += 1
        # one evaluation per patient serves the level and every pathway's entry criteria
        got, values = states_of(program, pathways_, record, as_of, parameters, explain=False,
                                  population=population, extra=wanted)
        for p, s in zip(pathways_, got):
            if s.active:
                key = s.step if s.exit is None else f"exit:{s.exit}"
                out.per_step[p.name][key] += 1
        if ref is not None:
            level = values[0]
            out.per_level[level] += 1
            if level == out.top_level:
                out.top_by_practice[record.patient.practice or NO_PRACTICE] += 1
    return out
