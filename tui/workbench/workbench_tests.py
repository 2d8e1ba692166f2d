"""The Tests panel: run the open file's tests (all, or the chosen one), see each result and the coverage.

It uses the runner's documented API (docs/testing.md, ``engine.protocol_tests``:
``discover``, ``run_test``, ``coverage``). Tests run on the saved file, in a
worker thread, so a long run never freezes the screen.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Label, ListItem, ListView, Static

STATUS_MARKS = {"passed": "\u2713", "failed": "\u2717", "error": "!"}


def runner():
    """The test runner module, or None when this build does not have it yet."""
    try:
        from engine import protocol_tests
    except ImportError:
        return None
    return protocol_tests


class TestsPane(Vertical):
    """Buttons to run, the list of tests with pass/fail, the chosen result and the coverage."""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Button("Run all", id="run-all", compact=True)
            yield Button("Run the chosen test", id="run-one", compact=True)
            yield Static("", id="tests-summary")
        with Horizontal(id="tests-body"):
            yield ListView(id="test-list")
            with VerticalScroll(id="test-detail-scroll"):
                yield Static("Open a file with tests and press Run all.", id="test-detail")
        yield Label("Coverage: criteria items, levels and bands seen true / false / unknown", classes="heading")
        yield DataTable(id="coverage", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.cases: list = []
        self.outcomes: dict[str, object] = {}
        table = self.query_one("#coverage", DataTable)
        # fixed widths: the picture must not depend on when the columns were last measured
        for title, width in (("kind", 5), ("protocol", 12), ("label", 44), ("true", 5), ("false", 5), ("unknown", 7)):
            table.add_column(title, width=width)

    def refresh_cases(self) -> None:
        """List the tests of the saved file (a quick discovery, no run)."""
        module = runner()
        path = self.app.edit.path
        if module is None:
            self.query_one("#test-detail", Static).update(
                "The test runner (engine/protocol_tests.py, described in docs/testing.md) is not part of "
                "this build yet, so tests cannot be run here.")
            return
        if path is None:
            return
        try:
            self.cases = [c for c in module.discover([str(path)]) if _same(c.file, path)]
        except Exception as exc:  # noqa: BLE001 - the runner's failure is shown, never a traceback
            self.app.notify(f"Could not read the tests of {path.name}: {exc}", severity="error")
            self.cases = []
        self._list()

    def _list(self) -> None:
        listing = self.query_one("#test-list", ListView)
        listing.clear()
        for case in self.cases:
            outcome = self.outcomes.get(case.id)
            mark = STATUS_MARKS.get(getattr(outcome, "status", ""), " ")
            listing.append(ListItem(Label(Text(f"{mark} {case.name}"))))
        if not self.cases:
            self.query_one("#test-detail", Static).update("This file has no tests.")

    @on(Button.Pressed, "#run-all")
    def run_all(self) -> None:
        self._start(None)

    @on(Button.Pressed, "#run-one")
    def run_chosen(self) -> None:
        index = self.query_one("#test-list", ListView).index
        if index is None or not self.cases:
            self.app.notify("Choose a test in the list first.", severity="warning")
            return
        self._start(self.cases[index].id)

    def _start(self, only: str | None) -> None:
        if runner() is None:
            self.refresh_cases()
            return
        if self.app.edit.dirty:
            self.app.notify("Running the saved file: press Ctrl+S to include your changes.", severity="warning")
        self.refresh_cases()
        self.query_one("#tests-summary", Static).update("running...")
        self._run(self.cases if only is None else [c for c in self.cases if c.id == only])

    @work(thread=True, exclusive=True, group="tests")
    def _run(self, cases: list) -> None:
        module = runner()
        results = []
        for case in cases:
            try:
                results.append(module.run_test(case))
            except Exception as exc:  # noqa: BLE001
                self.app.call_from_thread(self.app.notify, f"{case.name}: the runner failed: {exc}",
                                          severity="error")
        report = module.coverage(results) if results else None
        self.app.call_from_thread(self.show, results, report)

    def show(self, results: list, report) -> None:
        for outcome in results:
            self.outcomes[outcome.case.id] = outcome
        self._list()
        passed = sum(o.status == "passed" for o in results)
        failed = sum(o.status == "failed" for o in results)
        errors = sum(o.status == "error" for o in results)
        summary = f"{passed} passed, {failed} failed, {errors} in error"
        if report is not None:
            summary += f"; coverage {report.percent:.0f}% (items seen both true and false)"
        self.query_one("#tests-summary", Static).update(Text(summary))
        first_bad = next((o for o in results if o.status != "passed"), results[0] if results else None)
        if first_bad is not None:
            self.detail(first_bad)
        table = self.query_one("#coverage", DataTable)
        table.clear()
        if report is not None:
            for row in report.rows:
                if not getattr(row, "reachable", True):
                    table.add_row(row.kind, row.protocol, Text(row.label), "not run", "", "")
                    continue
                table.add_row(row.kind, row.protocol, Text(row.label), _yes(row.seen_true), _yes(row.seen_false),
                              _yes(row.seen_unknown))

    @on(ListView.Highlighted, "#test-list")
    def highlighted(self, event: ListView.Highlighted) -> None:
        index = event.list_view.index
        if index is not None and index < len(self.cases):
            outcome = self.outcomes.get(self.cases[index].id)
            if outcome is not None:
                self.detail(outcome)

    def detail(self, outcome) -> None:
        lines = [f"{STATUS_MARKS.get(outcome.status, '?')} {outcome.case.name}: {outcome.status}"]
        if outcome.status == "error" and getattr(outcome, "message", None):
            lines.append(str(outcome.message))
        for check in getattr(outcome, "checks", ()) or ():
            mark = "\u2713" if check.passed else "\u2717"
            lines.append(f"{mark} {check.what}")
            if not check.passed:
                lines.append(f"    expected {check.expected}")
                lines.append(f"    actual   {check.actual}")
        if outcome.status == "failed" and getattr(outcome, "explanation", None):
            lines += ["", "Why:", str(outcome.explanation)]
        self.query_one("#test-detail", Static).update(Text("\n".join(lines)))


def _yes(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "-"
    return f"{value}" if value else "-"


def _same(file, path) -> bool:
    from pathlib import Path
    try:
        return Path(file).resolve() == path.resolve()
    except (OSError, TypeError):
        return False
