"""The plain-language rendering of an explanation, as a clinician would read it aloud."""

from __future__ import annotations

from .explain import explain_json

from .wording import (
    _quote,
)


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
