"""A protocol model compiled to one columnar query: a row per patient, a column per outcome and item.

The compiler walks the same model the per-patient engine walks
(engine/evaluate.py) and reproduces each rule as SQL over the normalised
views of engine/columnar/sources.py:

* lists of record items (``admissions in the last 12 months where ...``)
  become three-valued tests on item rows, aggregated per patient in one
  GROUP BY per table (``agg_<table>``): sure items, items that may count, and
  for impairments the assessments that found none;
* total stays merge overlapping stays with window functions (gaps and
  islands), once with the narrowest dates and once with the widest;
* declarations become columns, stacked in stages (``s0``, ``s1``...) so a
  definition is computed once and read by name;
* population-relative terms (``is in the top 3% of practice``, ``percentile``)
  are window functions over the group, with the engine's tie rule.

The as-of date and the parameters are constants of the query: a plan is for
one run. Whatever cannot be compiled raises :class:`Unsupported` naming the
construct and its line, before anything runs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pathways import model as m
from pathways import schema

from engine import calendar as cal
from engine.values import DateR, Qty, Rng

from . import sqlmath as sm
from .sql import dbl, lit
from .unsupported import Unsupported
from .values import NULL, ItemSet, V, unknown

#: collection -> (table, SQL test on the table's rows)
COLLECTIONS = {
    "conditions": ("conditions", "TRUE"),
    "medications": ("medications", "TRUE"),
    "admissions": ("encounters", "kind = 'admission'"),
    # an admission of unknown method is in neither list, not maybe in them (docs/data.md, section 3)
    "emergency_admissions": ("encounters", "kind = 'admission' AND COALESCE(method = 'emergency', FALSE)"),
    "elective_admissions": ("encounters", "kind = 'admission' AND COALESCE(method = 'elective', FALSE)"),
    "ae_attendances": ("encounters", "kind = 'ae'"),
    "outpatient_appointments": ("encounters", "kind = 'outpatient'"),
    "gp_consultations": ("encounters", "kind = 'gp'"),
    "community_contacts": ("encounters", "kind = 'community'"),
    "social_work_visits": ("encounters", "kind = 'social_work'"),
    "observations": ("observations", "TRUE"),
    "adl_impairments": ("observations", "kind = 'adl' AND impaired"),
    "iadl_impairments": ("observations", "kind = 'iadl' AND impaired"),
    "cognitive_impairments": ("observations", "kind = 'cognition' AND impaired"),
    "falls": ("observations", "kind = 'fall'"),
    "procedures": ("procedures", "TRUE"),
    "life_events": ("life_events", "TRUE"),
    "pathway_events": ("pathway_events", "TRUE"),
}
#: collection -> a test on a column that is never empty which every row of the list (and every
#: assessment that found no impairment) passes: a table's pass skips the other rows before any
#: three-valued test (most encounters are GP visits; most observations are of no kind a list reads)
SCOPES = {
    "admissions": "kind = 'admission'",
    "emergency_admissions": "kind = 'admission'",
    "elective_admissions": "kind = 'admission'",
    "ae_attendances": "kind = 'ae'",
    "outpatient_appointments": "kind = 'outpatient'",
    "gp_consultations": "kind = 'gp'",
    "community_contacts": "kind = 'community'",
    "social_work_visits": "kind = 'social_work'",
    "adl_impairments": "kind = 'adl'",
    "iadl_impairments": "kind = 'iadl'",
    "cognitive_impairments": "kind = 'cognition'",
    "falls": "kind = 'fall'",
}
#: impairments: the assessments of the same kind that found none
ASSESSED = {"adl_impairments": "adl", "iadl_impairments": "iadl", "cognitive_impairments": "cognition"}
#: the date that places an item in a window (engine.record_index.item_date)
ITEM_DATE = {"conditions": "onset", "medications": "start", "encounters": "start"}
TABLE_FIELDS = {
    "conditions": {"code": "text", "system": "text", "onset": "date", "abatement": "date", "status": "text"},
    "medications": {"code": "text", "system": "text", "start": "date", "end": "date", "status": "text",
                    "monthly_cost": "num"},
    "encounters": {"kind": "text", "start": "date", "end": "date", "method": "text", "code": "text"},
    "observations": {"kind": "text", "code": "text", "system": "text", "date": "date", "value": "num",
                     "unit": "text"},
    "procedures": {"code": "text", "system": "text", "date": "date"},
    "life_events": {"event": "text", "date": "date"},
    "pathway_events": {"event": "text", "date": "date", "pathway": "text"},
}


@dataclass
class Output:
    """One column of the result: an outcome or an audit column."""

    name: str          # column name (outcome name, or the node id of an audit column)
    kind: str          # bool, num, days, date, text, level
    label: str
    outcome: bool = False
    line: int | None = None


@dataclass
class Plan:
    """The compiled query and what its columns mean."""

    sql: str
    outputs: list[Output]
    tables: tuple[str, ...]
    as_of: dt.date
    parameters: dict[str, str] = field(default_factory=dict)


def since_test(d: str, since: dt.date) -> str:
    """Keeps every row whose date ``d`` may be on or after ``since`` (and a few more): a table pass
    skips the rows it fails before any three-valued test. A cell held as text of a whole day is
    compared as a day directly (what its bounds both are: see sources.date_bounds), without working
    out its bounds, which is most of what the test would cost; a shorter cell is kept (a month or a
    year, or no date: its bounds decide later); a typed date (no text: ``_t`` NULL) is tested by its
    bounds, which are the cell itself."""
    day = lit(since)
    return (f"COALESCE(LENGTH({d}_t) <> 10 OR TRY_CAST({d}_t AS DATE) >= {day}, "
            f"{d}_hi IS NULL OR {d}_hi >= {day})")


def _q(name: str) -> str:
    """A column name as an identifier (node ids hold dots and slashes)."""
    return '"' + name.replace('"', '""') + '"'


class Compiler:
    """Compiles one Program for one as-of date and parameter set."""

    def __init__(self, program, as_of: dt.date, parameters: dict[str, str] | None = None):
        self.program = program
        self.as_of = as_of
        self.parameters = dict(parameters or {})
        self.overrides = program.parameters(parameters)
        self.aggs: dict[str, list[tuple[str, str]]] = {}
        self.agg_index: dict[tuple[str, str], str] = {}
        self.agg_since: dict[str, dt.date | None] = {}
        self.agg_scope: dict[str, set[str] | None] = {}
        self.alias_scope: dict[str, set[str] | None] = {}  # aggregate -> the scopes it was asked with
        self.code_lists: dict[str, dict[tuple[str, tuple[str, ...]], int]] = {}  # table -> (system, codes) -> bit
        self.base_extra: list[tuple[str, str, str]] = []  # (cte name, cte sql, joined column list)
        self.stages: list[list[tuple[str, str]]] = [[]]
        # stage -> (cte name, cte sql, columns it adds, join condition; None: by patient)
        self.stage_ctes: dict[int, list[tuple[str, str, list[str], str | None]]] = {}
        self.decls: dict[tuple[str, str], V] = {}
        self.lists: dict[str, list[V]] = {}
        self.outputs: list[Output] = []
        self.names: set[str] = set()
        self.counter = 0
        self.AS_OF = lit(as_of)

    # --- entry point -------------------------------------------------------------------------
    def compile(self, audit_columns: bool = True) -> Plan:
        root = self.program._fast
        outcome_values = []
        for name in self.program.outcome_names:
            outcome_values.append((name, self.decl(root, "", name)))
        final = []
        for name, v in outcome_values:
            decl = root.decls[name]
            kind = "level" if isinstance(decl, m.Levels) else v.kind
            final += self._columns(name, v)
            self.outputs.insert(len([o for o in self.outputs if o.outcome]),
                                Output(name, kind, decl.label or name, True, decl.span.line))
        if not audit_columns:
            self.outputs = [o for o in self.outputs if o.outcome]
        for out in self.outputs:
            if not out.outcome:
                final += [f"{_q(out.name)}"] + ([f"{_q(out.name + '__hi')}"] if out.kind in ("num", "days", "date")
                                                 else [])
        return Plan(self._sql(final), self.outputs, tuple(sorted(self.aggs)), self.as_of, self.parameters)

    def _columns(self, name: str, v: V) -> list[str]:
        if v.kind in ("num", "days", "date"):
            return [f"{v.lo} AS {_q(name)}", f"{v.hi} AS {_q(name + '__hi')}"]
        return [f"{v.lo} AS {_q(name)}"]

    def _sql(self, final: list[str]) -> str:
        ctes = []
        for table, cols in self.aggs.items():
            scope = self.agg_scope.get(table)
            body = ", ".join(f"{self._scoped(sql, alias, scope)} AS {alias}" for alias, sql in cols)
            since, d = self.agg_since.get(table), ITEM_DATE.get(table, "date")
            tests = [] if since is None else [since_test(d, since)]
            if scope:  # first: the lists' scopes (equalities on a code the Parquet reader tests while scanning)
                tests.insert(0, "(" + " OR ".join(f"({x})" for x in sorted(scope)) + ")")
            where = f" WHERE {' AND '.join(tests)}" if tests else ""
            ctes.append(f"agg_{table} AS (SELECT patient_id, {body} FROM {self._source(table)}{where} "
                        "GROUP BY patient_id)")
        joins, picked = [], []
        for table, cols in self.aggs.items():
            joins.append(f"LEFT JOIN agg_{table} ON agg_{table}.patient_id = p.patient_id")
            picked += [f"agg_{table}.{alias}" for alias, _ in cols]
        for name, sql, cols in self.base_extra:
            ctes.append(f"{name} AS ({sql})")
            joins.append(f"LEFT JOIN {name} ON {name}.patient_id = p.patient_id")
            picked += [f"{name}.{c}" for c in cols]
        base_cols = ", ".join(["p.*", *picked, *(f"{sql} AS {_q(c)}" for c, sql in self.stages[0])])
        ctes.append(f"s0 AS (SELECT {base_cols} FROM t_patients p {' '.join(joins)})")
        for k in range(1, len(self.stages)):
            extra_joins, extra_cols = [], []
            for name, sql, cols, on in self.stage_ctes.get(k, []):
                ctes.append(f"{name} AS ({sql})")
                extra_joins.append(f"LEFT JOIN {name} ON {on or f'{name}.patient_id = s{k - 1}.patient_id'}")
                extra_cols += [f"{name}.{c}" for c in cols]
            cols = ", ".join([f"s{k - 1}.*", *extra_cols, *(f"{sql} AS {_q(c)}" for c, sql in self.stages[k])])
            ctes.append(f"s{k} AS (SELECT {cols} FROM s{k - 1} {' '.join(extra_joins)})")
        last = f"s{len(self.stages) - 1}"
        return ("WITH " + ",\n".join(ctes) + f"\nSELECT patient_id, {', '.join(final)} FROM {last} "
                "ORDER BY pk, patient_id")

    def _scoped(self, sql: str, alias: str, table_scope: set[str] | None) -> str:
        """A sum whose rows lie in fewer kinds than the table's pass reads, as a sum over those kinds
        only: ``SUM(CASE WHEN kind = 'gp' THEN x END)``. The pass reads every kind some list reads
        (most encounters are GP visits), and each sum's test costs the same on every row it is
        computed for; under CASE only the rows of its own kinds compute it. A row outside an
        aggregate's scope adds nothing to it (that is what lets the pass skip rows outside every
        scope), and a sum over no row is NULL, which is read as a patient with no such rows."""
        own = self.alias_scope.get(alias)
        if not own or own == table_scope or not (sql.startswith("SUM(") and sql.endswith(")")):
            return sql
        inner = sql[4:-1]
        if len(own) == 1:
            # under its own CASE the scope's test holds wherever it is repeated inside (a list's
            # `kind = 'gp'`): read as TRUE, one test less per row and sum
            (test,) = own
            inner = inner.replace(f"({test})", "(TRUE)")
        return f"SUM(CASE WHEN {' OR '.join(f'({x})' for x in sorted(own))} THEN {inner} END)"

    def _source(self, table: str) -> str:
        """The table's rows, with ``codes_mask`` when its lists test codes against code lists: one
        join with the lists' codes gives each row a bit per list it is in, instead of comparing its
        code with every code of every list (a long ``IN`` is a comparison per code per row). A row
        without a code has no mask (NULL), as ``code IN (...)`` is NULL for it."""
        lists = self.code_lists.get(table)
        if not lists:
            return f"t_{table}"
        bits: dict[tuple[str, str], int] = {}
        for (system, codes), bit in lists.items():
            for code in codes:
                bits[(system, code)] = bits.get((system, code), 0) | (1 << bit)
        rows = ", ".join(f"({lit(sy)}, {lit(co)}, {mask})" for (sy, co), mask in sorted(bits.items()))
        return (f"(SELECT t.*, CASE WHEN t.code IS NULL THEN NULL ELSE COALESCE(cl.cl_mask, 0) END AS codes_mask "
                f"FROM t_{table} t LEFT JOIN (VALUES {rows}) AS cl(cl_system, cl_code, cl_mask) "
                f"ON cl.cl_system = t.system AND cl.cl_code = t.code) t_{table}")

    def code_list_bit(self, table: str, system: str, codes: tuple[str, ...]) -> int | None:
        """The bit of ``codes_mask`` that says a row's code is in this list (see _source), or None
        when the table's mask is full (62 lists: the rest are tested with IN)."""
        lists = self.code_lists.setdefault(table, {})
        key = (system, codes)
        if key not in lists:
            if len(lists) >= 62:
                return None
            lists[key] = len(lists)
        return lists[key]

    # --- helpers -----------------------------------------------------------------------------
    def fail(self, construct: str, node, why: str = ""):
        raise Unsupported(construct, node, self.program.protocol.file, why)

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def column_name(self, wanted: str) -> str:
        name, n = wanted, 1
        while name in self.names:
            n += 1
            name = f"{wanted}#{n}"
        self.names.add(name)
        return name

    def materialize(self, v: V, name: str, label: str, line: int | None, audit: bool = True) -> V:
        """Put a value in a column of the next stage; returns a value reading that column."""
        if v.kind not in ("bool", "num", "days", "date", "text", "list") or v.is_const:
            return v
        stage = v.stage + 1
        while len(self.stages) <= stage:
            self.stages.append([])
        col = self.column_name(name)
        self.stages[stage].append((col, v.lo))
        hi = v.lo
        if v.kind in ("num", "days", "date"):
            self.stages[stage].append((col + "__hi", v.hi))
            hi = _q(col + "__hi")
        if audit:
            self.outputs.append(Output(col, v.kind, label, False, line))
        return V(v.kind, _q(col), hi if v.kind in ("num", "days", "date") else _q(col), stage=stage)

    def agg(self, table: str, sql: str, since: dt.date | None = None, scope: str | None = None) -> str:
        """An aggregate over a table's rows per patient; returns the column to read in s0.

        ``since``: the aggregate reads no row whose latest date is before that day (its list is
        inside a window). When every aggregate of a table says so, the table's pass skips older
        rows before computing any test: most of the history lies outside a year's window.
        ``scope``: likewise, the aggregate reads only rows passing that test (ItemSet.scope); the
        pass skips rows outside every aggregate's scope."""
        key = (table, sql)
        found = self.agg_index.get(key)
        if found is None:
            found = self.agg_index[key] = self.fresh("a")
            self.aggs.setdefault(table, []).append((found, sql))
            self.alias_scope[found] = set()
        if scope is None:
            self.alias_scope[found] = None
        elif self.alias_scope[found] is not None:
            self.alias_scope[found].add(scope)
        if table not in self.agg_since or (self.agg_since[table] is not None and
                                           (since is None or since < self.agg_since[table])):
            self.agg_since[table] = since
        if scope is None:
            self.agg_scope[table] = None
        elif table not in self.agg_scope:
            self.agg_scope[table] = {scope}
        elif self.agg_scope[table] is not None:
            self.agg_scope[table].add(scope)
        return found

    def agg_in(self, items, sql: str) -> str:
        """An aggregate over the rows of a list of record items (see agg)."""
        return self.agg(items.table, sql, items.since, items.scope)

    def const(self, value, node=None) -> V:
        """A runtime value of the per-patient engine (a parameter, a literal) as a compiled value."""
        if value is None:
            return unknown()
        if isinstance(value, bool):
            return V("bool", lit(value), lit(value), value, True)
        if isinstance(value, (int, float)):
            return V("num", lit(value), lit(value), value, True)
        if isinstance(value, Rng):
            return V("num", lit(value.lo), lit(value.hi), value, True)
        if isinstance(value, Qty):
            return V("qty", None, None, value, True)
        if isinstance(value, DateR):
            return V("date", lit(value.lo), lit(value.hi), value, True)
        if isinstance(value, str):
            return V("text", lit(value), lit(value), value, True)
        if isinstance(value, frozenset):
            return V("valueset", None, None, value, True)
        self.fail(f"a value of type {type(value).__name__}", node)

    # --- declarations --------------------------------------------------------------------------
    def decl(self, cp, path: str, name: str) -> V:
        key = (path, name)
        if key in self.decls:
            return self.decls[key]
        d = cp.decls[name]
        self.decls[key] = None  # a cycle is refused by the language; this guards the compiler
        if isinstance(d, m.Definition):
            v = self.expr(cp, path, d.expr)
        elif isinstance(d, m.Levels):
            v = self._levels(cp, path, d)
        elif isinstance(d, m.Bands):
            v = self._bands(cp, path, d)
        elif isinstance(d, m.Score):
            v = self._score(cp, path, d)
        else:
            self.fail(f"a {d.kind} declaration", d)
        v = self.materialize(v, d.id, d.label or d.name, d.span.line)
        self.decls[key] = v
        return v

    def _levels(self, cp, path, d: m.Levels) -> V:
        conds = []
        for lv in d.levels:
            c = self.materialize(self.bool_of(self.expr(cp, path, lv.condition), lv), lv.id, lv.label,
                                 lv.span.line)
            conds.append((lv.number, c))
        self.lists[d.id] = conds  # for `possible higher levels of`
        fallback = lit(d.fallback.number) if d.fallback else NULL
        whens = " ".join(f"WHEN {c.lo} IS TRUE THEN {n}" for n, c in conds)
        stage = max([c.stage for _, c in conds], default=0)
        return V("num", f"(CASE {whens} ELSE {fallback} END)", None, stage=stage)._same()

    def _bands(self, cp, path, d: m.Bands) -> V:
        value = self.expr(cp, path, d.value)
        whens, stage = [], value.stage
        for b in d.bands:
            if b.threshold is None:
                whens.append(f"ELSE {lit(b.name)}")
                break
            holds = self.compare(value, b.op, self.expr(cp, path, b.threshold), b)
            stage = max(stage, holds.stage)
            whens.append(f"WHEN ({holds.lo}) IS NULL THEN NULL WHEN {holds.lo} THEN {lit(b.name)}")
        return V("text", f"(CASE {' '.join(whens)} END)", None, stage=stage)._same()

    def _score(self, cp, path, d: m.Score) -> V:
        los, his, stage = [], [], 0
        for item in d.items:
            v = self.materialize(self.bool_of(self.expr(cp, path, item.expr), item), item.id, item.label,
                                 item.span.line)
            stage = max(stage, v.stage)
            w = float(item.weight)
            los.append(f"CASE WHEN {v.lo} IS TRUE THEN {dbl(w)} WHEN {v.lo} IS NULL THEN {dbl(min(w, 0))} "
                       f"ELSE {dbl(0)} END")
            his.append(f"CASE WHEN {v.lo} IS TRUE THEN {dbl(w)} WHEN {v.lo} IS NULL THEN {dbl(max(w, 0))} "
                       f"ELSE {dbl(0)} END")
        return V("num", "(" + " + ".join([dbl(0), *los]) + ")", "(" + " + ".join([dbl(0), *his]) + ")",
                 stage=stage)

    def bool_of(self, v: V, node) -> V:
        if v.kind == "bool":
            return v
        if v.kind == "null":
            return V("bool", NULL, NULL, None, True)
        self.fail(f"a {v.kind} where true/false is needed", node)

    # --- expressions -------------------------------------------------------------------------
    def expr(self, cp, path: str, node) -> V:
        method = getattr(self, f"_x_{node.kind}", None)
        if method is None:
            self.fail(f"`{node.kind}`", node)
        v = method(cp, path, node)
        v.node = node
        return v

    def _x_quantity(self, cp, path, node):
        from engine.evaluate import literal
        return self.const(literal(node), node)

    _x_text = _x_boolean = _x_date = _x_quantity

    def _x_ago(self, cp, path, node: m.Ago):
        from engine.evaluate import literal
        if isinstance(node.amount, m.Ref):  # `stable_period ago`: a parameter, the same for every patient
            amount = self._parameter(cp, path, node.amount)
            if amount is None:
                self.fail("`NAME ago` with a name that is not a parameter", node)
        else:
            amount = literal(node.amount)
        day = cal.shift(self.as_of, -amount.value, amount.unit)
        return self.const(DateR(day, day))

    def _parameter(self, cp, path, node: m.Ref):
        """The runtime value of a parameter (with overrides), or None if ``node`` names something else."""
        kind, _, rest = node.target.partition(":")
        if kind == "decl" and isinstance(cp.decls.get(rest), m.Parameter):
            return self.overrides.get(path, {}).get(rest, cp.defaults[rest])
        if kind == "import":
            alias, _, name = rest.partition(":")
            if name in cp.imports[alias].defaults:
                return self.overrides.get(alias, {}).get(name, cp.imports[alias].defaults[name])
        return None

    def _x_ref(self, cp, path, node: m.Ref):
        kind, _, rest = node.target.partition(":")
        if kind == "decl":
            decl = cp.decls[rest]
            if isinstance(decl, m.Parameter):
                return self.const(self.overrides.get(path, {}).get(rest, cp.defaults[rest]), node)
            if isinstance(decl, m.ValueSet):
                return self.const(cp.value_sets[rest], node)
            return self.decl(cp, path, rest)
        if kind == "import":
            alias, _, name = rest.partition(":")
            sub = cp.imports[alias]
            if name in sub.value_sets:
                return self.const(sub.value_sets[name], node)
            if name in sub.defaults:
                # as engine.evaluate.Ctx.sub: an import's parameters are keyed by its alias
                return self.const(self.overrides.get(alias, {}).get(name, sub.defaults[name]), node)
            return self.decl(sub, alias, name)
        if kind == "patient":
            return self._patient(rest, node)
        if kind == "collection":
            return self._collection(rest)
        if kind == "symbol":
            return self.const(rest)
        self.fail(f"the name `{node.dotted}`", node, "only names inside a `where` test can be item attributes")

    def _patient(self, name: str, node) -> V:
        if name == "age":
            return V("span", span=("birth_date_lo", "birth_date_hi", self.AS_OF, self.AS_OF), birthday=True)
        if name == "as_of":
            return self.const(DateR(self.as_of, self.as_of))
        if name in ("birth_date", "date_of_death"):
            return V("date", f"{name}_lo", f"{name}_hi")
        if name == "sex":
            return V("text", "CASE WHEN sex = 'unknown' THEN NULL ELSE sex END", None)._same()
        if name in ("lives_alone", "has_carer"):
            return V("bool", name, name)
        if name == "practice":
            return V("text", "practice", "practice")
        self.fail(f"the patient fact `{name}`", node)

    def _collection(self, name: str) -> V:
        table, test = COLLECTIONS[name]
        field_ = ITEM_DATE.get(table, "date")
        visible = (f"CASE WHEN {field_}_lo IS NULL THEN TRUE WHEN {field_}_hi <= {self.AS_OF} THEN TRUE "
                   f"WHEN {field_}_lo <= {self.AS_OF} THEN NULL ELSE FALSE END")
        status = f"({test}) AND ({visible})"
        cleared = None
        if name in ASSESSED:
            cleared = (f"kind = '{ASSESSED[name]}' AND impaired = FALSE AND date_hi <= {self.AS_OF}")
        return V("items", items=ItemSet(table, schema.COLLECTIONS[name], status, None, cleared, status,
                                        scope=SCOPES.get(name), visible=f"({visible})"))

    def _x_not(self, cp, path, node):
        v = self.bool_of(self.expr(cp, path, node.operand), node)
        return V("bool", f"(NOT {v.lo})", None, stage=v.stage)._same()

    def _x_negate(self, cp, path, node):
        v = self.expr(cp, path, node.operand)
        if v.kind == "qty":
            return self.const(Qty(-v.const.value, v.const.unit))
        if v.kind == "num":
            return V("num", f"(-{v.hi})", f"(-{v.lo})", stage=v.stage)
        if v.kind == "null":
            return v
        self.fail("a minus sign before this value", node)

    def _x_binary(self, cp, path, node: m.Binary):
        a, b = self.expr(cp, path, node.left), self.expr(cp, path, node.right)
        stage = max(a.stage, b.stage)
        if node.op in ("and", "or"):
            a, b = self.bool_of(a, node.left), self.bool_of(b, node.right)
            return V("bool", f"({a.lo} {node.op.upper()} {b.lo})", None, stage=stage)._same()
        if a.is_const and b.is_const:
            from engine.evaluate import arithmetic
            return self.const(arithmetic(node.op, a.const, b.const, self.as_of), node)
        if a.kind == "null" or b.kind == "null":
            return unknown()
        if a.kind == "num" and b.kind == "num" and node.op in ("+", "-", "*"):
            if node.op == "+":
                return V("num", f"({a.lo} + {b.lo})", f"({a.hi} + {b.hi})", stage=stage)
            if node.op == "-":
                return V("num", f"({a.lo} - {b.hi})", f"({a.hi} - {b.lo})", stage=stage)
            if a.exact and b.exact:
                return V("num", f"({a.lo} * {b.lo})", None, stage=stage)._same()
        self.fail(f"`{node.op}` on these values", node, "arithmetic on record values other than "
                  "adding or subtracting numbers")

    def _x_compare(self, cp, path, node: m.Compare):
        a = self.expr(cp, path, node.left)
        if isinstance(node.right, m.Boolean) and node.op in ("=", "!="):
            # `X is true` asks what is recorded: never unknown (engine/evaluate.py _x_compare)
            a = self.bool_of(a, node.left)
            test = f"({a.lo} IS {'TRUE' if node.right.value else 'FALSE'})"
            return V("bool", test if node.op == "=" else f"(NOT {test})", None, stage=a.stage)._same()
        return self.compare(a, node.op, self.expr(cp, path, node.right), node)

    # --- comparison (engine.values.compare) ---------------------------------------------------
    def compare(self, a: V, op: str, b: V, node) -> V:
        stage = max(a.stage, b.stage)
        if a.kind == "null" or b.kind == "null":
            return V("bool", NULL, NULL, None, True)
        if a.kind in ("qty", "span", "days") or b.kind in ("qty", "span", "days"):
            unit = (b.const.unit if b.kind == "qty" else a.const.unit if a.kind == "qty" else "days")
            if a.kind == "span" and not a.birthday and b.kind == "qty":
                amount = b.const.value
                if float(amount).is_integer():
                    quick = sm.span_at_least(a.span, op, int(amount), unit)
                    if quick is not None:
                        return V("bool", quick, None, stage=stage)._same()
            ra, rb = self.duration_range(a, unit, node), self.duration_range(b, unit, node)
            if ra is None or rb is None:
                return V("bool", NULL, NULL, None, True)
            return V("bool", sm.interval_compare(ra, op, rb), None, stage=stage)._same()
        if a.kind == "date" or b.kind == "date":
            if a.kind != "date" or b.kind != "date":
                return V("bool", NULL, NULL, None, True)
            return V("bool", sm.interval_compare((a.lo, a.hi), op, (b.lo, b.hi)), None, stage=stage)._same()
        if a.kind == "num" and b.kind == "num":
            return V("bool", sm.interval_compare((a.lo, a.hi), op, (b.lo, b.hi)), None, stage=stage)._same()
        if a.kind in ("text", "bool") and b.kind == a.kind:
            if op in ("=", "!="):
                return V("bool", f"({a.lo} {'=' if op == '=' else '<>'} {b.lo})", None, stage=stage)._same()
            return V("bool", NULL, NULL, None, True)
        if a.kind in ("text", "bool", "num") and b.kind in ("text", "bool", "num"):
            # different kinds of value are never equal (Python's ==), and have no order
            same = {"=": "FALSE", "!=": "TRUE"}.get(op, "NULL")
            return V("bool", f"(CASE WHEN {a.lo} IS NULL OR {b.lo} IS NULL THEN NULL ELSE {same} END)", None,
                     stage=stage)._same()
        self.fail(f"comparing a {a.kind} with a {b.kind}", node)

    def duration_range(self, v: V, unit: str, node):
        """(lo, hi) SQL of a duration counted in whole ``unit``s (engine.values.duration_range)."""
        from engine.values import duration_range
        if v.kind == "qty":
            r = duration_range(v.const, unit, self.as_of)
            return None if r is None else (lit(r[0]), lit(r[1]))
        if v.kind == "span":
            s_lo, s_hi, e_lo, e_hi = v.span
            if v.birthday and unit == "years":
                return sm.age_on(s_hi, e_lo, self.as_of), sm.age_on(s_lo, e_hi, self.as_of)
            return sm.whole_units(s_hi, e_lo, unit), sm.whole_units(s_lo, e_hi, unit)
        if v.kind == "days":
            if unit in cal.UNIT_DAYS:
                k = cal.UNIT_DAYS[unit]
                return (v.lo, v.hi) if k == 1 else (f"({v.lo} / {dbl(k)})", f"({v.hi} / {dbl(k)})")
            self.fail(f"a number of days compared in {unit}", node, "measured back from the as-of date")
        return None

    def _x_possible_levels(self, cp, path, node):
        """The levels above the one assigned whose condition is unknown, as JSON text ``[3, 2]``."""
        from .plan_lists import declared
        owner, owner_path, name = declared(cp, path, node.target)
        self.decl(owner, owner_path, name)
        conds = self.lists[owner.decls[name].id]
        parts, earlier = [], "FALSE"
        for number, c in conds:
            parts.append(f"CASE WHEN NOT ({earlier}) AND {c.lo} IS NULL THEN '{int(number)}' END")
            earlier = f"{earlier} OR {c.lo} IS TRUE"
        stage = max([c.stage for _, c in conds], default=0)
        body = f"CONCAT_WS(', ', {', '.join(parts)})" if parts else "''"
        return V("list", f"('[' || {body} || ']')", None, stage=stage)._same()

    # the item-level and aggregate parts live in plan_items.py
    from .plan_items import (  # noqa: E402
        _x_filter, _x_window, _x_aggregate, _x_per_period, _x_in_value_set, condition, attribute,
        window_bounds, _total_stay, count_pair,
    )
    from .plan_rank import _x_in_top, _x_percentile, _rank  # noqa: E402
    from .plan_lists import _x_item_list, _x_items_met  # noqa: E402


def _same(self: V) -> V:
    """hi is lo (a value with one SQL expression)."""
    self.hi = self.lo
    return self


V._same = _same


def compile_plan(program, as_of, parameters: dict[str, str] | None = None, audit_columns: bool = True) -> Plan:
    """Compile ``program`` for one run; raises Unsupported naming what does not compile.
    ``audit_columns=False``: the query gives the outcomes only (``plan.outputs`` names no audit
    column), for a caller that writes no explanation: the items are still computed as far as an
    outcome needs them, but not carried to the end and written."""
    from engine.program import _as_date
    return Compiler(program, _as_date(as_of), parameters).compile(audit_columns)
