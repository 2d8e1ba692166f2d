"""The help screen and the question asked before unsaved work would be lost."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Markdown

HELP = """\
# The protocol workbench

Edit a protocol, see its problems as you type, run its tests, explain a
patient's result and try a change of parameter on a whole population.

| key | what it does |
|---|---|
| F1 | this help |
| F2 … F6 | the Edit, Tests, Explain, Population and Pathway tabs |
| Ctrl+S | save; the text is formatted first when it has no syntax error, and saved as typed when it has |
| Ctrl+N | complete the name at the cursor |
| F8 | go to the next problem |
| Ctrl+P | the command palette: every command by name |
| Ctrl+Q | quit (asks first when there is unsaved work) |
| Tab / Shift+Tab | move between panels |

**Edit**: pick a file on the left; the outline below it jumps to each
criterion, item, level, step, care-plan section and parameter. Problems are
underlined in the text and listed under it: choose one to go to it. The
panel on the right (in a wide terminal) shows the definition and type of
the name under the cursor; in a narrow one, use the palette's "Show the
name under the cursor".

**Tests**: run all the tests of the saved file, or the chosen one; a failed
test shows what was expected, what came out and why; coverage says which
criteria were seen true, false and unknown.

**Explain**: type a path and press Enter to load FHIR, a tables folder or a
.jsonl file, or generate synthetic patients; search for a patient by id and
choose one to see the outcomes and the explanation tree (Enter or a click
opens a branch).

**Population**: press Run for the counts per outcome and level; choose a
parameter, type a new value (written as in the language: `2`,
`24 months`, `£150`) and run again to see who moves between levels, and
the case managers needed at caseloads of 50 and 80.

**Pathway**: the chosen pathway's steps and ways out, drawn as text.

Evaluation always uses the as-of date shown in the title bar; there is no
hidden clock (`pathways tui --as-of YYYY-MM-DD`).
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [("escape", "dismiss", "Close"), ("f1", "dismiss", "Close"), ("q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Markdown(HELP)
            yield Button("Close (Esc)", id="close-help", compact=True)

    @on(Button.Pressed, "#close-help")
    def close(self) -> None:
        self.dismiss(None)


class LeaveScreen(ModalScreen[str]):
    """Asks what to do with unsaved changes: "save", "discard" or "cancel"."""

    BINDINGS = [("escape", "cancel", "Cancel")]

    def __init__(self, name: str, doing: str):
        super().__init__()
        self.file_name = name
        self.doing = doing

    def compose(self) -> ComposeResult:
        with Vertical(id="leave-box"):
            yield Label(f"{self.file_name} has changes that are not saved.")
            yield Label(f"Save them before you {self.doing}?")
            with Horizontal(classes="buttons"):
                yield Button("Save", id="save", variant="primary", compact=True)
                yield Button("Don't save", id="discard", variant="error", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    @on(Button.Pressed)
    def chosen(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_cancel(self) -> None:
        self.dismiss("cancel")
