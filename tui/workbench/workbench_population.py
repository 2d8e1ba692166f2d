"""The Population panel: counts per outcome and level, a what-if on one parameter, and caseloads.

Both runs (as written, and with the changed parameter) are made in one
worker thread with a progress bar, so a large population never freezes the
screen; the run as written is kept and reused until the protocol text, the
dataset or the as-of date change.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Select, Static
from textual.worker import get_current_worker

from .workbench_data import Stratified, compare, order_values, parameters_of, stratify

MAX_MOVED_SHOWN = 500


class PopulationPane(Vertical):
    """Counts for the loaded population, and what changes when a parameter does."""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row", id="whatif-row"):
            yield Select([], prompt="parameter", id="param", compact=True)
            yield Input(placeholder="new value, e.g. 2 or 24 months", id="param-value", compact=True)
            yield Button("Run", id="run-population", compact=True)
        yield ProgressBar(total=100, show_eta=False, id="population-progress")
        yield Static("Load or generate patients on the Explain tab, then press Run.", id="population-summary")
        with Horizontal(id="population-tables"):
            yield DataTable(id="counts", cursor_type="row", zebra_stripes=True)
            yield DataTable(id="moved", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        # fixed widths: the picture must not depend on when the columns were last measured
        for table, columns in (("#counts", (("outcome", 16), ("value", 10), ("as written", 10), ("changed", 8))),
                               ("#moved", (("patient", 16), ("from", 6), ("to", 6)))):
            for title, width in columns:
                self.query_one(table, DataTable).add_column(title, width=width)

    def offer_parameters(self, protocol) -> None:
        """Fill the parameter list from the compiled protocol (and its imports)."""
        self.parameters = parameters_of(protocol) if protocol is not None else []
        select = self.query_one("#param", Select)
        current = select.value
        options = [(f"{p.name} = {p.default}", p.name) for p in self.parameters]
        select.set_options(options)
        if any(value == current for _, value in options):
            select.value = current

    @on(Button.Pressed, "#run-population")
    @on(Input.Submitted, "#param-value")
    def run(self) -> None:
        program = self.app.program()
        if program is None:
            return
        if self.app.dataset is None:
            self.app.notify("There are no patients yet: load or generate them on the Explain tab.",
                            severity="warning")
            return
        select = self.query_one("#param", Select)
        value = self.query_one("#param-value", Input).value.strip()
        changes: dict[str, str] = {}
        if select.value is not Select.BLANK and value:
            changes = {str(select.value): value}
        elif value:
            self.app.notify("Choose the parameter to change first.", severity="warning")
            return
        if changes:
            import engine
            try:
                program.parameters(changes)
            except engine.EngineError as exc:
                self.app.notify(str(exc), severity="error", timeout=8)
                return
        self.query_one("#population-summary", Static).update("Running...")
        self._run(program, self.app.dataset, self.app.as_of, changes)

    @work(thread=True, exclusive=True, group="population")
    def _run(self, program, dataset, as_of: str, changes: dict[str, str]) -> None:
        worker = get_current_worker()
        total = len(dataset.records) * (2 if changes else 1)
        bar = self.query_one("#population-progress", ProgressBar)
        self.app.call_from_thread(bar.update, total=total, progress=0)
        offset = 0

        def progress(done: int, _of: int) -> None:
            self.app.call_from_thread(bar.update, progress=offset + done)
        key = (id(program), id(dataset), as_of)
        before = self.app.baseline.get(key)
        if before is None:
            before = stratify(program, dataset.records, as_of, None, progress, lambda: worker.is_cancelled)
            if before is None:
                return
            self.app.baseline = {key: before}
        offset = len(dataset.records)
        after = None
        if changes:
            after = stratify(program, dataset.records, as_of, changes, progress, lambda: worker.is_cancelled)
            if after is None:
                return
        self.app.call_from_thread(bar.update, progress=total)
        self.app.call_from_thread(self.show, before, after)

    def show(self, before: Stratified, after: Stratified | None) -> None:
        counts = self.query_one("#counts", DataTable)
        counts.clear()
        for outcome, values in before.counts.items():
            shown = order_values(set(values) | (set(after.counts[outcome]) if after else set()))
            for value in shown:
                changed = f"{after.counts[outcome].get(value, 0):,}" if after else ""
                counts.add_row(outcome, value, f"{values.get(value, 0):,}", changed)
        moved_table = self.query_one("#moved", DataTable)
        moved_table.clear()
        lines = [f"{before.total:,} patients, as of {self.app.as_of}."]
        run = after or before
        if run.top_level is not None:
            managers = run.case_managers()
            lines.append(f"Level {run.top_level} ({run.top_label}): {run.top_patients:,} patients; "
                         f"case managers needed: {managers[50]} at a caseload of 50, {managers[80]} at 80. "
                         f"Hidden (level {run.top_level} unknown): {run.hidden:,}.")
        if after is not None:
            moves = compare(before, after)
            self.moves = moves
            change = ", ".join(f"{k} = {v}" for k, v in after.parameters.items())
            between = "; ".join(f"{a}\u2192{b}: {n:,}" for (a, b), n in sorted(moves.between.items()))
            lines.insert(0, f"With {change}: {moves.count:,} patient{'s' * (moves.count != 1)} move "
                            f"{before.outcome}" + (f" ({between})" if between else "") + ".")
            for pid, was, now in moves.moved[:MAX_MOVED_SHOWN]:
                moved_table.add_row(pid, was, now)
            if moves.count > MAX_MOVED_SHOWN:
                moved_table.add_row(f"... {moves.count - MAX_MOVED_SHOWN:,} more", "", "")
        else:
            self.moves = None
        self.query_one("#population-summary", Static).update(Text("\n".join(lines)))
