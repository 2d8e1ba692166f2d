"""The load report: what a reader read, mapped and skipped, and every problem it met.

Nothing is dropped silently. Every resource read is either mapped into the
record model or skipped with a reason, so for each resource type
``mapped + skipped == read`` (:meth:`LoadReport.unbalanced` lists any type
where it does not hold). Problems with the input (malformed JSON, an
impossible date, a reference to a missing patient...) are listed with the
place they were found: file, line (NDJSON) or entry index (Bundle), resource
type and id, and field.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class ReadError(Exception):
    """Input a reader cannot read (a missing path, an unreadable mapping), or, with
    ``strict=True``, the first problem met. ``problem`` is that problem when there is one."""

    def __init__(self, message: str, problem: "Problem | None" = None):
        super().__init__(message)
        self.problem = problem


@dataclass(frozen=True)
class Problem:
    """One problem with the input, and where it is."""

    file: str
    message: str
    line: int | None = None  # 1-based line of an NDJSON file, or of a JSON syntax error
    entry: int | None = None  # 0-based index in Bundle.entry
    resource_type: str | None = None
    resource_id: str | None = None
    field: str | None = None

    @property
    def place(self) -> str:
        """``file, line 3`` / ``file, entry[3]`` / ``file, line 2, entry[0]``."""
        parts = [self.file]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.entry is not None:
            parts.append(f"entry[{self.entry}]")
        return ", ".join(parts)

    def __str__(self) -> str:
        what = []
        if self.resource_type or self.resource_id:
            what.append(f"{self.resource_type or '?'}/{self.resource_id or '?'}")
        if self.field:
            what.append(self.field)
        where = self.place + (": " + ", ".join(what) if what else "")
        return f"{where}: {self.message}"

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "entry": self.entry,
                "resource_type": self.resource_type, "resource_id": self.resource_id,
                "field": self.field, "message": self.message}


#: how many problems a report keeps in full; beyond this it only counts them
MAX_PROBLEMS = 10_000


@dataclass
class LoadReport:
    """Counts and problems of one read.

    ``read``, ``mapped``: resource type -> count. ``skipped``: (resource type,
    reason) -> count. ``unknown_codes``: (resource type, what was being decided,
    code system, code, display) -> count: codes the mapping did not recognise
    where it needed to (an encounter type, an admission's type), counted rather
    than listed one by one.
    """

    source: str = ""
    formats: Counter = field(default_factory=Counter)  # "bundle" / "ndjson" -> files
    files: list[str] = field(default_factory=list)
    files_ignored: list[str] = field(default_factory=list)  # not FHIR data by their name
    files_failed: list[str] = field(default_factory=list)  # could not be read at all
    read: Counter = field(default_factory=Counter)
    mapped: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    patients_loaded: int = 0
    patients_skipped: Counter = field(default_factory=Counter)  # reason -> count
    unknown_codes: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    items: Counter = field(default_factory=Counter)  # record item kind -> count

    # -- building ---------------------------------------------------------------------

    def add_problem(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    # -- reading ----------------------------------------------------------------------

    def skipped_by_type(self) -> Counter:
        out: Counter = Counter()
        for (rtype, _reason), n in self.skipped.items():
            out[rtype] += n
        return out

    def unbalanced(self) -> dict[str, tuple[int, int, int]]:
        """Resource types where mapped + skipped != read: type -> (read, mapped, skipped).
        Empty when every resource is accounted for."""
        skipped = self.skipped_by_type()
        kinds = set(self.read) | set(self.mapped) | set(skipped)
        return {k: (self.read[k], self.mapped[k], skipped[k]) for k in sorted(kinds)
                if self.mapped[k] + skipped[k] != self.read[k]}

    @property
    def resources_read(self) -> int:
        return sum(self.read.values())

    def to_dict(self) -> dict:
        skipped = self.skipped_by_type()
        return {
            "source": self.source,
            "formats": dict(self.formats),
            "files": len(self.files),
            "files_ignored": list(self.files_ignored),
            "files_failed": list(self.files_failed),
            "resources": {k: {"read": self.read[k], "mapped": self.mapped[k], "skipped": skipped[k],
                              "skipped_by_reason": {r: n for (t, r), n in sorted(self.skipped.items())
                                                    if t == k}}
                          for k in sorted(self.read)},
            "patients": {"loaded": self.patients_loaded, "skipped": dict(self.patients_skipped)},
            "items": dict(self.items),
            "unknown_codes": [{"resource_type": t, "decision": d, "system": s, "code": c,
                               "display": disp, "count": n}
                              for (t, d, s, c, disp), n in self.unknown_codes.most_common()],
            "problem_count": self.problem_count,
            "problems": [p.to_dict() for p in self.problems],
        }

    def summary(self, problems: int = 10, codes: int = 10) -> str:
        """A plain-text summary: counts per resource type, skip reasons, patients,
        unknown codes and the first ``problems`` problems."""
        lines = []
        fmt = ", ".join(f"{n} {k} file{'s' if n != 1 else ''}" for k, n in sorted(self.formats.items()))
        lines.append(f"Read {self.source or 'input'}: {fmt or 'no files'}"
                     + (f"; {len(self.files_ignored)} other file(s) ignored" if self.files_ignored else "")
                     + (f"; {len(self.files_failed)} file(s) could not be read" if self.files_failed else ""))
        lines.append(f"Patients: {self.patients_loaded} loaded, {sum(self.patients_skipped.values())} skipped"
                     + "".join(f"; {n} {r}" for r, n in sorted(self.patients_skipped.items())))
        skipped = self.skipped_by_type()
        width = max((len(k) for k in self.read), default=8)
        lines.append(f"{'resource type':<{width}}  {'read':>8}  {'mapped':>8}  {'skipped':>8}")
        for k in sorted(self.read, key=lambda t: (-self.read[t], t)):
            lines.append(f"{k:<{width}}  {self.read[k]:>8}  {self.mapped[k]:>8}  {skipped[k]:>8}")
        if self.skipped:
            lines.append("Skipped, by reason:")
            for (t, r), n in sorted(self.skipped.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1])):
                lines.append(f"  {t}: {n} {r}")
        if self.unknown_codes:
            lines.append(f"Codes the mapping does not know ({sum(self.unknown_codes.values())} uses,"
                         f" {len(self.unknown_codes)} distinct; add them to a mapping file):")
            for (t, d, s, c, disp), n in self.unknown_codes.most_common(codes):
                lines.append(f"  {n:>6}  {t} {d}: {s}|{c}" + (f" {disp!r}" if disp else ""))
            if len(self.unknown_codes) > codes:
                lines.append(f"  ... and {len(self.unknown_codes) - codes} more")
        if self.problem_count:
            lines.append(f"Problems: {self.problem_count}")
            for p in self.problems[:problems]:
                lines.append(f"  {p}")
            if self.problem_count > problems:
                lines.append(f"  ... and {self.problem_count - problems} more")
        else:
            lines.append("Problems: none")
        return "\n".join(lines)
