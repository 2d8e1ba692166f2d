"""The tabular layout (engine/tables.py, docs/data.md) as normalised SQL views.

Every backend first exposes each table file as a raw relation whose cells
are read as text (CSV) or as stored (Parquet). The views here turn cells into
what the per-patient reader (engine.tables._value) would make of them:

* a date cell (``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``, or a Parquet date) is
  two columns, ``<name>_lo`` and ``<name>_hi``: the earliest and latest day
  it can be, which is how imprecise dates stay imprecise;
* an empty cell is not recorded (NULL), and a column's default applies;
* a code system is named by its short name (``http://snomed.info/sct`` and
  ``SNOMED`` are ``snomed``), as engine.record_index.code_key does;
* booleans accept the same words (true/yes/1/t/y, false/no/0/f/n).

``problems_sql`` counts the cells the per-patient reader would refuse, so a
columnar run never silently reads a row that the reader would have skipped.
"""

from __future__ import annotations

from pathways import schema
from engine.tables import COLUMNS, TABLES

from .sql import lit

TRUE_WORDS = ("true", "yes", "1", "t", "y")
FALSE_WORDS = ("false", "no", "0", "f", "n")
#: lower-cased system names and URIs -> short names (engine.record_index.SYSTEMS)
SYSTEMS = {**{uri.lower(): short for short, uri in schema.CODE_SYSTEMS.items()},
           **{short: short for short in schema.CODE_SYSTEMS}}
#: the column a backend adds to the raw patients relation: the row's place in its file, from 0
ROW_NUMBER = "file_row_number"
DEFAULT_SYSTEM = {"conditions": "snomed", "medications": "dmd", "observations": "snomed", "procedures": "snomed"}


def _text(col: str, present: set[str]) -> str:
    """A cell as text, NULL when empty or absent (an empty cell is not recorded)."""
    if col not in present:
        return "CAST(NULL AS VARCHAR)"
    q = f'CAST("{col}" AS VARCHAR)'  # (quoted: `end` is a keyword)
    # a cell whose first character is printable ASCII other than a space is not blank, and needs
    # no TRIM: TRIM copies every cell it reads (it strips Unicode spaces too, so any other first
    # character is tested by TRIM as before). Patient ids are most of the cells and seldom repeat,
    # so they are rarely read from a Parquet dictionary, where a function runs once per value
    return f"CASE WHEN {q} BETWEEN '!' AND '~' THEN {q} WHEN TRIM({q}) = '' THEN NULL ELSE {q} END"


def _trimmed(col: str, present: set[str]) -> str:
    if col not in present:
        return "CAST(NULL AS VARCHAR)"
    # one TRIM per reading: a date cell is read by several tests, and the text is the cost
    return f"NULLIF(TRIM(CAST(\"{col}\" AS VARCHAR)), '')"


def date_bounds(text: str) -> tuple[str, str]:
    """Earliest and latest day of a partial date held as text."""
    day = f"TRY_CAST({text} AS DATE)"
    month = f"TRY_CAST({text} || '-01' AS DATE)"
    year_lo = f"TRY_CAST({text} || '-01-01' AS DATE)"
    year_hi = f"TRY_CAST({text} || '-12-31' AS DATE)"
    lo = f"CASE LENGTH({text}) WHEN 10 THEN {day} WHEN 7 THEN {month} WHEN 4 THEN {year_lo} END"
    hi = f"CASE LENGTH({text}) WHEN 10 THEN {day} WHEN 7 THEN LAST_DAY({month}) WHEN 4 THEN {year_hi} END"
    return lo, hi


#: SQL types of typed (Parquet) columns that need no reading from text
BOOLEAN_TYPES = {"BOOLEAN"}
NUMBER_TYPES = {"DOUBLE", "FLOAT", "REAL", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT"}
DATE_TYPES = {"DATE"}


def typed(col: str, present, kinds: set[str]) -> bool:
    """Is the column stored with one of these SQL types? ``present`` maps names to types (a set of
    names: every column is text). A typed cell is used as stored: turning a Parquet boolean or
    double into text and back is most of what reading it costs."""
    kind = present.get(col) if isinstance(present, dict) else None
    return kind is not None and kind.upper() in kinds


def _bool(col: str, present: set[str], default: str = "NULL") -> str:
    if typed(col, present, BOOLEAN_TYPES):
        return f"COALESCE(\"{col}\", {default})" if default != "NULL" else f"\"{col}\""
    t = f"LOWER({_trimmed(col, present)})"
    words_t = ", ".join(lit(w) for w in TRUE_WORDS)
    words_f = ", ".join(lit(w) for w in FALSE_WORDS)
    return f"CASE WHEN {t} IN ({words_t}) THEN TRUE WHEN {t} IN ({words_f}) THEN FALSE ELSE {default} END"


def _system(col: str, present: set[str], default: str) -> str:
    raw = f"COALESCE({_text(col, present)}, {lit(default)})"
    # short names first: the tables are written with them (``snomed``), and each row stops at its own
    order = sorted(SYSTEMS.items(), key=lambda kv: (kv[0] != kv[1], kv[0]))
    whens = " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in order)
    return f"CASE LOWER({raw}) {whens} ELSE {raw} END"


def view_sql(table: str, raw: str, present: set[str] | dict[str, str]) -> str:
    """SELECT of the normalised view of ``table`` over the raw relation ``raw``; ``present``: the raw
    relation's column names, or names -> SQL types (typed Parquet columns are then read as stored)."""
    cols: list[str] = []
    for column in COLUMNS[table]:
        name = column.name
        if column.type == "date" and typed(name, present, DATE_TYPES):
            cols += [f"\"{name}\" AS {name}_lo", f"\"{name}\" AS {name}_hi"]
            if table != "patients":
                cols.append(f"CAST(NULL AS VARCHAR) AS {name}_t")
        elif column.type == "date":
            # TRIM alone, not NULLIF(TRIM(..), ''): an empty cell has no length of 10, 7 or 4 and so
            # no bounds either way, and NULLIF is expanded to a CASE that trims twice per reading
            text = f"TRIM(CAST(\"{name}\" AS VARCHAR))" if name in present else "CAST(NULL AS VARCHAR)"
            lo, hi = date_bounds(text)
            cols += [f"{lo} AS {name}_lo", f"{hi} AS {name}_hi"]
            if table != "patients":  # the cell's text, for tests cheaper than its bounds (plan.since_test)
                cols.append(f"{text} AS {name}_t")
        elif column.type == "boolean":
            default = "TRUE" if (table, name) == ("observations", "impaired") else "NULL"
            cols.append(f"{_bool(name, present, default)} AS {name}")
        elif column.type == "number" and typed(name, present, NUMBER_TYPES):
            cols.append(f"CAST(\"{name}\" AS DOUBLE) AS {name}")
        elif column.type == "number":
            cols.append(f"TRY_CAST({_trimmed(name, present)} AS DOUBLE) AS {name}")
        elif column.type == "code":
            default = {("patients", "sex"): "unknown", ("conditions", "status"): "active",
                       ("medications", "status"): "active", ("observations", "kind"): "other"}.get((table, name))
            value = _trimmed(name, present)
            cols.append(f"COALESCE({value}, {lit(default)}) AS {name}" if default else f"{value} AS {name}")
        elif name == "system":
            cols.append(f"{_system(name, present, DEFAULT_SYSTEM[table])} AS system")
        elif name == "patient_id":
            cols.append(f"{patient_key(present)} AS patient_id")
        else:
            cols.append(f"{_text(name, present)} AS {name}")
    if table == "patients":
        # the patient's row in its file: the output keeps the per-patient engine's (file) order,
        # and sorting by an integer is cheaper than by the id's text
        cols.append("file_row_number AS pk" if ROW_NUMBER in present else "CAST(NULL AS BIGINT) AS pk")
    return f"SELECT {', '.join(cols)} FROM {raw}"


#: a date cell's shapes (``YYYY-MM-DD``, ``YYYY-MM``, ``YYYY``) as GLOB patterns of ASCII digits
DATE_SHAPES = ("[0-9]" * 4 + "-" + "[0-9]" * 2 + "-" + "[0-9]" * 2, "[0-9]" * 4 + "-" + "[0-9]" * 2, "[0-9]" * 4)


def problem_test(table: str, present: set[str] | dict[str, str]) -> str | None:
    """A test, on one raw row of ``table``, of what the per-patient reader would refuse or skip
    (bad dates, booleans, numbers or codes; required values missing): ``TRUE`` when a required
    column is absent (every row lacks it), None when nothing can be wrong. ``present`` as for
    view_sql: with types, a typed date or boolean needs no test and a typed number only that it
    is finite."""
    tests = []
    for column in COLUMNS[table]:
        name = column.name
        if name not in present:
            if column.required:
                return "TRUE"
            continue
        if column.type == "date" and typed(name, present, DATE_TYPES) or \
                column.type == "boolean" and typed(name, present, BOOLEAN_TYPES):
            if column.required:  # a typed date or boolean is as the reader reads it
                tests.append(f"\"{name}\" IS NULL")
            continue
        if column.type == "number" and typed(name, present, NUMBER_TYPES):
            q = f"CAST(\"{name}\" AS DOUBLE)"
            tests += [f"{q} IS NULL"] if column.required else []
            tests.append(f"(isinf({q}) OR isnan({q}))")
            continue
        # the cell trimmed, without NULLIF: an empty cell is told by ``= ''``. Each test reads it
        # several times and a filter shares nothing, so every reading is one TRIM, not two
        value = f"TRIM(CAST(\"{name}\" AS VARCHAR))"
        filled = f"{value} <> ''"  # NULL for a missing cell: never a problem but when required
        if column.required:
            # a first character of printable ASCII is not blank: no TRIM (see _text)
            raw = f"CAST(\"{name}\" AS VARCHAR)"
            tests.append(f"(CASE WHEN {raw} BETWEEN '!' AND '~' THEN FALSE ELSE ({value} = '') IS NOT FALSE END)")
        if column.type == "date":
            # the shapes the reader accepts (GLOB: five times cheaper than the same regular
            # expression), each with the day it names (TRY_CAST refuses 2023-02-30): a whole day,
            # the commonest, is settled by the first GLOB and one cast
            whole, month, year = (f"{value} GLOB '{shape}'" for shape in DATE_SHAPES)
            good = (f"({whole} AND TRY_CAST({value} AS DATE) IS NOT NULL) OR "
                    f"({month} AND TRY_CAST({value} || '-01' AS DATE) IS NOT NULL) OR "
                    f"({year} AND TRY_CAST({value} || '-01-01' AS DATE) IS NOT NULL)")
            tests.append(f"({filled} AND NOT ({good}))")
        elif column.type == "boolean":
            words = ", ".join(lit(w) for w in TRUE_WORDS + FALSE_WORDS)
            tests.append(f"({filled} AND LOWER({value}) NOT IN ({words}))")
        elif column.type == "number":
            tests.append(f"({filled} AND NOT COALESCE(isfinite(TRY_CAST({value} AS DOUBLE)), FALSE))")
        elif column.type == "code":
            choices = ", ".join(lit(c) for c in column.choices)
            tests.append(f"({filled} AND {value} NOT IN ({choices}))")
    return " OR ".join(tests) if tests else None


def problems_sql(table: str, raw: str, present: set[str]) -> str | None:
    """SELECT COUNT(*) of rows the per-patient reader would refuse or skip (see problem_test)."""
    test = problem_test(table, present)
    return None if test is None else f"SELECT COUNT(*) FROM {raw} WHERE {test}"


def patient_key(present: set[str]) -> str:
    """The patient id as the views read it (``patient_id`` of every ``t_<table>``)."""
    return _text("patient_id", present)


__all__ = ["ROW_NUMBER", "TABLES", "date_bounds", "patient_key", "problem_test", "problems_sql", "view_sql"]
