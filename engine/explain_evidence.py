"""What an explanation measures at a leaf: the comparison and how far it is from
holding, the record items that counted, counts per period, and a patient's rank."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pathways import model as m
from pathways import records as r

from . import calendar as cal
from .evaluate import group_key, top_share
from .record_index import attribute, item_date
from .values import Days, Items, Qty, Rng, Span, duration_range, number_range, to_json
from .wording import (
    amount, _ATTRIBUTE_UNITS, _ATTRIBUTE_WORDS, DURATION_UNITS, _item_sort_key, _json, _maybe_reason,
    MISSING_FACTS, _NOT_EVALUATED, _num, _OP_WORDS, PATIENT_WORDS, _plural, show,
)


class _Measures:
    """Mixed into the explanation builder: needs ``value``, ``resolve``, ``describe``, ``unit_of``."""

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


def _clipped_days(item, lo: dt.date, hi: dt.date, as_of: dt.date) -> int:
    """Nights of a stay inside [lo, hi] (a stay without an end runs to the as-of date)."""
    if not isinstance(item, r.Encounter):
        return 0
    start = max(item.start.earliest, lo)
    end = min(item.end.latest if item.end is not None else as_of, hi)
    return max((end - start).days, 0)
