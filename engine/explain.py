"""Explanations: why a result is what it is, and why not.

A :class:`~engine.program.Result` evaluated with ``explain=True`` carries a
trace (model node id -> runtime value). :func:`explain_json` turns it into a
tree per outcome that follows the protocol exactly as authored: item lists
with their labels quoted, definitions expanded under their label (their own
tree once; later references point back to it), and at each leaf the value,
the threshold it was compared with, the record items that counted (with their
``source_id`` and dates), and what data is missing. For an outcome that does
not hold, ``why_not`` lists the criteria that are not met and how far each is
from its threshold. :func:`explain_text` renders the same tree in plain
language, as a clinician would read it aloud.

The JSON form is versioned (``"schema": "ltc-pathways/explanation/1"``) and
described by ``docs/explanation.schema.json``. Both renderings are
deterministic: the same result gives byte-identical output. Order follows the
protocol where the protocol gives one; record items are sorted by date, then
``source_id``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pathways import model as m
from pathways import records as r

from . import calendar as cal
from .evaluate import EngineError, group_key, literal, top_share
from .record_index import attribute, item_date
from .values import DateR, Days, Items, Qty, Rng, Span, compare, duration_range, number_range, to_json

SCHEMA = "ltc-pathways/explanation/1"

_NOT_EVALUATED = object()  # a node the evaluation never reached (short-circuit, earlier level matched)

DURATION_UNITS = ("days", "weeks", "months", "years")
_OP_WORDS = {">=": "at least", ">": "more than", "<=": "at most", "<": "less than", "=": "exactly", "!=": "not"}
_QUANTIFIER_WORDS = {"all": "all of", "any": "any of", "none": "none of"}

COLLECTION_WORDS = {
    "conditions": "conditions",
    "medications": "medications",
    "admissions": "hospital admissions",
    "emergency_admissions": "unplanned (emergency) hospital admissions",
    "elective_admissions": "planned (elective) hospital admissions",
    "ae_attendances": "A&E attendances",
    "outpatient_appointments": "outpatient appointments",
    "gp_consultations": "GP consultations",
    "community_contacts": "community contacts",
    "social_work_visits": "social work visits",
    "observations": "observations",
    "adl_impairments": "ADL impairments",
    "iadl_impairments": "IADL impairments",
    "cognitive_impairments": "cognitive impairments",
    "falls": "falls",
    "procedures": "procedures",
    "life_events": "life events",
    "pathway_events": "pathway events",
}

PATIENT_WORDS = {
    "age": "age",
    "birth_date": "date of birth",
    "date_of_death": "date of death",
    "sex": "sex",
    "lives_alone": "lives alone",
    "has_carer": "has a carer",
    "practice": "registered practice",
    "as_of": "the as-of date",
}

#: patient fact -> (what is missing, what would decide it)
MISSING_FACTS = {
    "lives_alone": ("living arrangements not recorded", "record whether the patient lives alone"),
    "has_carer": ("carer status not recorded", "record whether the patient has a carer"),
    "age": ("date of birth not recorded", "record the patient's date of birth"),
    "birth_date": ("date of birth not recorded", "record the patient's date of birth"),
    "sex": ("sex not recorded", "record the patient's sex"),
    "practice": ("registered practice not recorded", "record the patient's registered practice"),
    "date_of_death": ("no date of death recorded", "record the date of death if the patient has died"),
}

_ENCOUNTER_WORDS = {
    "admission": "hospital admission", "ae": "A&E attendance", "outpatient": "outpatient appointment",
    "gp": "GP consultation", "community": "community contact", "social_work": "social work visit",
}
_OBSERVATION_WORDS = {
    "adl": "ADL impairment", "iadl": "IADL impairment", "cognition": "cognitive impairment",
    "fall": "fall", "other": "observation",
}
_ATTRIBUTE_WORDS = {"monthly_cost": "monthly cost"}
_ATTRIBUTE_UNITS = {"monthly_cost": "gbp", "length": "days", "duration": "days", "value": "count"}


# --- formatting of values -----------------------------------------------------------------------

def _num(x) -> str:
    if isinstance(x, float) and x.is_integer():
        x = int(x)
    if isinstance(x, float):
        return f"{x:.2f}".rstrip("0").rstrip(".")
    return str(x)


def _plural(n, unit: str) -> str:
    word = unit[:-1] if n == 1 and unit.endswith("s") else unit
    return f"{_num(n)} {word}"


def amount(x, unit: str | None) -> str:
    """A number in the unit it is counted in: ``£80``, ``£80.50``, ``3%``, ``12 months``, ``3``."""
    if unit == "gbp":
        return f"£{int(x):,}" if float(x).is_integer() else f"£{x:,.2f}"
    if unit == "percent":
        return f"{_num(x)}%"
    if unit in DURATION_UNITS:
        return _plural(x, unit)
    return _num(x)


def _span_text(lo, hi, unit: str | None) -> str:
    if lo == hi:
        return amount(lo, unit)
    joint = "or" if unit in (None, "count", *DURATION_UNITS) and hi - lo == 1 else "to"
    if unit in DURATION_UNITS:
        return f"{_num(lo)} {joint} {_plural(hi, unit)}"
    return f"{amount(lo, unit)} {joint} {amount(hi, unit)}"


def _date_text(d: DateR) -> str:
    if d.lo == d.hi:
        return d.lo.isoformat()
    return _partial(d) or f"between {d.lo} and {d.hi}"


def _partial(d: DateR) -> str | None:
    """``2020-04`` or ``2020`` when the range is exactly that month or year."""
    if d.lo.day == 1 and d.lo.month == 1 and d.hi == dt.date(d.lo.year, 12, 31):
        return f"{d.lo.year:04d}"
    if d.lo.day == 1 and d.hi.year == d.lo.year and d.hi.month == d.lo.month \
            and d.hi == r.PartialDate.parse(f"{d.lo.year:04d}-{d.lo.month:02d}").latest:
        return f"{d.lo.year:04d}-{d.lo.month:02d}"
    return None


def show(v, unit: str | None = None) -> str:
    """A runtime value in words."""
    if v is _NOT_EVALUATED:
        return "not evaluated"
    if v is None:
        return "not known"
    if v is True:
        return "yes"
    if v is False:
        return "no"
    if isinstance(v, (int, float)):
        return amount(v, unit)
    if isinstance(v, Rng):
        return _span_text(v.lo, v.hi, unit)
    if isinstance(v, Qty):
        return _plural(v.value, v.unit)
    if isinstance(v, Span):
        u = unit if unit in DURATION_UNITS else ("years" if v.birthday else "days")
        lo, hi = v.count(u)
        return _span_text(lo, hi, u)
    if isinstance(v, Days):
        return _span_text(v.lo, v.hi, "days")
    if isinstance(v, DateR):
        return _date_text(v)
    if isinstance(v, Items):
        n, k = len(v.sure), len(v.maybe)
        head = "none" if n == 0 else f"{n} item" + ("s" if n != 1 else "")
        return head + (f", and {k} that may belong" if k else "")
    if isinstance(v, (frozenset, set)):
        return f"{len(v)} codes"
    return str(v)


def _json(v):
    if v is _NOT_EVALUATED:
        return None
    if isinstance(v, (frozenset, set)):
        return {"codes": len(v)}
    return to_json(v)


def status_of(v) -> str:
    """true, false, unknown, known (a value), uncertain (a range) or not_evaluated."""
    if v is _NOT_EVALUATED:
        return "not_evaluated"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "unknown"
    if isinstance(v, Rng) or (isinstance(v, Days) and v.lo != v.hi) or (isinstance(v, Items) and v.maybe):
        return "uncertain"
    if isinstance(v, Span) and v.start_lo != v.start_hi:
        return "uncertain"
    return "known"


def _lower_first(label: str) -> str:
    if len(label) > 1 and label[0].isupper() and label[1].islower():
        return label[0].lower() + label[1:]
    return label


def _quote(text: str) -> str:
    return f"\u201c{text}\u201d"


# --- record items as evidence ----------------------------------------------------------------

def _item_sort_key(item) -> tuple:
    date = item_date(item)
    return (date is None, date.earliest if date else dt.date.min, date.latest if date else dt.date.min,
            item.source_id, type(item).__name__)


class _Evidence:
    """Record items in JSON and in words; code displays come from the protocols' code lists."""

    def __init__(self, displays: dict[tuple[str, str], str]):
        self.displays = displays

    def item(self, item, as_of: dt.date, extra: dict | None = None) -> dict:
        out: dict[str, Any] = {"source_id": item.source_id}
        date = item_date(item)
        if isinstance(item, r.Condition):
            out.update(record="condition", kind="condition", code=item.code, system=item.system,
                       status=item.status)
            words = "condition"
        elif isinstance(item, r.Medication):
            out.update(record="medication", kind="medication", code=item.code, system=item.system,
                       status=item.status)
            if item.end is not None:
                out["end"] = item.end.text
            if item.monthly_cost is not None:
                out["monthly_cost"] = to_json(float(item.monthly_cost))
            words = "medication"
        elif isinstance(item, r.Encounter):
            out.update(record="encounter", kind=item.kind)
            if item.method is not None:
                out["method"] = item.method
            if item.code:
                out.update(code=item.code)
            if item.end is not None:
                out["end"] = item.end.text
            words = _ENCOUNTER_WORDS.get(item.kind, item.kind)
            if item.method in ("emergency", "elective"):
                words = f"{item.method} {words}"
        elif isinstance(item, r.Observation):
            out.update(record="observation", kind=item.kind, code=item.code, system=item.system)
            if item.value is not None:
                out["value"] = to_json(float(item.value))
                if item.unit:
                    out["unit"] = item.unit
            words = _OBSERVATION_WORDS.get(item.kind, item.kind)
        elif isinstance(item, r.Procedure):
            out.update(record="procedure", kind="procedure", code=item.code, system=item.system)
            words = "procedure"
        elif isinstance(item, r.LifeEvent):
            out.update(record="life_event", kind=item.event)
            words = item.event.replace("_", " ")
        elif isinstance(item, r.PathwayEventRecord):
            out.update(record="pathway_event", kind=item.event)
            if item.pathway:
                out["pathway"] = item.pathway
            words = f"pathway event: {item.event.replace('_', ' ')}"
        else:  # pragma: no cover - every record item kind is listed above
            out.update(record=type(item).__name__.lower(), kind=type(item).__name__.lower())
            words = out["kind"]
        out["date"] = date.text if date is not None else None
        out["date_precision"] = date.precision if date is not None else None
        code = getattr(item, "code", "")
        system = getattr(item, "system", "")
        if code:
            display = self.displays.get((system, code))
            words += f" {_quote(display)} ({system} {code})" if display else f" {system} {code}"
        if isinstance(item, (r.Condition, r.Medication)) and item.status != "active":
            words += f", {item.status}"
        if extra:
            out.update(extra)
        when = "date not recorded" if date is None else date.text
        if isinstance(item, r.Condition):
            when = "onset not recorded" if date is None else f"onset {date.text}"
        elif isinstance(item, r.Medication):
            when = "start not recorded" if date is None else f"started {date.text}"
        if isinstance(item, (r.Encounter, r.Medication)) and item.end is not None:
            when += f" to {item.end.text}"
        out["text"] = f"{item.source_id or '(no source id)'}: {words}, {when}"
        return out


def _maybe_reason(item) -> tuple[str, str]:
    """Why an item may or may not belong to a list, and what would settle it."""
    date = item_date(item)
    sid = item.source_id or "an item without a source id"
    if date is None:
        return (f"{sid}: date not recorded", f"record the date of {sid}")
    if date.precision != "day":
        return (f"{sid}: date known only to the {date.precision} ({date.text})",
                f"record the exact date of {sid}")
    return (f"{sid}: a value the criterion tests is not recorded", f"complete the record of {sid}")


# --- the builder ------------------------------------------------------------------------------

class _Builder:
    def __init__(self, result):
        if result.trace is None:
            raise EngineError("this result has no trace: evaluate with explain=True to explain it")
        self.result = result
        self.trace: dict = result.trace
        self.as_of: dt.date = result.as_of
        self.record: r.PatientRecord = result.record
        self.root: m.Protocol = result.program.protocol
        self.population = getattr(result, "population", None)
        self.expanded: dict[str, dict] = {}  # decl id -> its expanded node (a definition is expanded once)
        self.evidence = _Evidence(_code_displays(self.root))
        self._overrides: dict | None = None

    def value(self, node_id: str):
        """The traced value of a node, or _NOT_EVALUATED when the evaluation never reached it."""
        return self.trace.get(node_id, _NOT_EVALUATED)

    # --- names --------------------------------------------------------------------------------
    def resolve(self, ref: m.Ref, proto: m.Protocol):
        """(kind, owning protocol, declaration or name) for a reference."""
        kind, _, rest = ref.target.partition(":")
        if kind == "decl":
            return "decl", proto, proto.get(rest)
        if kind == "import":
            alias, _, name = rest.partition(":")
            sub = next((u.protocol for u in proto.uses if u.alias == alias), None)
            return ("decl", sub, sub.get(name)) if sub is not None else ("unknown", proto, None)
        return kind, proto, rest

    def dotted(self, decl: m.Decl, owner: m.Protocol) -> str:
        return decl.name if owner is self.root else f"{owner.header.name}.{decl.name}"

    # --- units --------------------------------------------------------------------------------
    def unit_of(self, node, proto: m.Protocol) -> str | None:
        if isinstance(node, m.Quantity):
            return node.unit
        if isinstance(node, m.Ref):
            kind, owner, decl = self.resolve(node, proto)
            if kind == "decl" and isinstance(decl, m.Parameter):
                return self.unit_of(decl.default, owner)
            if kind == "decl" and isinstance(decl, m.Definition):
                return self.unit_of(decl.expr, owner)
            if kind == "decl" and isinstance(decl, m.Score):
                return "count"
            if kind == "patient" and decl == "age":
                return "years"
            return None
        if isinstance(node, m.Aggregate):
            if node.op == "count":
                return "count"
            if node.op == "total_stay":
                return "days"
            return _ATTRIBUTE_UNITS.get(node.attribute or "")
        if isinstance(node, (m.PerPeriod, m.ItemsMet)):
            return "count"
        if isinstance(node, m.Percentile):
            return "percent"
        if isinstance(node, m.Binary) and node.op in ("+", "-", "*", "/"):
            return self.unit_of(node.left, proto) or self.unit_of(node.right, proto)
        if isinstance(node, m.Negate):
            return self.unit_of(node.operand, proto)
        return None

    # --- plain words ----------------------------------------------------------------------------
    def describe(self, node, proto: m.Protocol) -> str:
        """An expression in plain words, with parameter values filled in."""
        d = lambda n: self.describe(n, proto)  # noqa: E731
        if isinstance(node, m.Ref):
            kind, owner, decl = self.resolve(node, proto)
            if kind == "decl" and isinstance(decl, m.Parameter):
                return show(self._param_value(node, decl, owner), self.unit_of(decl.default, owner))
            if kind == "decl" and decl is not None:
                return _lower_first(decl.label) if decl.label else node.dotted
            if kind == "collection":
                return COLLECTION_WORDS.get(decl, decl.replace("_", " "))
            if kind == "patient":
                return PATIENT_WORDS.get(decl, decl.replace("_", " "))
            return node.dotted
        if isinstance(node, m.Window):
            if node.mode == "last":
                return f"{d(node.source)} {node.phrase} {d(node.amount)}"
            if node.mode == "between":
                return f"{d(node.source)} between {d(node.start)} and {d(node.end)}"
            return f"{d(node.source)} {node.mode} {d(node.start)}"
        if isinstance(node, m.Filter):
            return f"{d(node.source)} where {_text(node.condition)}"
        if isinstance(node, m.Aggregate):
            if node.op == "count":
                return f"count of {d(node.source)}"
            if node.op in ("any", "no"):
                return f"{node.op} {d(node.source)}"
            if node.op == "total_stay":
                return f"total stay in {d(node.source)}"
            attr = _ATTRIBUTE_WORDS.get(node.attribute or "", (node.attribute or "").replace("_", " "))
            head = {"sum": "total", "min": "lowest", "max": "highest"}.get(node.op, node.op)
            return f"{head} {attr} of {d(node.source)}"
        if isinstance(node, m.PerPeriod):
            return f"{node.op} count per {_plural(node.period.value, node.period.unit)} of {d(node.source)}"
        if isinstance(node, m.Ago):
            return f"{_plural(node.amount.value, node.amount.unit)} ago"
        if isinstance(node, m.Quantity):
            return amount(node.value, node.unit)
        if isinstance(node, m.Binary):
            return f"{d(node.left)} {node.op} {d(node.right)}"
        if isinstance(node, m.Not):
            return f"not {d(node.operand)}"
        if isinstance(node, m.Negate):
            return f"minus {d(node.operand)}"
        if isinstance(node, m.Compare):
            return f"{d(node.left)} {_OP_WORDS[node.op]} {d(node.right)}"
        if isinstance(node, m.InTop):
            return f"{d(node.value)} in the top {amount(node.percent.value, 'percent')} of the {node.group}"
        if isinstance(node, m.Percentile):
            return f"percentile of {d(node.value)} in the {node.group}"
        if isinstance(node, m.ItemsMet):
            return f"number of items met in {d(node.target)}"
        return _text(node)

    def _static(self, node, proto: m.Protocol):
        """The value of a literal or a parameter the evaluation did not reach (for display)."""
        if isinstance(node, (m.Quantity, m.Text, m.Boolean, m.DateLiteral)):
            return literal(node)
        if isinstance(node, m.Ref):
            kind, owner, decl = self.resolve(node, proto)
            if kind == "decl" and isinstance(decl, m.Parameter):
                return self._parameter_in_effect(decl, owner)
        return _NOT_EVALUATED

    def _param_value(self, ref: m.Ref, decl: m.Parameter, owner: m.Protocol):
        v = self.value(ref.id)
        if v is _NOT_EVALUATED:
            v = self._parameter_in_effect(decl, owner)
        return v

    def _parameter_in_effect(self, decl: m.Parameter, owner: m.Protocol):
        if self._overrides is None:
            self._overrides = self.result.program.parameters(self.result.parameters)
        overrides = self._overrides
        path = "" if owner is self.root else next((u.alias for u in self.root.uses if u.protocol is owner), "")
        return overrides.get(path, {}).get(decl.name, literal(decl.default))

    # --- tree -----------------------------------------------------------------------------------
    def node(self, expr, proto: m.Protocol) -> dict:
        if isinstance(expr, m.ItemList):
            return self.item_list(expr, proto)
        if isinstance(expr, m.Binary) and expr.op in ("and", "or"):
            return self.chain(expr, proto)
        if isinstance(expr, m.Not):
            v = self.value(expr.id)
            child = self.node(expr.operand, proto)
            return _node(expr.id, "not", v, expression=_text(expr), children=[child],
                         summary=f"not: {_truth_word(v)}")
        if isinstance(expr, m.Ref):
            kind, owner, decl = self.resolve(expr, proto)
            if kind == "decl" and isinstance(decl, (m.Definition, m.Score, m.Bands, m.Levels)):
                return self.decl_node(decl, owner, self.value(expr.id))
        if isinstance(expr, m.ItemsMet):
            return self.items_met(expr, proto)
        return self.leaf(expr, proto)

    def chain(self, expr: m.Binary, proto: m.Protocol) -> dict:
        parts, stack = [], [expr]
        while stack:  # flatten a chain of one operator, keeping the authored order
            current = stack.pop()
            if isinstance(current, m.Binary) and current.op == expr.op:
                stack.extend((current.right, current.left))
            else:
                parts.append(current)
        v = self.value(expr.id)
        children = [self.node(p, proto) for p in parts]
        held = sum(1 for c in children if c["status"] == "true")
        summary = f"{expr.op}: {_truth_word(v)} ({held} of {len(children)} hold)"
        return _node(expr.id, expr.op, v, expression=_text(expr), children=children, summary=summary)

    def item_list(self, expr: m.ItemList, proto: m.Protocol) -> dict:
        v = self.value(expr.id)
        children = []
        for item in expr.items:
            iv = self.value(item.id)
            if iv is _NOT_EVALUATED:
                iv = self.value(item.expr.id)
            child = self.node(item.expr, proto)
            children.append(_node(item.id, "item", iv, label=item.label, children=[child],
                                  summary=f"{_quote(item.label)}: {_truth_word(iv)}"))
        met = [c for c in children if c["status"] == "true"]
        unknown = [c for c in children if c["status"] in ("unknown", "not_evaluated")]
        unmet = [c for c in children if c["status"] != "true"]
        if expr.quantifier == "at_least":
            n_value = self.value(expr.minimum.id)
            n_range = number_range(n_value) if n_value is not _NOT_EVALUATED else None
            need = int(n_range[0]) if n_range and n_range[0] == n_range[1] else None
            authored = head = f"at least {_text(expr.minimum)} of"
            if isinstance(expr.minimum, m.Ref):
                head = f"at least {_text(expr.minimum)} ({show(n_value)}) of"
        else:
            need = {"all": len(children), "any": 1, "none": 0}[expr.quantifier]
            authored = head = _QUANTIFIER_WORDS[expr.quantifier]
        summary = f"{head}: {len(met)} of {len(children)} met"
        if unknown:
            summary += f", {len(unknown)} unknown"
        counts = {"items": len(children), "met": len(met), "unknown": len(unknown),
                  "not_met": len(children) - len(met) - len(unknown), "needed": need}
        short = None
        if expr.quantifier == "none":
            if met:
                summary += "; none may hold"
        elif need is not None and len(met) < need:
            short = need - len(met)
            summary += f"; needs {short} more"
        node = _node(expr.id, "item_list", v, expression=authored + ":", children=children, summary=summary)
        node["quantifier"] = expr.quantifier
        node["counts"] = counts
        if short is not None:
            node["needs_more_of"] = {"count": short, "of": [c["label"] for c in unmet]}
        return node

    def items_met(self, expr: m.ItemsMet, proto: m.Protocol) -> dict:
        v = self.value(expr.id)
        kind, owner, decl = self.resolve(expr.target, proto)
        children = []
        met: list[str] = []
        if kind == "decl" and isinstance(decl, m.Definition):
            children.append(self.decl_node(decl, owner, self.value(decl.id)))
            if isinstance(decl.expr, m.ItemList):
                met = [it.label for it in decl.expr.items if self.value(it.id) is True]
        total = len(decl.expr.items) if kind == "decl" and isinstance(getattr(decl, "expr", None), m.ItemList) else None
        summary = f"items met: {show(v)}" + (f" of {total}" if total is not None else "")
        node = _node(expr.id, "items_met", v, expression=_text(expr), children=children, summary=summary)
        node["met"] = met
        return node

    # --- declarations -------------------------------------------------------------------------
    def decl_node(self, decl: m.Decl, owner: m.Protocol, v=_NOT_EVALUATED) -> dict:
        if decl.id in self.trace:
            v = self.trace[decl.id]
        name = self.dotted(decl, owner)
        kind = {"definition": "criterion" if getattr(decl, "criterion", False) else "definition"}.get(
            decl.kind, decl.kind)
        unit = self.unit_of(decl.expr, owner) if isinstance(decl, m.Definition) else None
        if isinstance(decl, m.Levels):
            display = self._level_display(decl, v)
        elif isinstance(decl, m.Bands):
            display = self._band_display(decl, v)
        else:
            display = show(v, unit)
        label = decl.label or decl.name
        node = _node(decl.id, kind, v, label=label, name=name, display=display,
                     summary=f"{label} ({name}): {display}")
        if decl.id in self.expanded:
            node["see"] = decl.id
            node["summary"] += " (explained above)"
            return node
        self.expanded[decl.id] = node
        if isinstance(decl, m.Definition):
            node["expression"] = _text(decl.expr) if not isinstance(decl.expr, m.ItemList) else None
            if node["expression"] is None:
                del node["expression"]
            node["children"] = [self.node(decl.expr, owner)]
        elif isinstance(decl, m.Score):
            node["children"] = [self.score_item(item, owner) for item in decl.items]
            counted = [c["label"] for c in node["children"] if c["status"] == "true"]
            node["summary"] += "; counted: " + ("; ".join(_quote(x) for x in counted) if counted else "none")
        elif isinstance(decl, m.Bands):
            node["children"] = self.bands(decl, owner)
        elif isinstance(decl, m.Levels):
            node["children"] = self.levels(decl, owner)
        return node

    def score_item(self, item: m.ScoreItem, owner: m.Protocol) -> dict:
        v = self.value(item.id)
        weight = item.weight
        node = _node(item.id, "score_item", v, label=item.label, children=[self.node(item.expr, owner)],
                     summary=f"{_quote(item.label)} (weight {_num(weight)}): {_truth_word(v)}"
                     + (f", adds {_num(weight)}" if v is True else ""))
        node["weight"] = to_json(float(weight))
        return node

    def bands(self, decl: m.Bands, owner: m.Protocol) -> list[dict]:
        value_node = self.node(decl.value, owner)
        v = self.value(decl.value.id)
        unit = self.unit_of(decl.value, owner)
        out = [value_node]
        chosen = self.value(decl.id)
        decided = True
        for band in decl.bands:
            label = band.label or band.name
            if band.op is None:
                holds = True if decided else _NOT_EVALUATED
                test = "otherwise"
            else:
                threshold = self.value(band.threshold.id)
                if threshold is _NOT_EVALUATED:
                    threshold = self._static(band.threshold, owner)
                test = f"{_OP_WORDS[band.op]} {show(threshold, unit)}"
                if not decided or v is _NOT_EVALUATED or threshold is _NOT_EVALUATED:
                    holds = _NOT_EVALUATED
                else:
                    holds = compare(v, band.op, threshold, self.as_of)
            node = _node(band.id, "band", holds, label=label, name=band.name,
                         summary=f"{label} ({band.name}): {test}: {_truth_word(holds)}"
                         + (" (chosen)" if chosen == band.name else ""))
            node["test"] = test
            node["chosen"] = chosen == band.name
            out.append(node)
            if holds is True or holds is None:
                decided = False
        return out

    def levels(self, decl: m.Levels, owner: m.Protocol) -> list[dict]:
        chosen = self.value(decl.id)
        out = []
        for level in decl.levels:
            v = self.value(level.id)
            node = _node(level.id, "level", v, label=level.label, name=f"level {level.number}",
                         children=[self.node(level.condition, owner)],
                         summary=f"level {level.number} {_quote(level.label)}: {_level_word(v, chosen == level.number)}")
            node["number"] = level.number
            node["matched"] = chosen == level.number and v is True
            if v is False or v is None:
                node["why_not"] = self.why_not(node["children"][0])
            out.append(node)
        if decl.fallback is not None:
            fb = decl.fallback
            matched = chosen == fb.number and not any(n["matched"] for n in out)
            v = True if matched else _NOT_EVALUATED
            node = _node(fb.id, "level", v, label=fb.label, name=f"level {fb.number}",
                         summary=f"otherwise level {fb.number} {_quote(fb.label)}: "
                         + ("matched (no level above holds)" if matched else "not reached"))
            node["number"] = fb.number
            node["matched"] = matched
            node["fallback"] = True
            out.append(node)
        return out

    def _level_display(self, decl: m.Levels, v) -> str:
        if v is _NOT_EVALUATED or v is None:
            return show(v)
        every = list(decl.levels) + ([decl.fallback] if decl.fallback else [])
        label = next((lv.label for lv in every if lv.number == v), "")
        return f"level {v} {_quote(label)}" if label else f"level {v}"

    def _band_display(self, decl: m.Bands, v) -> str:
        band = next((b for b in decl.bands if b.name == v), None)
        if band is None:
            return show(v)
        return f"{band.label} ({band.name})" if band.label else band.name

    # --- leaves ---------------------------------------------------------------------------------
    def leaf(self, expr, proto: m.Protocol) -> dict:
        v = self.value(expr.id)
        description = self.describe(expr, proto)
        unit = self.unit_of(expr, proto)
        node = _node(expr.id, "expression", v, expression=_text(expr), description=description,
                     display=show(v, unit))
        inner = list(_inner_nodes(expr))
        children: list[dict] = []
        params: list[dict] = []
        code_lists: list[dict] = []
        missing: list[dict] = []
        facts: list[dict] = []
        seen_refs: set[str] = set()
        for sub in inner:
            if not isinstance(sub, m.Ref):
                continue
            kind, owner, decl = self.resolve(sub, proto)
            if kind == "decl" and decl is not None:
                key = decl.id
                if key in seen_refs:
                    continue
                seen_refs.add(key)
                if isinstance(decl, m.Parameter):
                    pv = self._param_value(sub, decl, owner)
                    params.append({"name": self.dotted(decl, owner), "label": decl.label,
                                   "value": _json(pv), "display": show(pv, self.unit_of(decl.default, owner))})
                elif isinstance(decl, m.ValueSet):
                    code_lists.append({"name": self.dotted(decl, owner), "label": decl.label,
                                       "codes": len(decl.codes)})
                elif isinstance(decl, (m.Definition, m.Score, m.Bands, m.Levels)):
                    children.append(self.decl_node(decl, owner, self.value(sub.id)))
            elif kind == "patient" and decl not in seen_refs:
                seen_refs.add(decl)
                missing.extend(self._patient_missing(decl, self.value(sub.id), v))
                facts.append(self._fact(decl))
        # value sets named inside `where` filters
        for sub in _filter_value_sets(expr):
            kind, owner, decl = self.resolve(sub, proto)
            if kind == "decl" and isinstance(decl, m.ValueSet) and decl.id not in seen_refs:
                seen_refs.add(decl.id)
                code_lists.append({"name": self.dotted(decl, owner), "label": decl.label, "codes": len(decl.codes)})

        evidence = []
        for sub in inner:
            if isinstance(sub, (m.Aggregate, m.PerPeriod)):
                ev = self.aggregate_evidence(sub, proto)
                if ev is not None:
                    evidence.append(ev)
                    if ev["might_count"] and (v is None or isinstance(v, Rng)):
                        for item in ev["might_count"]:
                            missing.append({"what": item["reason"], "action": item["action"],
                                            "source_id": item["source_id"]})
        ranking = None
        if isinstance(expr, (m.InTop, m.Percentile)):
            ranking = self.ranking(expr, proto)
            if ranking.get("missing"):
                missing.append(ranking.pop("missing"))

        summary = description + ": " + node["display"]
        if isinstance(expr, m.Compare):
            decides = self._birth_date_decides(expr, v)
            if decides:
                missing = [dict(x, action=f"{x['action']} ({decides})") if x["what"].startswith("date of birth")
                           else x for x in missing]
            comparison = self.comparison(expr, proto)
            node["comparison"] = comparison
            summary = comparison["text"]
        elif ranking is not None:
            summary = ranking["text"]
        elif isinstance(expr, m.Aggregate) and expr.op in ("any", "no") and evidence:
            ev = evidence[0]
            found = len(ev["counted"])
            maybe = len(ev.get("might_count", ()))
            what = self.describe(expr.source, proto)
            if found:
                summary = f"{what}: {found} found"
            elif maybe:
                summary = f"{what}: none certain, {maybe} may count"
            else:
                summary = f"{what}: none on record"
                if v is None:
                    # an impairment is a finding: unknown until an assessment looks for it
                    missing.append({"what": f"no assessment on record looked for {what}",
                                    "action": "record the assessment (one that finds no impairment "
                                              "settles this as not met)"})
            summary += "; needs none" if expr.op == "no" else "; needs at least 1"
        if v is None and missing:
            summary += " \u2014 " + "; ".join(f"{x['what']}: {x['action']}" for x in missing)
        node["summary"] = summary
        if ranking is not None:
            node["ranking"] = ranking
        if facts:
            node["facts"] = facts
        if params:
            node["parameters"] = params
        if code_lists:
            node["code_lists"] = code_lists
        if evidence:
            node["evidence"] = evidence
        if missing:
            node["missing"] = _unique(missing)
        node["children"] = children
        return node

    def _birth_date_decides(self, expr: m.Compare, outcome) -> str | None:
        """For an age test left unknown by an imprecise birth date: the birth dates that decide it."""
        left, right = self.value(expr.left.id), self.value(expr.right.id)
        if outcome is not None or not (isinstance(left, Span) and left.birthday and isinstance(right, Qty)
                                       and right.unit == "years" and float(right.value).is_integer()):
            return None
        n = int(right.value)
        years = {">=": n, ">": n + 1, "<": n, "<=": n + 1}.get(expr.op)
        if years is None:
            return None
        day = cal.shift(self.as_of, -years, "years").isoformat()
        if expr.op in (">=", ">"):
            return f"it holds if born on or before {day}, and not if born after"
        return f"it holds if born after {day}, and not if born on or before"

    def _fact(self, name: str) -> dict:
        """A fact about the patient as recorded (the evidence for age, lives alone...)."""
        p = self.record.patient
        if name == "age":
            name = "birth_date"
        if name == "as_of":
            return {"name": name, "value": self.as_of.isoformat(), "display": f"as of {self.as_of.isoformat()}"}
        raw = getattr(p, name, None)
        if isinstance(raw, r.PartialDate):
            value, shown = raw.text, raw.text + ("" if raw.precision == "day" else f" (known to the {raw.precision})")
        elif name == "sex" and raw == "unknown":
            value, shown = None, "not recorded"
        else:
            value = raw
            shown = "not recorded" if raw is None else ("yes" if raw is True else "no" if raw is False else str(raw))
        if name == "date_of_death" and raw is None:
            shown = "none recorded"
        return {"name": name, "value": value, "display": f"{PATIENT_WORDS.get(name, name)}: {shown}"}

    def _patient_missing(self, name: str, value, leaf_value) -> list[dict]:
        p = self.record.patient
        if name in ("age", "birth_date"):
            if p.birth_date is None:
                what, action = MISSING_FACTS["age"]
                return [{"what": what, "action": action}]
            if p.birth_date.precision != "day" and (leaf_value is None or isinstance(leaf_value, Rng)):
                return [{"what": f"date of birth known only to the {p.birth_date.precision} ({p.birth_date.text})",
                         "action": "record the full date of birth"}]
            return []
        if value is None and name in MISSING_FACTS and name != "date_of_death":
            what, action = MISSING_FACTS[name]
            return [{"what": what, "action": action}]
        return []

    def comparison(self, expr: m.Compare, proto: m.Protocol) -> dict:
        left, right = self.value(expr.left.id), self.value(expr.right.id)
        unit = self.unit_of(expr.right, proto) or self.unit_of(expr.left, proto)
        if isinstance(left, Days) or isinstance(right, Days):
            shown_unit = "days"
        else:
            shown_unit = unit
        actual = show(left, shown_unit)
        threshold = show(right, unit)
        if isinstance(left, Days) and isinstance(right, Qty) and right.unit in cal.UNIT_DAYS and right.unit != "days":
            threshold += f" ({_plural(right.value * cal.UNIT_DAYS[right.unit], 'days')})"
        words = _OP_WORDS[expr.op]
        what = self.describe(expr.left, proto)
        outcome = self.value(expr.id)
        gap = self.gap(left, expr.op, right, unit, outcome)
        if expr.op in ("=", "!=") and not isinstance(left, (int, float, Rng, Qty, Span, Days)):
            need = f"needs to be {'' if expr.op == '=' else 'anything but '}{threshold}"
        else:
            need = f"needs {words} {threshold}"
        text = f"{what}: {actual}; {need}"
        if gap is not None:
            text += f" ({gap['text']})"
        default = None
        if left is None and isinstance(expr.right, m.Boolean) and outcome is not None:
            # `X is true` / `X is not false`: the protocol's explicit default decided it
            default = (f"not recorded, so the protocol's default was used: "
                       f"counted as {'yes' if (expr.right.value == (expr.op == '=')) == outcome else 'no'}")
            text += f" ({default})"
        out = {"op": expr.op, "words": words, "actual": _json(left), "actual_display": actual,
               "threshold": _json(right), "threshold_display": threshold, "text": text}
        if default is not None:
            out["default_used"] = default
        if gap is not None:
            out["gap"] = gap
        return out

    def gap(self, left, op: str, right, unit: str | None, outcome) -> dict | None:
        """How far a comparison that did not hold is from holding."""
        if outcome is not False or left is _NOT_EVALUATED or right is _NOT_EVALUATED:
            return None
        if isinstance(left, Span) and left.birthday and isinstance(right, Qty) and right.unit == "years" \
                and op in (">=", ">") and left.start_lo == left.start_hi:
            years = int(right.value) + (1 if op == ">" else 0)
            day = cal.birthday(left.start_lo, left.start_lo.year + years)
            return {"short_by": years - left.count("years")[1], "unit": "years",
                    "text": f"reaches {years} years on {day.isoformat()}"}
        shown = unit
        if isinstance(left, Days) or isinstance(right, Days) or (
                isinstance(right, Qty) and right.unit in cal.UNIT_DAYS):
            shown = "days"
        if shown in DURATION_UNITS:
            a = duration_range(left, shown, self.as_of)
            b = duration_range(right, shown, self.as_of)
        else:
            a, b = number_range(left), number_range(right)
        if a is None or b is None or b[0] != b[1]:
            return None
        t = b[0]
        whole = shown in ("count", None, *DURATION_UNITS) and float(t).is_integer() and all(
            float(x).is_integer() for x in a)
        if op in (">=", ">"):
            short = t - a[1]
            if op == ">" and whole:
                short += 1
            if op == ">" and not whole:
                text = f"needs over {amount(short, shown)} more"
            elif shown in (None, "count"):
                text = f"needs {_num(short)} more"
            else:
                text = f"needs {amount(short, shown)} more"
            return {"short_by": to_json(float(short)), "unit": shown or "count", "text": text}
        if op in ("<=", "<"):
            over = a[0] - t
            if op == "<" and whole:
                over += 1
            text = (f"{_num(over)} too many" if shown in (None, "count")
                    else f"{amount(over, shown)} over")
            return {"over_by": to_json(float(over)), "unit": shown or "count", "text": text}
        if op == "=":
            diff = a[0] - t if a[0] > t else t - a[1]
            return {"off_by": to_json(float(diff)), "unit": shown or "count",
                    "text": f"{amount(diff, shown)} {'over' if a[0] > t else 'under'}"}
        return None

    def aggregate_evidence(self, agg, proto: m.Protocol) -> dict | None:
        """Which record items an aggregate counted (and which might count)."""
        source = agg.source
        window = None
        items = None
        if isinstance(agg, m.Aggregate) and agg.op == "total_stay" and isinstance(source, m.Window) \
                and source.mode == "last":
            items = self.value(source.source.id)
            q = self.value(source.amount.id)
            if isinstance(q, Qty):
                window = (cal.shift(self.as_of, -q.value, q.unit), self.as_of)
        else:
            items = self.value(source.id)
        if not isinstance(items, Items):
            return None
        if window is None:
            window = items.window
        attr = agg.attribute if isinstance(agg, m.Aggregate) else None
        unit = _ATTRIBUTE_UNITS.get(attr or "")

        def extra_of(item) -> dict | None:
            """The attribute a sum/min/max/latest/earliest reads, for each item."""
            if not attr:
                return None
            val = attribute(item, attr, self.as_of)
            return {"attribute": attr, "amount": _json(val),
                    "amount_display": "not recorded" if val is None else show(val, unit)}
        counted, might = [], []
        if isinstance(agg, m.Aggregate) and agg.op == "total_stay":
            lo, hi = window if window else (dt.date.min, dt.date.max)
            for group, target in ((items.sure, counted), (items.maybe, might)):
                for item in sorted(group, key=_item_sort_key):
                    days = _clipped_days(item, lo, hi, self.as_of)
                    if days > 0 or group is items.maybe:
                        target.append((item, {"days_in_window": days}))
        else:
            for item in sorted(items.sure, key=_item_sort_key):
                counted.append((item, extra_of(item)))
            for item in sorted(items.maybe, key=_item_sort_key):
                might.append((item, extra_of(item)))
        ev: dict[str, Any] = {"id": agg.id, "of": self.describe(agg, proto)}
        if window is not None:
            ev["window"] = {"from": window[0].isoformat(), "to": window[1].isoformat()}
            ev["window_text"] = f"from {window[0].isoformat()} to {window[1].isoformat()}"
        ev["counted"] = [self._evidence_item(item, extra) for item, extra in counted]
        ev["might_count"] = []
        for item, extra in might:
            entry = self._evidence_item(item, extra)
            entry["reason"], entry["action"] = _maybe_reason(item)
            ev["might_count"].append(entry)
        notes = []
        if attr:
            not_recorded = [e["source_id"] for e in ev["counted"] if e.get("amount") is None]
            if not_recorded:
                notes.append(f"{_ATTRIBUTE_WORDS.get(attr, attr)} not recorded for "
                             f"{', '.join(not_recorded)} (left out of the {agg.op})")
        if isinstance(agg, m.Aggregate) and agg.op == "total_stay" and len(ev["counted"]) > 1:
            notes.append("overlapping stays are merged before their days are added up")
        if isinstance(agg, m.PerPeriod) and window is not None:
            periods = self._periods(agg, items, window)
            if periods:
                ev["periods"] = periods
                notes.append(f"counts per {_plural(agg.period.value, agg.period.unit)}, most recent first: "
                             + ", ".join(str(p["count"]) for p in periods))
        if notes:
            ev["notes"] = notes
        return ev

    def _evidence_item(self, item, extra: dict | None) -> dict:
        entry = self.evidence.item(item, self.as_of, extra)
        if extra and "amount_display" in extra:
            entry["text"] += f", {extra['attribute'].replace('_', ' ')} {extra['amount_display']}"
        if extra and "days_in_window" in extra:
            entry["text"] += f", {_plural(extra['days_in_window'], 'days')} in the window"
        return entry

    def _periods(self, agg: m.PerPeriod, items: Items, window) -> list[dict]:
        """Counts of the certain items in each period, most recent first (for reading only;
        the value itself is the engine's)."""
        period = agg.period
        lo, hi = window
        edges = [hi]
        while True:
            nxt = cal.shift(self.as_of, -period.value * len(edges), period.unit)
            if nxt < lo or len(edges) > 1000:
                break
            edges.append(nxt)
        out = []
        for k in range(len(edges) - 1):
            start, end = edges[k + 1], edges[k]
            oldest = k == len(edges) - 2
            n = 0
            for item in items.sure:
                date = item_date(item)
                if date is None or date.precision != "day":
                    continue
                day = date.earliest
                if (start <= day if oldest else start < day) and day <= end:
                    n += 1
            out.append({"from": start.isoformat(), "to": end.isoformat(), "count": n})
        return out

    def ranking(self, expr, proto: m.Protocol) -> dict:
        value = self.value(expr.value.id)
        unit = self.unit_of(expr.value, proto)
        what = self.describe(expr.value, proto)
        key = group_key(expr.group, self.record)
        dist = None
        if self.population is not None:
            dist = (self.population.get(expr.id) or {}).get(key)
        out: dict[str, Any] = {"group": expr.group, "group_key": key, "value": _json(value),
                               "value_display": show(value, unit), "group_size": len(dist) if dist else 0}
        where = f"practice {key}" if expr.group == "practice" else "the population"
        if key is None:
            what_missing, action = MISSING_FACTS["practice"]
            out["missing"] = {"what": what_missing, "action": action}
            out["text"] = f"{what}: {show(value, unit)}; cannot be ranked ({what_missing})"
            return out
        if not dist:
            out["missing"] = {"what": f"no patients of {where} to rank against",
                              "action": "evaluate with the practice's population or reference distributions"}
            out["text"] = f"{what}: {show(value, unit)}; no patients of {where} to rank against"
            return out
        if isinstance(expr, m.Percentile):
            out["text"] = f"{what}: {show(value, unit)}; percentile in {where} ({len(dist)} patients): " \
                          f"{show(self.value(expr.id), 'percent')}"
            return out
        share = expr.percent.value / 100
        top = amount(expr.percent.value, "percent")
        cutoff = next((x for x in sorted(set(dist)) if top_share(dist, x, share)), None)
        out["top_percent"] = to_json(float(expr.percent.value))
        out["in_top_from"] = to_json(float(cutoff)) if cutoff is not None else None
        if cutoff is None:
            out["text"] = (f"{what}: {show(value, unit)}; nobody in {where} ({len(dist)} patients) "
                           f"is above the lowest value, so nobody is in the top {top}")
            return out
        text = (f"{what}: {show(value, unit)}; the top {top} of {where} ({len(dist)} patients) "
                f"starts at {amount(cutoff, unit)}")
        rng = number_range(value) if value is not _NOT_EVALUATED else None
        if self.value(expr.id) is False and rng is not None and rng[1] < cutoff:
            short = cutoff - rng[1]
            out["gap"] = {"short_by": to_json(float(short)), "unit": unit or "count",
                          "text": f"needs {amount(short, unit)} more"}
            text += f" ({out['gap']['text']})"
        out["text"] = text
        return out

    # --- why not --------------------------------------------------------------------------------
    def why_not(self, node: dict) -> list[dict]:
        """The criteria below ``node`` that keep it from holding, each with how far it is."""
        if node["status"] == "true":
            return []
        if "see" in node:
            node = self.expanded.get(node["see"], node)
        kind = node["kind"]
        if kind in ("definition", "criterion"):
            if node["status"] not in ("false", "unknown"):
                return []
            inner = node["children"][0] if node.get("children") else None
            because = self._because(inner) if inner is not None else []
            return [_entry(node, node["label"], self._reason(inner, node) if inner is not None
                           else node["display"], because, self._needs(inner))]
        if kind == "item":
            inner = node["children"][0]
            if inner["kind"] in ("definition", "criterion") and inner.get("label") == node["label"]:
                return self.why_not(inner)  # an item naming a criterion reads as the criterion
            return [_entry(node, _quote(node["label"]), self._reason(inner, node), self._because(inner),
                           self._needs(inner))]
        if kind in ("item_list", "and", "or", "not"):
            return [_entry(node, node.get("expression", kind), self._reason(node, node), self._because(node),
                           self._needs(node))]
        if kind == "expression":
            if node["status"] in ("false", "unknown"):
                return [_entry(node, node["expression"], node["summary"], [])]
            return []
        return []

    def _because(self, node: dict) -> list[dict]:
        """The entries under ``node``: its children that do not hold."""
        if "see" in node:
            node = self.expanded.get(node["see"], node)
        kind = node["kind"]
        if kind == "item_list" and node.get("quantifier") == "none":
            out = []
            for child in node["children"]:
                if child["status"] == "true":
                    inner = child["children"][0]
                    out.append(_entry(child, _child_name(child), f"holds, and must not: {inner.get('summary', '')}",
                                      []))
                elif child["status"] == "unknown":
                    out.extend(self.why_not(child))
            return out
        if kind in ("item_list", "and", "or"):
            out = []
            for child in node["children"]:
                if child["status"] in ("false", "unknown", "not_evaluated"):
                    out.extend(self.why_not(child) if child["status"] != "not_evaluated"
                               else [_entry(child, child.get("label") and _quote(child["label"])
                                            or child.get("expression", child["kind"]),
                                            "not evaluated", [])])
            return out
        if kind == "not":
            operand = node["children"][0]
            if operand["status"] in ("true", "unknown"):
                label = operand.get("label") or operand.get("expression", "")
                return [_entry(operand, label, operand.get("summary", ""), [])]
            return []
        if kind in ("definition", "criterion", "item"):
            inner = node["children"][0] if node.get("children") else None
            if inner is None:
                return []
            if inner["kind"] in ("expression",):
                return self._leaf_because(inner)
            return self._because(inner)
        if kind == "expression":
            return self._leaf_because(node)
        return []

    def _needs(self, node: dict | None) -> dict | None:
        if node is None:
            return None
        if "see" in node:
            node = self.expanded.get(node["see"], node)
        return node.get("needs_more_of")

    def _leaf_because(self, leaf: dict) -> list[dict]:
        """A leaf criterion that depends on definitions that do not hold: explain those."""
        out = []
        for child in leaf.get("children", []):
            if child["status"] in ("false", "unknown"):
                out.extend(self.why_not(child))
        return out

    def _reason(self, node: dict | None, owner: dict) -> str:
        """One line saying why ``node`` does not hold."""
        if node is None:
            return owner.get("summary", "")
        if "see" in node:
            node = self.expanded.get(node["see"], node)
        kind = node["kind"]
        status = node["status"]
        if kind == "item_list":
            counts = node["counts"]
            q = node["quantifier"]
            if q == "none":
                held = [c["label"] for c in node["children"] if c["status"] == "true"]
                maybe = [c["label"] for c in node["children"] if c["status"] == "unknown"]
                parts = []
                if held:
                    parts.append("must not hold, but does: " + "; ".join(_quote(x) for x in held))
                if maybe:
                    parts.append("unknown: " + "; ".join(_quote(x) for x in maybe))
                return ", ".join(parts) or node["summary"]
            head = f"{counts['met']} of {counts['items']} met"
            if counts["unknown"]:
                head += f", {counts['unknown']} unknown"
            more = node.get("needs_more_of")
            if more:
                head += f"; needs {more['count']} more of: " + "; ".join(_quote(x) for x in more["of"])
            return head
        if kind in ("and", "or"):
            bad = [c for c in node["children"] if c["status"] != "true"]
            names = "; ".join(_child_name(c) for c in bad)
            if kind == "and":
                return f"all of these must hold; not met: {names}"
            return f"none of these holds: {names}"
        if kind == "not":
            operand = node["children"][0]
            if operand["status"] == "true":
                return f"{_child_name(operand)} holds, and must not"
            return f"{_child_name(operand)} is unknown"
        if kind in ("definition", "criterion"):
            inner = node["children"][0] if node.get("children") else None
            return self._reason(inner, node) if inner is not None else node["summary"]
        if kind == "expression":
            return node["summary"]
        return node.get("summary", status)

    # --- outcomes -------------------------------------------------------------------------------
    def outcome(self, name: str) -> dict:
        decl = self.root.get(name)
        v = self.result.outcomes.get(name, _NOT_EVALUATED)
        tree = self.decl_node(decl, self.root, v)
        out = {"name": name, "label": decl.label or name, "kind": tree["kind"], "value": _json(v),
               "display": tree["display"], "status": status_of(v), "tree": tree}
        if (v is False or v is None) and tree["kind"] in ("criterion", "definition"):
            entries = self.why_not(tree)
            # the outcome's own line is above: list what keeps it from holding, or else say why itself
            out["why_not"] = (entries[0]["because"] or entries) if entries else []
        if isinstance(decl, m.Levels):
            out["level"] = self.level_summary(tree)
        if isinstance(v, Items):
            ev = {"id": decl.id, "of": tree["label"], "counted": [self._evidence_item(i, None) for i in
                                                                   sorted(v.sure, key=_item_sort_key)],
                  "might_count": []}
            for item in sorted(v.maybe, key=_item_sort_key):
                entry = self._evidence_item(item, None)
                entry["reason"], entry["action"] = _maybe_reason(item)
                ev["might_count"].append(entry)
            out["evidence"] = [ev]
        return out

    def level_summary(self, tree: dict) -> dict:
        levels = [n for n in tree.get("children", []) if n["kind"] == "level"]
        matched = next((n for n in levels if n["matched"]), None)
        higher = []
        for n in levels:
            if n is matched:
                break
            higher.append({"number": n["number"], "label": n["label"], "status": n["status"],
                           "why_not": n.get("why_not", [])})
        return {"matched": matched["number"] if matched else None,
                "label": matched["label"] if matched else None,
                "higher_levels": higher}

    def parameters(self) -> list[dict]:
        out = []
        overrides = self.result.parameters
        for owner, prefix in _protocols(self.root):
            for decl in owner.declarations:
                if isinstance(decl, m.Parameter):
                    name = f"{prefix}{decl.name}"
                    v = self._parameter_in_effect(decl, owner)
                    out.append({"name": name, "label": decl.label, "value": _json(v),
                                "display": show(v, self.unit_of(decl.default, owner)),
                                "overridden": name in overrides})
        return out

    def build(self) -> dict:
        header = self.root.header
        envelope = dict(self.result.envelope)
        outcomes = [self.outcome(name) for name in self.result.outcomes]
        for outcome in outcomes:
            _children_last(outcome["tree"])
        return {
            "schema": SCHEMA,
            "patient_id": self.result.patient_id,
            "envelope": envelope,
            "protocol": {"name": header.name, "title": header.title, "version": header.version,
                         "sha256": self.root.sha256},
            "parameters": self.parameters(),
            "outcomes": outcomes,
        }


# --- helpers ------------------------------------------------------------------------------------

def _node(node_id: str, kind: str, value, *, label: str | None = None, name: str | None = None,
          expression: str | None = None, description: str | None = None, display: str | None = None,
          children: list | None = None, summary: str | None = None) -> dict:
    out: dict[str, Any] = {"id": node_id, "kind": kind}
    if label is not None:
        out["label"] = label
    if name is not None:
        out["name"] = name
    if expression is not None:
        out["expression"] = expression
    if description is not None:
        out["description"] = description
    out["status"] = status_of(value)
    out["value"] = _json(value)
    out["display"] = display if display is not None else show(value)
    out["summary"] = summary if summary is not None else ""
    out["children"] = children if children is not None else []
    return out


def _children_last(node: dict) -> None:
    """Put each node's children after its own fields, so the JSON reads top-down."""
    stack = [node]
    while stack:
        current = stack.pop()
        kids = current.pop("children", [])
        current["children"] = kids
        stack.extend(kids)


def _entry(node: dict, label: str, reason: str, because: list[dict], needs: dict | None = None) -> dict:
    out = {"id": node["id"], "label": label, "status": node["status"], "reason": reason}
    if needs is not None:
        out["needs_more_of"] = needs
    out["because"] = because
    return out


def _child_name(node: dict) -> str:
    if node.get("label"):
        return _quote(node["label"]) if node["kind"] == "item" else node["label"]
    return node.get("expression") or node.get("summary") or node["kind"]


def _truth_word(v) -> str:
    if v is True:
        return "met"
    if v is False:
        return "not met"
    if v is None:
        return "unknown"
    return "not evaluated" if v is _NOT_EVALUATED else show(v)


def _level_word(v, chosen: bool) -> str:
    if v is True:
        return "matched" if chosen else "holds"
    if v is False:
        return "not met"
    if v is None:
        return "unknown (so not assigned)"
    return "not evaluated (a higher level matched)"


def _text(expr) -> str:
    from dsl.formatter import expr_to_text
    try:
        return expr_to_text(expr)
    except Exception:  # noqa: BLE001 - an explanation must not fail on printing
        return getattr(expr, "kind", "expression")


def _inner_nodes(expr):
    """The model nodes inside a leaf expression, in authored order (filter conditions excluded:
    names there are attributes of the items)."""
    from pathways.walk import children
    stack = [expr]
    while stack:
        current = stack.pop()
        yield current
        kids = [c for name, c in children(current) if not (isinstance(current, m.Filter) and name == "condition")]
        stack.extend(reversed(kids))


def _filter_value_sets(expr):
    for node in _inner_nodes(expr):
        if isinstance(node, m.Filter):
            from pathways.walk import walk
            for inner in walk(node.condition):
                if isinstance(inner, m.InValueSet):
                    yield inner.value_set


def _clipped_days(item, lo: dt.date, hi: dt.date, as_of: dt.date) -> int:
    if not isinstance(item, r.Encounter):
        return 0
    start = max(item.start.earliest, lo)
    end = min(item.end.latest if item.end is not None else as_of, hi)
    return max((end - start).days, 0)


def _unique(entries: list[dict]) -> list[dict]:
    seen, out = set(), []
    for e in entries:
        key = (e["what"], e["action"])
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def _protocols(root: m.Protocol):
    """The root protocol and every imported one (once each), with the prefix naming their parts."""
    seen = {id(root)}
    yield root, ""
    stack = [(u.protocol, f"{u.alias}.") for u in root.uses if u.protocol is not None]
    stack.reverse()
    while stack:
        proto, prefix = stack.pop()
        if id(proto) in seen:
            continue
        seen.add(id(proto))
        yield proto, prefix


def _code_displays(root: m.Protocol) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    stack = [root]
    seen = set()
    while stack:
        proto = stack.pop()
        if id(proto) in seen:
            continue
        seen.add(id(proto))
        for decl in proto.declarations:
            if isinstance(decl, m.ValueSet):
                for code in decl.codes:
                    if code.display:
                        out.setdefault((code.system, code.code), code.display)
        stack.extend(u.protocol for u in proto.uses if u.protocol is not None)
    return out


# --- the two renderings ---------------------------------------------------------------------------

def explain_json(result) -> dict:
    """The explanation of every outcome of ``result`` as plain JSON data
    (schema ``ltc-pathways/explanation/1``, see docs/explanation.schema.json)."""
    return _Builder(result).build()


_MARKS = {
    "unicode": {"true": "\u2713", "false": "\u2717", "unknown": "?", "not_evaluated": "\u2013",
                "known": "\u2022", "uncertain": "~"},
    "ascii": {"true": "+", "false": "x", "unknown": "?", "not_evaluated": "-", "known": "*", "uncertain": "~"},
}
_STATUS_WORDS = {"true": "yes", "false": "no", "unknown": "unknown", "not_evaluated": "not evaluated"}


class _Text:
    def __init__(self, ascii_only: bool):
        self.marks = _MARKS["ascii" if ascii_only else "unicode"]
        self.lines: list[str] = []
        self.ascii = ascii_only

    def add(self, depth: int, text: str) -> None:
        line = "  " * depth + text
        if self.ascii:
            line = line.replace("\u201c", '"').replace("\u201d", '"').replace("\u2014", "--") \
                .replace("\u00a3", "GBP ").replace("\u2013", "-")
        self.lines.append(line.rstrip())

    def mark(self, node: dict) -> str:
        return self.marks.get(node["status"], "\u2022")

    def node(self, node: dict, depth: int) -> None:
        kind = node["kind"]
        if kind == "item":
            child = node["children"][0]
            if child["kind"] in ("definition", "criterion", "score", "bands", "levels") and \
                    child.get("label") == node["label"]:
                # an item that names a criterion: it reads as the criterion, under its own label
                self.node(child, depth)
                return
            self.add(depth, f"{self.mark(node)} {_quote(node['label'])}: {_truth_word_of(node)}")
            self.node(child, depth + 2)
            return
        if kind in ("definition", "criterion", "score", "bands", "levels"):
            self.add(depth, f"{self.mark(node)} {node['summary']}")
            if "see" not in node:
                self.body(node, depth + 2)
            return
        if kind == "item_list":
            self.add(depth, node["summary"])
            for child in node["children"]:
                self.node(child, depth + 1)
            return
        if kind in ("and", "or"):
            self.add(depth, f"{'all' if kind == 'and' else 'any'} of these ({kind}): {_truth_word_of(node)}")
            for child in node["children"]:
                self.node(child, depth + 1)
            return
        if kind == "not":
            self.add(depth, f"{self.mark(node)} not (must not hold): {_truth_word_of(node)}")
            self.node(node["children"][0], depth + 1)
            return
        if kind == "items_met":
            self.add(depth, f"{self.mark(node)} {node['summary']}")
            self.add(depth + 1, f"rule: {node['expression']}")
            for label in node["met"]:
                self.add(depth + 1, f"{self.marks['true']} {_quote(label)}")
            for child in node["children"]:
                self.node(child, depth + 1)
            return
        if kind == "expression":
            self.leaf(node, depth)
            return
        self.add(depth, f"{self.mark(node)} {node.get('summary', '')}")

    def body(self, node: dict, depth: int) -> None:
        kind = node["kind"]
        if kind in ("definition", "criterion"):
            child = node["children"][0] if node["children"] else None
            if child is None:
                return
            if child["kind"] == "expression":
                self.leaf(child, depth, lead=False)
            else:
                self.node(child, depth)
        elif kind == "score":
            for child in node["children"]:
                self.add(depth, f"{self.mark(child)} {child['summary']}")
                self.node(child["children"][0], depth + 2)
        elif kind == "bands":
            value, *bands = node["children"]
            self.node(value, depth)
            for band in bands:
                self.add(depth, f"{self.mark(band)} band {band['summary']}")
        elif kind == "levels":
            for level in node["children"]:
                self.add(depth, f"{self.mark(level)} {level['summary']}")
                if level["children"] and level["status"] != "not_evaluated":
                    self.node(level["children"][0], depth + 2)

    def leaf(self, node: dict, depth: int, lead: bool = True) -> None:
        plain = node["summary"] == f"{node.get('description')}: {node['display']}"
        if lead and node["status"] in ("true", "false", "unknown", "not_evaluated"):
            self.add(depth, f"{self.mark(node)} {node['summary']}")
        elif lead or not plain:
            self.add(depth, node["summary"])
        else:
            depth -= 1  # under a definition whose line already gives the value
        self.add(depth + 1, f"rule: {node['expression']}")
        for f in node.get("facts", []):
            self.add(depth + 1, f"recorded: {f['display']}")
        for p in node.get("parameters", []):
            label = f" ({p['label']})" if p.get("label") else ""
            self.add(depth + 1, f"parameter {p['name']}{label} = {p['display']}")
        for c in node.get("code_lists", []):
            label = f" {_quote(c['label'])}" if c.get("label") else ""
            self.add(depth + 1, f"code list {c['name']}{label}: {c['codes']} codes")
        if "ranking" in node and node["ranking"].get("in_top_from") is not None and node.get("comparison"):
            self.add(depth + 1, node["ranking"]["text"])
        evidence = node.get("evidence", [])
        for ev in evidence:
            self.evidence(ev, depth + 1, named=len(evidence) > 1)
        for x in node.get("missing", []):
            self.add(depth + 1, f"missing: {x['what']} \u2014 {x['action']}")
        for child in node.get("children", []):
            self.node(child, depth + 1)

    def evidence(self, ev: dict, depth: int, named: bool = False) -> None:
        window = f" ({ev['window_text']})" if ev.get("window_text") else ""
        what = f" for {ev['of']}" if named else ""
        counted = ev["counted"]
        if counted:
            self.add(depth, f"counted{what}{window}:")
            for item in counted:
                self.add(depth + 1, item["text"])
        else:
            self.add(depth, f"counted{what}: none{window}")
        if ev.get("might_count"):
            self.add(depth, "might count (cannot be decided):")
            for item in ev["might_count"]:
                self.add(depth + 1, f"{item['text']} \u2014 {item['reason'].split(': ', 1)[-1]}; {item['action']}")
        for note in ev.get("notes", []):
            self.add(depth, f"note: {note}")

    def why_not(self, entries: list[dict], depth: int) -> None:
        for e in entries:
            reason = e["reason"]
            needs = e.get("needs_more_of")
            if needs and e["because"]:
                # the items follow, one a line, each with how far it is from holding
                reason = reason.split("; needs ", 1)[0] + f"; needs {needs['count']} more of:"
            self.add(depth, f"{self.marks.get(e['status'], '?')} {e['label']}: {reason}")
            self.why_not(e["because"], depth + 2)


def _truth_word_of(node: dict) -> str:
    return {"true": "met", "false": "not met", "unknown": "unknown", "not_evaluated": "not evaluated"}.get(
        node["status"], node.get("display", ""))


def explain_text(result, ascii: bool = False) -> str:  # noqa: A002 - the natural name
    """The explanation in plain language, as a clinician would read it aloud.

    ``ascii=True`` writes ``+``/``x``/``?`` instead of ✓/✗/? and plain quotes, for
    systems that cannot print them.
    """
    return render_text(explain_json(result), ascii=ascii)


def render_text(data: dict, ascii: bool = False) -> str:  # noqa: A002
    """Render an explanation built by :func:`explain_json`."""
    out = _Text(ascii)
    env = data["envelope"]
    proto = data["protocol"]
    title = f" {_quote(proto['title'])}" if proto.get("title") else ""
    out.add(0, f"Explanation for patient {data['patient_id']}")
    out.add(1, f"protocol:    {env['protocol']} version {env['version'] or '(none)'}{title}")
    out.add(1, f"sha256:      {env['sha256'][:16]}")
    out.add(1, f"engine:      {env['engine_version']}")
    out.add(1, f"as of:       {env['as_of']}")
    params = data["parameters"]
    if params:
        shown = "; ".join(f"{p['name']} = {p['display']}" + (" (set for this run)" if p["overridden"] else "")
                          for p in params)
        out.add(1, f"parameters:  {shown}")
    else:
        out.add(1, "parameters:  none")
    out.add(1, f"record:      {env['record_fingerprint'][:23]}")
    out.add(1, "key:         " + ", ".join(f"{out.marks[k]} {w}" for k, w in
                                          (("true", "met"), ("false", "not met"), ("unknown", "unknown"),
                                           ("not_evaluated", "not evaluated"))))
    for outcome in data["outcomes"]:
        out.add(0, "")
        mark = out.marks.get(outcome["status"], "\u2022")
        out.add(0, f"{mark} {outcome['label']} ({outcome['name']}): {outcome['display']}")
        tree = outcome["tree"]
        if "see" in tree:
            out.add(2, "(explained above)")
        else:
            out.body(tree, 2)
        for ev in outcome.get("evidence", []):
            out.evidence(ev, 2)
        if "level" in outcome:
            level = outcome["level"]
            if level["higher_levels"]:
                out.add(1, "Why not a higher level:")
                for h in level["higher_levels"]:
                    out.add(2, f"{out.marks.get(h['status'], '?')} level {h['number']} {_quote(h['label'])}: "
                               f"{_STATUS_WORDS.get(h['status'], h['status'])}")
                    out.why_not(h["why_not"], 4)
        if outcome.get("why_not"):
            out.add(1, "Why not:")
            out.why_not(outcome["why_not"], 2)
    return "\n".join(out.lines) + "\n"
