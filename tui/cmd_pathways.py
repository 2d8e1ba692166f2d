"""`pathways worklist`, `register`, `caseload`, `simulate` and `careplan`: pathways in motion.

Only click and the standard library are imported here; the engine, rich and
the data readers are imported inside the commands. The rules behind every
figure are in docs/pathways.md.
"""

from __future__ import annotations

import re
import sys

import click

_FORMATS = ("table", "csv", "jsonl")


class _AsOf(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):
        import datetime as dt

        from .run import AsOfDate
        return dt.date.fromisoformat(AsOfDate().convert(value, param, ctx))


AS_OF = _AsOf()

_data = click.option("--data", required=True, type=click.Path(exists=True),
                     help="Record file (.jsonl), a folder of tables, or FHIR R4 bundles / bulk NDJSON.")
_as_of = click.option("--as-of", "as_of", required=True, type=AS_OF,
                      help="The date to work out the state on (YYYY-MM-DD); there is no hidden clock.")
_param = click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
                      help='Override a parameter, pathway times included: review_interval="6 months" (repeatable).')
_strict = click.option("--strict", is_flag=True, help="Stop at the first problem in the data (exit 1).")
_mapping = click.option("--mapping", type=click.Path(exists=True, dir_okay=False), help="A local code mapping (TOML).")
_protocol = click.argument("protocol", type=click.Path(exists=True, dir_okay=False))


def _load(protocol: str, data: str, strict: bool, mapping: str | None, params: tuple[str, ...]):
    """The program, the records and the parameters; the load report goes to stderr."""
    from .run import load_data, load_program, parse_params

    program = load_program(protocol)
    parameters = parse_params(params)
    loaded = load_data(data, strict, mapping)
    click.echo(_load_summary(loaded), err=True)
    if not loaded.records:
        raise click.ClickException(f"no patients were loaded from {data}; nothing to work on")
    try:
        program.parameters(parameters)
    except Exception as exc:  # noqa: BLE001 - an engine error about the overrides, said plainly
        raise click.ClickException(str(exc)) from None
    return program, loaded.records, parameters


def _load_summary(loaded) -> str:
    if loaded.report is not None and hasattr(loaded.report, "summary"):
        return str(loaded.report.summary())
    skipped = sum(loaded.skipped.values())
    lines = [f"records: {loaded.read} read, {len(loaded.records)} loaded, {skipped} skipped"
             + (" (" + ", ".join(f"{r}: {n}" for r, n in sorted(loaded.skipped.items())) + ")" if skipped else "")]
    lines += [f"  {p}" for p in loaded.problems[:20]]
    if len(loaded.problems) > 20:
        lines.append(f"  ... and {len(loaded.problems) - 20} more")
    return "\n".join(lines)


def _pathway(program, name: str | None):
    from engine.pathway_state import find_pathway
    try:
        return find_pathway(program.protocol, name)
    except LookupError as exc:
        raise click.BadParameter(str(exc), param_hint="--pathway") from None


def _engine_errors():
    """Turn an evaluation that cannot be carried out into a plain message (exit 1)."""
    import contextlib

    import engine

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except engine.EngineError as exc:
            raise click.ClickException(str(exc)) from None
    return guard()


def _patient(records, patient: str, data: str):
    import difflib

    chosen = next((r for r in records if r.id == patient), None)
    if chosen is None:
        close = difflib.get_close_matches(patient, [r.id for r in records], n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise click.ClickException(f"no patient {patient!r} in {data} ({len(records)} patients loaded).{hint}")
    return chosen


def _write_rows(rows: list[dict], fmt: str, title: str, footer: str = "") -> None:
    import orjson

    from engine.worklist import COLUMNS

    if fmt == "jsonl":
        for r in rows:
            click.echo(orjson.dumps(r).decode())
    elif fmt == "csv":
        import csv
        import io
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in rows:
            writer.writerow(["; ".join(r[c]) if c == "findings" else
                             ("true" if r[c] is True else "false" if r[c] is False else "" if r[c] is None else r[c])
                             for c in COLUMNS])
        click.echo(buffer.getvalue(), nl=False)
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for col in ("patient", "practice", "step", "next action", "due", "overdue"):
            table.add_column(col, justify="right" if col == "overdue" else "left")
        for r in rows:
            late = f"{r['days_overdue']} days" if r["overdue"] else ""
            if r["recall"]:
                late += " (recall)"
            table.add_row(r["patient_id"], r["practice"] or "", r["step_label"] or r["step"] or "",
                          r["next_action"], r["due"] or "", late)
        console = Console(highlight=False, width=max(140, Console().width))
        console.print(table)
        findings = [(r["patient_id"], f) for r in rows for f in r["findings"]]
        for pid, f in findings:
            console.print(f"  {pid}: {f}", soft_wrap=True)
    if footer:
        click.echo(footer, err=True)


@click.command()
@_protocol
@click.option("--pathway", help="The pathway (default: the protocol's first).")
@_data
@_as_of
@click.option("--caseload", type=click.IntRange(min=1), help="Show one caseload: the N most urgent patients.")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="table", show_default=True)
@_param
@_strict
@_mapping
def worklist(protocol, pathway, data, as_of, caseload, fmt, params, strict, mapping) -> None:
    """Patients on a pathway with their step and next action, most urgent first.

    Overdue first (longest overdue at the top), then by due date, then by id."""
    from engine.caseload import case_managers
    from engine.worklist import population_for, row, states, worklist as order

    program, records, parameters = _load(protocol, data, strict, mapping, params)
    chosen = _pathway(program, pathway)
    with _engine_errors():
        population = population_for(program, records, as_of, parameters)
        listed = order(states(program, chosen, records, as_of, parameters, population))
    total = len(listed)
    footer = f"{total} patient{'s' * (total != 1)} on {chosen.name} as of {as_of.isoformat()}"
    if caseload:
        listed = listed[:caseload]
        footer += (f"; showing the {len(listed)} most urgent (a caseload of {caseload}); "
                   f"{case_managers(total, caseload)} case manager(s) at {caseload} each (rounded up)")
    _write_rows([row(s) for s in listed], fmt, f"{chosen.label or chosen.name}: worklist as of {as_of}", footer)


@click.command()
@_protocol
@click.option("--pathway", help="The pathway whose register to list (default: the protocol's first).")
@_data
@_as_of
@click.option("--due", "due_within", type=click.IntRange(min=0), metavar="DAYS",
              help="Recall list: only patients overdue or due within DAYS days.")
@click.option("--overdue", is_flag=True, help="Recall list: only patients overdue.")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="table", show_default=True)
@_param
@_strict
@_mapping
def register(protocol, pathway, data, as_of, due_within, overdue, fmt, params, strict, mapping) -> None:
    """Who is on a pathway's register, such as COPD, and who is due or overdue for recall."""
    from engine.worklist import population_for, recall, row, states

    program, records, parameters = _load(protocol, data, strict, mapping, params)
    chosen = _pathway(program, pathway)
    with _engine_errors():
        population = population_for(program, records, as_of, parameters)
        listed = recall(states(program, chosen, records, as_of, parameters, population), as_of, due_within, overdue)
    what = "overdue" if overdue else f"due within {due_within} days or overdue" if due_within is not None else ""
    footer = f"{len(listed)} patient{'s' * (len(listed) != 1)} on the {chosen.name} register" + \
             (f", {what}" if what else "") + f" as of {as_of.isoformat()}"
    _write_rows([row(s) for s in listed], fmt, f"{chosen.label or chosen.name}: register as of {as_of}", footer)


@click.command()
@_protocol
@_data
@_as_of
@click.option("--caseload", "caseloads", multiple=True, type=click.IntRange(min=1), default=(50, 80),
              show_default=True, help="Patients per case manager (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_param
@_strict
@_mapping
def caseload(protocol, data, as_of, caseloads, fmt, params, strict, mapping) -> None:
    """Patients per level and pathway step, and the case managers they need."""
    import orjson

    from engine.caseload import caseload as plan

    program, records, parameters = _load(protocol, data, strict, mapping, params)
    with _engine_errors():
        result = plan(program, records, as_of, parameters, tuple(sorted(set(caseloads))))
    if fmt == "json":
        click.echo(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=120)
    data_ = result.to_dict()
    levels = Table(title=f"Patients per level ({result.levels_name or 'no levels'}), as of {as_of}",
                   title_justify="left")
    levels.add_column("level")
    levels.add_column("patients", justify="right")
    for lv in data_["per_level"]:
        levels.add_row(f"{lv['level']} {lv['label']}" if lv["level"] is not None else "unknown", f"{lv['patients']:,}")
    console.print(levels)
    for name, steps in data_["per_step"].items():
        t = Table(title=f"Pathway {name}: patients per step", title_justify="left")
        t.add_column("step")
        t.add_column("patients", justify="right")
        for step, n in steps.items():
            t.add_row(step, f"{n:,}")
        console.print(t)
    managers = Table(title=f"Case managers for level {result.top_level} patients", title_justify="left")
    managers.add_column("practice")
    managers.add_column("patients", justify="right")
    for c in result.caseloads:
        managers.add_column(f"at {c}", justify="right")
    for r in data_["case_managers"]:
        managers.add_row(r["practice"], f"{r['patients']:,}", *(f"{r[f'at_{c}']:,}" for c in result.caseloads))
    console.print(managers)
    console.print("Case managers = patients on the top level / caseload, rounded up. A community matron holds "
                  "50-80 patients; more than 80 highly complex patients on one caseload is unsustainable.",
                  soft_wrap=True)


_EVERY = re.compile(r"\s*(\d+)\s*(day|week|month|year)s?\s*")


def _every(ctx, param, value: str) -> tuple[int, str]:
    found = _EVERY.fullmatch(value or "")
    if not found or int(found.group(1)) < 1:
        raise click.BadParameter(f"{value!r} is not an interval: write a number and a unit, "
                                 "e.g. \"1 month\", \"2 weeks\", \"3 months\"")
    return int(found.group(1)), found.group(2) + "s"


@click.command()
@_protocol
@_data
@click.option("--from", "start", required=True, type=AS_OF, help="The first date (YYYY-MM-DD).")
@click.option("--to", "end", required=True, type=AS_OF, help="The last date (YYYY-MM-DD), included.")
@click.option("--every", default="1 month", show_default=True, callback=_every, help='e.g. "1 month", "2 weeks".')
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True),
              help="Also write the plot-ready long table: date, outcome, value, count, entered, left.")
@_param
@_strict
@_mapping
def simulate(protocol, data, start, end, every, csv_path, params, strict, mapping) -> None:
    """Re-stratify at each date and count who entered and left each level and pathway."""
    from engine.simulate import COLUMNS, dates, simulate as run

    if end < start:
        raise click.BadParameter(f"--to {end} is before --from {start}", param_hint="--to")
    when = dates(start, end, *every)
    if len(when) > 400:
        raise click.BadParameter(f"{len(when)} dates from {start} to {end}: use a longer --every (400 at most)",
                                 param_hint="--every")
    program, records, parameters = _load(protocol, data, strict, mapping, params)
    with _engine_errors():
        rows = run(program, records, when, parameters)
    if csv_path:
        import csv
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(COLUMNS)
            writer.writerows(r.as_list() for r in rows)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(records):,} patients re-stratified every {every[0]} {every[1]} from {start} to {end}",
                  title_justify="left")
    for col in ("date", "outcome", "value", "patients", "entered", "left"):
        table.add_column(col, justify="right" if col in ("patients", "entered", "left") else "left")
    for r in rows:
        table.add_row(*(str(v) for v in r.as_list()))
    Console(highlight=False, width=100).print(table)
    click.echo("entered/left: patients who hold the value now and did not at the date before, and the reverse "
               "(blank on the first date)" + (f"; CSV written to {csv_path}" if csv_path else ""), err=True)


@click.command()
@_protocol
@click.option("--plan", "plan_name", help="The care-plan template (default: the protocol's first).")
@_data
@click.option("--patient", required=True, help="The patient's id.")
@_as_of
@click.option("--format", "fmt", type=click.Choice(["markdown", "text", "fhir"]), default="markdown",
              show_default=True, help="fhir: an R4 CarePlan with contained Goals.")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), help="Write the plan here.")
@_param
@_strict
@_mapping
def careplan(protocol, plan_name, data, patient, as_of, fmt, output, params, strict, mapping) -> None:
    """One patient's personalised care plan from a template: every line with the criterion behind it."""
    import orjson

    from engine.careplan import PlanError, find_plan, personalise, to_markdown, to_text
    from engine.worklist import population_for

    program, records, parameters = _load(protocol, data, strict, mapping, params)
    try:
        find_plan(program.protocol, plan_name)
    except PlanError as exc:
        raise click.BadParameter(str(exc), param_hint="--plan") from None
    chosen = _patient(records, patient, data)
    with _engine_errors():
        population = population_for(program, records, as_of, parameters)
        plan = personalise(program, plan_name, chosen, as_of, parameters, population)
    if fmt == "fhir":
        from engine.fhir_careplan import care_plan_resource
        text = orjson.dumps(care_plan_resource(plan), option=orjson.OPT_INDENT_2).decode() + "\n"
    else:
        text = to_markdown(plan) if fmt == "markdown" else to_text(plan)
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
        click.echo(f"care plan for {patient} written to {output}", err=True)
    else:
        sys.stdout.write(text)


def patient_highlight(protocol: str, pathway: str | None, data: str, patient: str, as_of, strict: bool = False,
                      mapping: str | None = None, params: tuple[str, ...] = ()):
    """For `pathways graph --patient`: (the pathway, the steps passed in order, where the patient is now).
    ``params`` move the pathway's times as in `worklist` (``review_interval="6 months"``)."""
    program, records, parameters = _load(protocol, data, strict, mapping, params)
    chosen = _pathway(program, pathway)
    record = _patient(records, patient, data)
    from engine.pathway_state import state_of
    from engine.worklist import population_for

    with _engine_errors():
        state = state_of(program, chosen, record, as_of, parameters, explain=False,
                         population=population_for(program, records, as_of, parameters))
    if not state.on_pathway:
        raise click.ClickException(f"patient {patient} is not on {chosen.name} as of {as_of}: no events on it, "
                                   "and the entry criteria are not met")
    now = f"exit:{state.exit}" if state.exit else state.step
    return chosen, [v.step for v in state.history], now

def add_to(group: click.Group) -> None:
    """Register this module's commands on the `pathways` group."""
    for command in (careplan, caseload, register, simulate, worklist):
        group.add_command(command)
