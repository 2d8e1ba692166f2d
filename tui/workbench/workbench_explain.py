"""The Explain panel: load or generate a dataset, pick a patient, see outcomes and the explanation tree.

The tree is built from ``Result.explain()`` (docs/explanation.schema.json):
each node shows its summary with a mark (met, not met, unknown, not
evaluated); under it come the comparison with its threshold, the ranking, the
evidence counted and what might have counted, what is missing and what to
do about it, the reasons a level was not reached, then the node's parts.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, ListItem, ListView, Static, Tree
from textual.worker import get_current_worker

MARKS = {"true": "\u2713", "false": "\u2717", "unknown": "?", "not_evaluated": "\u2013", "known": "\u25cf"}
MAX_ITEMS = 12  # evidence items shown per list before "... and N more"


def _mark(status: str | None) -> str:
    return MARKS.get(status or "", "\u00b7")


def add_explanation(parent, node: dict, expand_depth: int = 2, depth: int = 0) -> None:
    """Add one explanation node (and everything under it) to a textual Tree node."""
    label = f"{_mark(node.get('status'))} {node.get('summary') or node.get('label') or node.get('id')}"
    branch = parent.add(Text(label), expand=depth < expand_depth)
    details = []
    if node.get("expression") and node.get("kind") not in ("or", "and", "item_list"):
        details.append(f"rule: {node['expression']}")
    comparison = node.get("comparison")
    if comparison:
        details.append(f"value {comparison.get('actual_display')}; threshold {comparison.get('words')} "
                       f"{comparison.get('threshold_display')}")
        if comparison.get("gap"):
            details.append(f"gap: {comparison['gap'].get('text')}")
    if node.get("ranking"):
        details.append(f"ranking: {node['ranking'].get('text')}")
    for fact in node.get("facts") or ():
        details.append(f"fact: {fact.get('display')}")
    for parameter in node.get("parameters") or ():
        details.append(f"parameter: {parameter.get('name')} = {parameter.get('display')}")
    for line in details:
        branch.add_leaf(Text(line))
    for evidence in node.get("evidence") or ():
        title = f"evidence: {evidence.get('of')}" + (f" ({evidence['window_text']})" if evidence.get("window_text")
                                                     else "")
        counted, maybe = evidence.get("counted") or [], evidence.get("might_count") or []
        ev = branch.add(Text(f"{title}: {len(counted)} counted" + (f", {len(maybe)} might count" if maybe else "")))
        for item in counted[:MAX_ITEMS]:
            ev.add_leaf(Text(f"\u2713 {item.get('text')}"))
        for item in maybe[:MAX_ITEMS]:
            ev.add_leaf(Text(f"? {item.get('text')}"))
        extra = max(len(counted) - MAX_ITEMS, 0) + max(len(maybe) - MAX_ITEMS, 0)
        if extra:
            ev.add_leaf(f"... and {extra} more")
        for note in evidence.get("notes") or ():
            ev.add_leaf(Text(f"note: {note}"))
    for missing in node.get("missing") or ():
        branch.add_leaf(Text(f"? unknown: {missing.get('what')} \u2192 {missing.get('action')}"))
    why_not = node.get("why_not") or ()
    if why_not:
        wn = branch.add("why not", expand=depth < expand_depth)
        for reason in why_not:
            _add_why_not(wn, reason)
    for child in node.get("children") or ():
        add_explanation(branch, child, expand_depth, depth + 1)


def _add_why_not(parent, reason: dict) -> None:
    label = f"{_mark(reason.get('status'))} {reason.get('label')}: {reason.get('reason')}"
    branch = parent.add(Text(label)) if reason.get("because") else parent.add_leaf(Text(label))
    for because in reason.get("because") or ():
        if isinstance(because, dict):
            _add_why_not(branch, because)
        else:
            branch.add_leaf(Text(str(because)))


class ExplainPane(Horizontal):
    """Choose a dataset and a patient; the right side explains that patient's outcomes."""

    def compose(self) -> ComposeResult:
        with Vertical(id="explain-side"):
            yield Label("Data (FHIR, tables folder or .jsonl)", classes="heading")
            yield Input(placeholder="path to load", id="data-path", compact=True)
            with Horizontal(classes="row"):
                yield Input(value="200", id="generate-n", restrict=r"\d*", max_length=7, compact=True)
                yield Button("Generate", id="generate", compact=True)
            yield Static("No data loaded.", id="data-report")
            yield Input(placeholder="search patient id", id="patient-search", compact=True)
            yield ListView(id="patients")
        with Vertical(id="explain-main"):
            yield Static("Choose a patient to see their outcomes.", id="outcomes")
            yield Tree("explanation", id="explain-tree")

    def on_mount(self) -> None:
        self.query_one("#explain-tree", Tree).show_root = False

    # --- data -----------------------------------------------------------------
    @on(Input.Submitted, "#data-path")
    def load(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.app.load_data(event.value.strip())

    @on(Button.Pressed, "#generate")
    @on(Input.Submitted, "#generate-n")
    def generate(self) -> None:
        text = self.query_one("#generate-n", Input).value.strip()
        if not text.isdigit() or not 1 <= int(text) <= 1_000_000:
            self.app.notify("Write how many patients to generate: a whole number from 1 to 1,000,000.",
                            severity="error")
            return
        self.app.generate_data(int(text))

    def show_dataset(self) -> None:
        data = self.app.dataset
        self.query_one("#data-report", Static).update(f"{data.source}\n{data.report}" if data else "No data loaded.")
        self.search(self.query_one("#patient-search", Input).value)

    @on(Input.Changed, "#patient-search")
    def search_changed(self, event: Input.Changed) -> None:
        self.search(event.value)

    def search(self, text: str) -> None:
        listing = self.query_one("#patients", ListView)
        listing.clear()
        data = self.app.dataset
        if data is None:
            return
        self._ids = data.search(text)
        listing.extend(ListItem(Label(pid)) for pid in self._ids)

    @on(ListView.Selected, "#patients")
    def patient_chosen(self, event: ListView.Selected) -> None:
        if event.list_view.index is not None:
            self.explain(self._ids[event.list_view.index])

    # --- explaining -------------------------------------------------------------
    def explain(self, patient_id: str) -> None:
        program = self.app.program()
        if program is None or self.app.dataset is None:
            return
        self.query_one("#outcomes", Static).update(f"Explaining {patient_id}...")
        self._explain(program, patient_id, self.app.as_of)

    @work(thread=True, exclusive=True, group="explain")
    def _explain(self, program, patient_id: str, as_of: str) -> None:
        import engine

        data = self.app.dataset
        record = data.by_id[patient_id]
        try:
            population = self.app.distributions(program) if program.population_terms() else None
            result = program.evaluate(record, as_of=as_of, explain=True, population=population)
            explanation = result.explain()
        except engine.EngineError as exc:
            self.app.call_from_thread(self.app.notify, f"Could not explain {patient_id}: {exc}", severity="error")
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show, explanation)

    def show(self, explanation: dict) -> None:
        patient = explanation.get("patient_id")
        lines = [f"[b]{patient}[/b] as of {explanation['envelope']['as_of']} "
                 f"({explanation['protocol']['name']} {explanation['protocol']['version']})"]
        for outcome in explanation.get("outcomes", []):
            lines.append(f"{_mark(outcome.get('status'))} {outcome.get('label') or outcome['name']}: "
                         f"{outcome.get('display')}")
        changed = [p for p in explanation.get("parameters", []) if p.get("overridden")]
        if changed:
            lines.append("changed: " + ", ".join(f"{p['name']} = {p['display']}" for p in changed))
        from rich.markup import escape
        self.query_one("#outcomes", Static).update("\n".join(lines[:1] + [escape(x) for x in lines[1:]]))
        tree = self.query_one("#explain-tree", Tree)
        tree.clear()
        for outcome in explanation.get("outcomes", []):
            if outcome.get("tree"):
                add_explanation(tree.root, outcome["tree"])
        tree.root.expand()
        self.explained = explanation
