"""The workbench application: tabs for editing, tests, explanations, the population and pathways.

The app holds what the panels share: the open file (through the Edit panel),
the program compiled from the editor's current text (unsaved edits
included, so a what-if can be tried before saving), the dataset, the as-of
date, and caches of the population distributions and of the run as written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, TabbedContent, TabPane, TextArea

from .workbench_data import DataError, Dataset, generate_dataset, load_dataset
from .workbench_editor import EditPane
from .workbench_explain import ExplainPane
from .workbench_pathway import PathwayPane
from .workbench_population import PopulationPane
from .workbench_screens import HelpScreen, LeaveScreen
from .workbench_tests import TestsPane

#: the widget that takes the focus when a tab is shown (focus in a hidden tab would switch back to it)
FOCUS = {"edit": "#editor", "tests": "#test-list", "explain": "#patient-search", "population": "#param-value",
         "pathway": "#pathway-choice"}
TABS = (("edit", "Edit"), ("tests", "Tests"), ("explain", "Explain"), ("population", "Population"),
        ("pathway", "Pathway"))


class WorkbenchApp(App):
    """``pathways tui``: author, check, test, explain and try protocols."""

    CSS_PATH = "workbench.tcss"
    TITLE = "pathways workbench"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+n", "complete", "Complete"),
        Binding("f8", "next_problem", "Next problem"),
        # priority: the editor's own F6 (select the line) would otherwise hide the Pathway tab
        *(Binding(f"f{k}", f"tab('{tab}')", title, show=False, priority=True)
          for k, (tab, title) in enumerate(TABS, start=2)),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, path: Path, as_of: str, data: str | None = None, patients: int | None = None,
                 seed: int = 1, blink: bool = True, unicode: bool = True):
        super().__init__()
        path = path.resolve()
        self.root = path if path.is_dir() else path.parent
        from dsl.compiler import protocol_files
        self.files = protocol_files([self.root])
        self.first = path if path.is_file() else (self.files[0] if self.files else None)
        if self.first is not None and self.first not in self.files:
            self.files.append(self.first)
        self.as_of = as_of
        self.seed = seed
        self.blink = blink
        self.unicode = unicode
        self.dataset: Dataset | None = None
        self.baseline: dict = {}
        self._start_data, self._start_patients = data, patients
        self._program = None
        self._program_text: str | None = None
        self._distributions: dict = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="tabs"):
            with TabPane("Edit", id="edit"):
                yield EditPane(self.files, self.root, id="edit-pane")
            with TabPane("Tests", id="tests"):
                yield TestsPane(id="tests-pane")
            with TabPane("Explain", id="explain"):
                yield ExplainPane(id="explain-pane")
            with TabPane("Population", id="population"):
                yield PopulationPane(id="population-pane")
            with TabPane("Pathway", id="pathway"):
                yield PathwayPane(id="pathway-pane")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"as of {self.as_of}"
        if not self.blink:
            for widget in self.query(TextArea).results() or ():
                widget.cursor_blink = False
            for widget in self.query(Input).results():
                widget.cursor_blink = False
        if self.first is not None:
            self.edit.open(self.first)
            self.edit.editor.focus()
        else:
            self.notify(f"There are no .pw files in {self.root}.", severity="warning")
        if self._start_data:
            self.load_data(self._start_data)
        elif self._start_patients:
            self.generate_data(self._start_patients)

    @property
    def edit(self) -> EditPane:
        return self.query_one("#edit-pane", EditPane)

    # --- the program -----------------------------------------------------------
    def program(self, quiet: bool = False):
        """The program compiled from the editor's text, or None (and a note why) while it has errors."""
        import engine

        last = self.edit.last
        if last is None:
            if not quiet:
                self.notify("Open a protocol first.", severity="warning")
            return None
        if self._program_text == last.text and self._program is not None:
            return self._program
        protocol = last.protocol()
        if protocol is None:
            if not quiet:
                self.notify(f"{self.edit.path.name} has {last.errors} error{'s' * (last.errors != 1)}: "
                            "fix them (F8 goes to the next) to run it.", severity="error")
            return None
        try:
            self._program = engine.compile(protocol)
        except engine.EngineError as exc:
            if not quiet:
                self.notify(str(exc), severity="error")
            return None
        self._program_text = last.text
        self._distributions.clear()
        self.baseline = {}
        return self._program

    def distributions(self, program) -> dict:
        """The population's rank distributions, for protocols that rank patients (computed once per run)."""
        key = (id(program), id(self.dataset), self.as_of)
        if key not in self._distributions:
            self._distributions = {key: program.distributions(self.dataset.records, self.as_of)}
        return self._distributions[key]

    @on(EditPane.Checked)
    def checked(self, event: EditPane.Checked) -> None:
        name = self.edit.path.name if self.edit.path else ""
        self.sub_title = f"{name} \u2014 as of {self.as_of}"
        tabs = self.query_one("#tabs", TabbedContent)
        if tabs.active in ("pathway", "population"):
            self._refresh_tab(tabs.active)

    @on(TabbedContent.TabActivated)
    def tab_shown(self, event: TabbedContent.TabActivated) -> None:
        self._refresh_tab(event.pane.id)

    def _refresh_tab(self, tab: str | None) -> None:
        program = self.program(quiet=True)
        protocol = program.protocol if program is not None else None
        if tab == "pathway":
            self.query_one(PathwayPane).offer(protocol)
        elif tab == "population":
            self.query_one(PopulationPane).offer_parameters(protocol)
        elif tab == "tests":
            self.query_one(TestsPane).refresh_cases()

    # --- data ------------------------------------------------------------------
    def load_data(self, path: str) -> None:
        self.notify(f"Loading {path}...")
        self._load(lambda: load_dataset(path))

    def generate_data(self, patients: int) -> None:
        self._load(lambda: generate_dataset(patients, self.seed, self.as_of))

    @work(thread=True, exclusive=True, group="data")
    def _load(self, make: Callable[[], Dataset]) -> None:
        try:
            dataset = make()
        except DataError as exc:
            self.call_from_thread(self.notify, str(exc), severity="error", timeout=10)
            return
        self.call_from_thread(self._data_ready, dataset)

    def _data_ready(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._distributions.clear()
        self.baseline = {}
        self.query_one(ExplainPane).show_dataset()
        self.notify(f"{len(dataset.records):,} patients ready: {dataset.source}.")

    # --- actions ---------------------------------------------------------------
    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_save(self) -> None:
        message = self.edit.write()
        self.notify(message, severity="information" if "formatted" in message or "Saved" in message else "error")

    def action_complete(self) -> None:
        self.action_tab("edit")
        self.edit.complete()

    def action_next_problem(self) -> None:
        self.action_tab("edit")
        self.edit.next_problem()

    def action_show_name(self) -> None:
        info = self.edit.name_info()
        if info is None:
            self.notify("The cursor is not on a name.")
        else:
            self.notify("\n".join(info.lines), title=info.title, timeout=10)

    def action_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab
        self.query_one(FOCUS[tab]).focus()

    def action_run_tests(self) -> None:
        self.action_tab("tests")
        self.query_one(TestsPane).run_all()

    def action_run_population(self) -> None:
        self.action_tab("population")
        self.query_one(PopulationPane).run()

    def ask_to_leave(self, then: Callable[[], None], doing: str = "open another file") -> None:
        """Run ``then`` once unsaved work is saved or knowingly discarded; never lose it silently."""
        if not self.edit.dirty:
            then()
            return

        def answered(choice: str | None) -> None:
            if choice == "save":
                message = self.edit.write()
                if message.startswith("Could not"):
                    self.notify(message, severity="error")
                    return
                then()
            elif choice == "discard":
                then()
        self.push_screen(LeaveScreen(self.edit.path.name, doing), answered)

    async def action_quit(self) -> None:
        self.ask_to_leave(self.exit, doing="quit")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Save", "Format and save the open file (Ctrl+S)", self.action_save)
        yield SystemCommand("Next problem", "Go to the next problem in the file (F8)", self.action_next_problem)
        yield SystemCommand("Complete name", "Complete the name at the cursor (Ctrl+N)", self.action_complete)
        yield SystemCommand("Show the name under the cursor", "Its definition and type", self.action_show_name)
        yield SystemCommand("Run all tests", "Run the tests of the saved file", self.action_run_tests)
        yield SystemCommand("Run the population", "Counts per outcome and level, and the what-if",
                            self.action_run_population)
        yield SystemCommand("Generate 1,000 patients", "A synthetic population for Explain and Population",
                            lambda: self.generate_data(1000))
        for tab, title in TABS:
            yield SystemCommand(f"Show the {title} tab", f"Switch to {title}", lambda t=tab: self.action_tab(t))
        yield SystemCommand("Help", "Keys and how to use the workbench (F1)", self.action_help)
