"""The Pathway panel: the chosen pathway's steps and transitions, drawn as text."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Select, Static

from .workbench_diagram import draw


class PathwayPane(Vertical):
    """A list of the file's pathways and the drawing of the one chosen."""

    def compose(self) -> ComposeResult:
        yield Select([], prompt="pathway", id="pathway-choice", compact=True)
        with VerticalScroll(id="pathway-scroll"):
            yield Static("This file has no pathway (or has errors to fix first).", id="pathway-diagram")

    def offer(self, protocol) -> None:
        """List the pathways of the compiled protocol; keep the choice when it still exists."""
        self.pathways = {d.name: d for d in protocol.of_kind("pathway")} if protocol is not None else {}
        select = self.query_one("#pathway-choice", Select)
        current = select.value
        select.set_options([(d.label or name, name) for name, d in self.pathways.items()])
        if current in self.pathways:
            select.value = current
        elif self.pathways:
            select.value = next(iter(self.pathways))
        self.draw()

    @on(Select.Changed, "#pathway-choice")
    def draw(self) -> None:
        select = self.query_one("#pathway-choice", Select)
        chosen = getattr(self, "pathways", {}).get(select.value) if select.value is not Select.BLANK else None
        diagram = self.query_one("#pathway-diagram", Static)
        if chosen is None:
            diagram.update("This file has no pathway (or has errors to fix first).")
        else:
            diagram.update(Text(draw(chosen, ascii=not self.app.unicode)))
