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

from .evaluate import EngineError, literal
from .values import Items, Rng, compare, number_range, to_json
from .explain_evidence import _Measures
from .wording import (
    amount, _ATTRIBUTE_UNITS, _ATTRIBUTE_WORDS, COLLECTION_WORDS, _Evidence, _item_sort_key, _json,
    _lower_first, _maybe_reason, _NOT_EVALUATED, _num, _OP_WORDS, PATIENT_WORDS, _plural, _QUANTIFIER_WORDS,
    _quote, SCHEMA, show, status_of,
)


_MISSING = object()


# --- the builder ------------------------------------------------------------------------------

class _Builder(_Measures):
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
        # What does not depend on the patient (expression text, descriptions,
        # code displays) is worked out once per program and kept with it.
        self.static: dict = result.program.__dict__.setdefault("_explain_static", {})
        self.params_key = tuple(sorted(result.parameters.items()))
        self.evidence = _Evidence(self.once(("displays",), lambda: _code_displays(self.root)))
        self._overrides: dict | None = None

    def once(self, key: tuple, make):
        """``make()``, computed once per program for ``key`` (values are deterministic, so a race is harmless)."""
        found = self.static.get(key, _MISSING)
        if found is _MISSING:
            found = self.static[key] = make()
        return found

    def text(self, expr) -> str:
        return self.once(("text", id(expr)), lambda: _text(expr))

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
        """The unit a node's value is shown in (patient-independent, so worked out once)."""
        return self.once(("unit", id(node), id(proto)), lambda: self._unit_of(node, proto))

    def _unit_of(self, node, proto: m.Protocol) -> str | None:
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
        return self.once(("describe", id(node), id(proto), self.params_key), lambda: self._describe(node, proto))

    def _describe(self, node, proto: m.Protocol) -> str:
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
            return f"{d(node.source)} where {self.text(node.condition)}"
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
            if isinstance(node.amount, m.Ref):
                return f"{d(node.amount)} ago"  # the parameter's value, as set for this run
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
        return self.text(node)

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
            return _node(expr.id, "not", v, expression=self.text(expr), children=[child],
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
        return _node(expr.id, expr.op, v, expression=self.text(expr), children=children, summary=summary)

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
            authored = head = f"at least {self.text(expr.minimum)} of"
            if isinstance(expr.minimum, m.Ref):
                head = f"at least {self.text(expr.minimum)} ({show(n_value)}) of"
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
        node = _node(expr.id, "items_met", v, expression=self.text(expr), children=children, summary=summary)
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
            node["expression"] = self.text(decl.expr) if not isinstance(decl.expr, m.ItemList) else None
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
    def _leaf_plan(self, expr, proto: m.Protocol):
        """What a leaf names, worked out once per program: the references it explains
        (parameters, code lists, definitions, facts about the patient; each once, in
        authored order), the code lists inside its `where` filters, and its aggregates."""
        inner = list(_inner_nodes(expr))
        refs, seen = [], set()
        for sub in inner:
            if not isinstance(sub, m.Ref):
                continue
            kind, owner, decl = self.resolve(sub, proto)
            if kind == "decl" and decl is not None:
                if decl.id in seen:
                    continue
                seen.add(decl.id)
                if isinstance(decl, (m.Parameter, m.ValueSet, m.Definition, m.Score, m.Bands, m.Levels)):
                    refs.append((sub, kind, owner, decl))
            elif kind == "patient" and decl not in seen:
                seen.add(decl)
                refs.append((sub, kind, owner, decl))
        value_sets = []
        for sub in _filter_value_sets(expr):
            kind, owner, decl = self.resolve(sub, proto)
            if kind == "decl" and isinstance(decl, m.ValueSet) and decl.id not in seen:
                seen.add(decl.id)
                value_sets.append({"name": self.dotted(decl, owner), "label": decl.label, "codes": len(decl.codes)})
        aggregates = [sub for sub in inner if isinstance(sub, (m.Aggregate, m.PerPeriod))]
        return tuple(refs), tuple(value_sets), tuple(aggregates)

    def leaf(self, expr, proto: m.Protocol) -> dict:
        v = self.value(expr.id)
        description = self.describe(expr, proto)
        unit = self.unit_of(expr, proto)
        node = _node(expr.id, "expression", v, expression=self.text(expr), description=description,
                     display=show(v, unit))
        refs, value_sets, aggregates = self.once(("leaf", id(expr), id(proto)), lambda: self._leaf_plan(expr, proto))
        children: list[dict] = []
        params: list[dict] = []
        code_lists: list[dict] = []
        missing: list[dict] = []
        facts: list[dict] = []
        for sub, kind, owner, decl in refs:
            if kind == "decl":
                if isinstance(decl, m.Parameter):
                    pv = self._param_value(sub, decl, owner)
                    params.append({"name": self.dotted(decl, owner), "label": decl.label,
                                   "value": _json(pv), "display": show(pv, self.unit_of(decl.default, owner))})
                elif isinstance(decl, m.ValueSet):
                    code_lists.append({"name": self.dotted(decl, owner), "label": decl.label,
                                       "codes": len(decl.codes)})
                else:
                    children.append(self.decl_node(decl, owner, self.value(sub.id)))
            else:
                missing.extend(self._patient_missing(decl, self.value(sub.id), v))
                facts.append(self._fact(decl))
        code_lists.extend(dict(entry) for entry in value_sets)

        evidence = []
        for sub in aggregates:
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



def explain_text(result, ascii: bool = False) -> str:  # noqa: A002 - the natural name
    """The explanation in plain language (see engine.explain_text)."""
    from .explain_text import explain_text as render
    return render(result, ascii)
