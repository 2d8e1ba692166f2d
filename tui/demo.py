"""``pathways demo``: stratify a generated population with the library's pyramid.

Generates a synthetic population (``engine.generate``), runs
``library/ltc_pyramid.pw`` over it in two streaming passes (the Castlefields
"top 3% of frequent visitors" term ranks each patient within their practice,
so the practices' distributions are gathered first; the generator is simply
run again for the second pass, so nothing is held), and prints:

* the pyramid: patients and share per level, 3 down to 0, with the levels' labels;
* the hidden population: patients for whom level 3 is *unknown* (their record
  lacks what would decide it, most often an ADL/IADL assessment) and who were
  therefore placed on a lower level;
* the community matrons (case managers) needed at caseloads of 50 and 80, for
  all practices and for the three largest;
* one explained patient per level: the first patient found on it, with the
  upper levels of the engine's explanation (``Result.explain_text()``), cut
  to what a reader takes in at a glance.

Everything printed depends only on the options: the same command prints the
same text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

CASELOADS = (50, 80)
MARKS = ("\u2713 ", "+ ")  # the explanation's "met" mark, unicode and ascii


class LibraryNotFound(Exception):
    pass


def find_library() -> Path:
    """The repository's ``library/`` folder, next to the installed packages."""
    import engine

    library = Path(engine.__file__).resolve().parent.parent / "library"
    if not (library / "ltc_pyramid.pw").is_file():
        raise LibraryNotFound(
            f"the protocol library was not found: expected {library / 'ltc_pyramid.pw'}.\n"
            "`pathways demo` needs the repository's library/ folder next to the installed packages: "
            "install from a clone of the repository with `pip install -e .` and run it from there.")
    return library


@dataclass
class Summary:
    """What one run of the pyramid over a population found."""

    total: int = 0
    levels: dict[object, int] = field(default_factory=dict)
    hidden: int = 0  # level 3 unknown (so not assigned)
    practices: dict[str, int] = field(default_factory=dict)  # practice -> patients
    level3_by_practice: dict[str, int] = field(default_factory=dict)
    examples: dict[object, object] = field(default_factory=dict)  # level -> the first Result on it


def stratify(program, source, as_of) -> Summary:
    """Run the pyramid over ``source()`` (called once per pass), with explanations on so
    that each result carries its trace (which says whether level 3 was unknown)."""
    decl = program.protocol.get("level")
    top = decl.levels[0]
    summary = Summary()
    for result in program.evaluate_population(source, as_of, explain=True):
        level = result.outcomes["level"]
        practice = result.record.patient.practice or "(no practice)"
        summary.total += 1
        summary.levels[level] = summary.levels.get(level, 0) + 1
        summary.practices[practice] = summary.practices.get(practice, 0) + 1
        if level == top.number:
            summary.level3_by_practice[practice] = summary.level3_by_practice.get(practice, 0) + 1
        elif result.trace.get(top.id, False) is None:
            summary.hidden += 1
        if level not in summary.examples:
            summary.examples[level] = result
    return summary


def case_managers(patients: int, caseload: int) -> int:
    return math.ceil(patients / caseload)


def short_explanation(text: str) -> str:
    """The readable top of an explanation.

    Kept: the outcome line; each level with its connective and criteria (the
    first two levels of reasons); under a level that was not assigned, the
    "N of M met" counts that say how far the patient is from it (and, when it
    is unknown, the items that are unknown: the data to collect); under the
    level that was assigned, the items and criteria that were met, which say
    why. Each kept line keeps the lines above it that it hangs from. Left
    out: evidence, rules, parameters and the "why not" section (``pathways
    explain`` prints them all)."""
    lines = [line for line in text.splitlines() if line.strip()]
    start = next((k for k, line in enumerate(lines[1:], 1) if not line.startswith(" ")), len(lines))
    body: list[str] = []
    for line in lines[start:]:
        if line.strip().startswith("Why not"):
            break
        body.append(line)
    keep = [False] * len(body)
    matched = unknown = False
    for k, line in enumerate(body):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if indent == 4:  # a level: assigned when it is marked as met, undecided when marked "?"
            matched, unknown = stripped.startswith(MARKS), stripped.startswith("? ")
        wanted = indent <= 10 or (indent <= 22 and (
            stripped.startswith("at least") or (matched and stripped.startswith(MARKS))
            or (unknown and stripped.startswith("? \u201c"))))
        if not wanted:
            continue
        keep[k] = True
        # and the lines it hangs from
        need = indent
        for j in range(k - 1, -1, -1):
            above = len(body[j]) - len(body[j].lstrip())
            if above < need:
                keep[j] = True
                need = above
                if above <= 10:
                    break
    return "\n".join(line for line, kept in zip(body, keep) if kept)


def _level_labels(program) -> list[tuple[object, str]]:
    decl = program.protocol.get("level")
    levels = [(lv.number, lv.label) for lv in decl.levels]
    if decl.fallback is not None:
        levels.append((decl.fallback.number, decl.fallback.label))
    return sorted(levels, key=lambda x: x[0], reverse=True)


def run_demo(patients: int, seed: int, as_of, console: Console) -> None:
    import engine
    from engine.generate import generate

    library = find_library()
    program = engine.load(library / "ltc_pyramid.pw")
    header = program.protocol.header
    day = as_of

    def source():  # a fresh pass over the same population: nothing is held
        return generate(patients, seed, day)

    summary = stratify(program, source, day)
    ascii_only = not (console.encoding or "").lower().startswith("utf")

    console.print(Text(f"Long term conditions pyramid: {summary.total:,} synthetic patients "
                       f"(seed {seed}), as of {day.isoformat()}", style="bold"), soft_wrap=True)
    console.print(Text(f"protocol {header.name} {header.version} (library/ltc_pyramid.pw, "
                       f"sha256 {program.protocol.sha256[:12]}); population from engine.generate: "
                       "England's age structure, all ages"), soft_wrap=True)
    console.print()

    pyramid = Table(title="Patients per level", title_justify="left")
    pyramid.add_column("level", justify="right")
    pyramid.add_column("label", no_wrap=True)
    pyramid.add_column("patients", justify="right")
    pyramid.add_column("share", justify="right")
    pyramid.add_column("")
    for number, label in _level_labels(program):
        count = summary.levels.get(number, 0)
        share = count / summary.total if summary.total else 0.0
        bar = ("#" if ascii_only else "\u2588") * max(1 if count else 0, round(share * 20))
        pyramid.add_row(str(number), label, f"{count:,}", f"{share:.1%}", bar)
    unassigned = summary.levels.get(None, 0)
    if unassigned:
        pyramid.add_row("-", "no level (unknown)", f"{unassigned:,}", f"{unassigned / summary.total:.1%}", "")
    console.print(pyramid)
    top_number, top_label = _level_labels(program)[0]
    console.print(Text(
        f"Hidden population: {summary.hidden:,} patients are unknown at level {top_number} "
        f"({top_label}): their records lack what would decide it (for instance a recent ADL or IADL "
        "assessment), so they were placed on a lower level. Assessing them could add them to the caseload."),
        soft_wrap=True)
    console.print()

    managers = Table(title="Case managers needed", title_justify="left")
    managers.add_column("practice")
    managers.add_column("patients", justify="right")
    managers.add_column(f"level {top_number}", justify="right")
    for caseload in CASELOADS:
        managers.add_column(f"at {caseload}", justify="right")
    level3 = summary.levels.get(top_number, 0)
    managers.add_row("all practices", f"{summary.total:,}", f"{level3:,}",
                     *(str(case_managers(level3, c)) for c in CASELOADS))
    largest = sorted(summary.practices.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    for practice, size in largest:
        count = summary.level3_by_practice.get(practice, 0)
        managers.add_row(practice, f"{size:,}", f"{count:,}", *(str(case_managers(count, c)) for c in CASELOADS))
    console.print(managers)
    console.print(Text(f"Case managers: level {top_number} patients divided by the caseload, rounded up. "
                       "A community matron holds 50-80 patients; more than 80 highly complex patients on "
                       "one caseload is unsustainable (DOMAIN.md)."), soft_wrap=True)
    console.print()

    console.print(Text("One patient per level, explained (the first found on each level; "
                       "`pathways explain` gives the whole explanation with the evidence)", style="bold"),
                  soft_wrap=True)
    console.print(Text("key: " + ("+ met, x not met, ? unknown, - not evaluated" if ascii_only else
                                  "\u2713 met, \u2717 not met, ? unknown, \u2013 not evaluated")))
    for number, label in _level_labels(program):
        result = summary.examples.get(number)
        console.print()
        if result is None:
            console.print(Text(f"level {number} ({label}): no patient in this sample"))
            continue
        patient = result.record.patient
        dash = "-" if ascii_only else "\u2014"
        console.print(Text(f"level {number} {dash} {label}: patient {result.patient_id} ({patient.sex}, born "
                           f"{patient.birth_date or 'unknown'}, practice {patient.practice})", style="bold"),
                      soft_wrap=True)
        console.print(Text(short_explanation(result.explain_text(ascii=ascii_only))), soft_wrap=True)
