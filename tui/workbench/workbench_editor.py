"""The Edit panel: files, outline, the highlighted editor, problems and the name panel.

Highlighting: Textual's TextArea highlights with tree-sitter, and there is no
tree-sitter grammar for the language, so :class:`ProtocolEditor` fills the
TextArea's highlight map itself from ``workbench_lang.highlight_bytes`` (the
grammar's own words) and adds the latest diagnostics as underlined ranges.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Label, ListItem, ListView, OptionList, Static, TextArea, Tree
from textual.widgets._text_area import TextAreaTheme
from textual.worker import get_current_worker

from .workbench_lang import (CheckResult, LanguageService, NameInfo, OutlineEntry, completions, describe,
                             highlight_bytes, outline, prefix_at, word_at)

CHECK_DELAY = 0.15  # seconds of quiet typing before the text is checked again

_STYLES = {
    "keyword": Style(color="#569cd6", bold=True),
    "string": Style(color="#ce9178"),
    "comment": Style(color="#6a9955", italic=True),
    "number": Style(color="#b5cea8"),
    "date": Style(color="#b5cea8"),
    "unit": Style(color="#4ec9b0"),
    "operator": Style(color="#d4d4d4"),
    "name.definition": Style(color="#dcdcaa", bold=True),
    "name.imported": Style(color="#9cdcfe"),
    "diagnostic.error": Style(underline=True, bgcolor="#5a1d1d"),
    "diagnostic.warning": Style(underline=True, bgcolor="#4d4519"),
}


class ProtocolEditor(TextArea):
    """A TextArea that highlights the protocol language and marks diagnostics in place."""

    def __init__(self, text: str = "", **kwargs):
        self.diagnostic_ranges: dict[int, list[tuple[int, int | None, str]]] = {}
        super().__init__(text, show_line_numbers=True, tab_behavior="indent", soft_wrap=False, **kwargs)
        base = TextAreaTheme.get_builtin_theme("vscode_dark")
        self.register_theme(dataclasses.replace(base, name="pathways",
                                                syntax_styles={**base.syntax_styles, **_STYLES}))
        self.theme = "pathways"
        self.indent_width = 2

    def _build_highlight_map(self) -> None:
        self._line_cache.clear()
        highlights = self._highlights
        highlights.clear()
        document = getattr(self, "document", None)
        if document is None:
            return
        for row in range(document.line_count):
            line = document.get_line(row)
            if line:
                highlights[row].extend(highlight_bytes(line))
        for row, marks in getattr(self, "diagnostic_ranges", {}).items():
            highlights[row].extend(marks)

    def mark(self, result: CheckResult) -> None:
        """Underline each diagnostic's span (to the end of its first line when it runs on)."""
        marks: dict[int, list] = {}
        lines = result.text.split("\n")
        for d in result.diagnostics:
            if d.severity not in ("error", "warning") or not 1 <= d.span.line <= len(lines):
                continue
            row, line = d.span.line - 1, lines[d.span.line - 1]
            start = max(d.span.column - 1, 0)
            end = d.span.end_column - 1 if d.span.end_line == d.span.line and d.span.end_column > d.span.column \
                else len(line)
            end = max(end, start + 1)
            to_byte = lambda c: len(line[:c].encode("utf-8"))  # noqa: E731
            marks.setdefault(row, []).append((to_byte(start), to_byte(end), f"diagnostic.{d.severity}"))
        self.diagnostic_ranges = marks
        self._build_highlight_map()
        self.refresh()


class CompletionScreen(ModalScreen[str | None]):
    """A small list of names that complete the word at the cursor."""

    BINDINGS = [("escape", "dismiss_none", "Cancel")]

    def __init__(self, names: list[str]):
        super().__init__()
        self.names = names

    def compose(self) -> ComposeResult:
        with Vertical(id="completion-box"):
            yield Label("Complete the name (Enter to choose, Esc to cancel)")
            yield OptionList(*[Text(n) for n in self.names[:200]], id="completion-list")

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.names[event.option_index])

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class EditPane(Horizontal):
    """Files and outline on the left, the editor with its problems in the middle, the name panel on the right."""

    class Checked(Message):
        def __init__(self, result: CheckResult):
            super().__init__()
            self.result = result

    def __init__(self, files: list[Path], root: Path, **kwargs):
        super().__init__(**kwargs)
        self.files = files
        self.root = root
        self.path: Path | None = None
        self.saved_text = ""
        self.service: LanguageService | None = None
        self.last: CheckResult | None = None
        self._timer = None

    def compose(self) -> ComposeResult:
        with Vertical(id="sidebar"):
            yield Label("Files", classes="heading")
            yield ListView(*[ListItem(Label(Text(self._shown(f)))) for f in self.files], id="files")
            yield Label("Outline", classes="heading")
            yield Tree("(no file)", id="outline")
        with Vertical(id="center"):
            yield ProtocolEditor(id="editor")
            yield Static("", id="status")
            yield ListView(id="problems")
        yield Static("Move the cursor onto a name to see its definition and type.", id="info")

    def _shown(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return path.name

    # --- files -------------------------------------------------------------
    @property
    def editor(self) -> ProtocolEditor:
        return self.query_one("#editor", ProtocolEditor)

    @property
    def dirty(self) -> bool:
        return self.path is not None and self.editor.text != self.saved_text

    def open(self, path: Path) -> None:
        """Show a file in the editor and check it at once."""
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            self.app.notify(f"Could not open {path.name}: {exc}", severity="error")
            return
        self.path = path
        self.saved_text = text
        self.service = LanguageService(path, self._shown(path))
        self.editor.load_text(text)
        self.recheck()
        if path in self.files:
            self.query_one("#files", ListView).index = self.files.index(path)

    def write(self) -> str:
        """Save (formatting when the file parses); returns what to tell the reader."""
        from .workbench_lang import save

        if self.path is None:
            return "There is no file open."
        try:
            saved = save(self.path, self.editor.text)
        except OSError as exc:
            return f"Could not save {self.path.name}: {exc.strerror or exc}. Your text is still in the editor."
        if saved.text != self.editor.text:
            where = self.editor.cursor_location
            self.editor.load_text(saved.text)
            row = min(where[0], self.editor.document.line_count - 1)
            self.editor.cursor_location = (row, where[1])
        self.saved_text = saved.text
        if self.service is not None:
            self.service.forget_imports()
        self.recheck()
        return saved.message

    @on(ListView.Selected, "#files")
    def file_chosen(self, event: ListView.Selected) -> None:
        path = self.files[event.list_view.index or 0]
        if path == self.path:
            return
        if self.dirty:
            self.app.ask_to_leave(then=lambda: self.open(path))
        else:
            self.open(path)

    # --- checking ------------------------------------------------------------
    @on(TextArea.Changed, "#editor")
    def text_changed(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(CHECK_DELAY, self.recheck)

    def recheck(self) -> None:
        """Check the editor's text in a worker thread, so typing never waits for a check."""
        if self.service is None:
            return
        self._check(self.service, self.editor.text)

    @work(thread=True, exclusive=True, group="check")
    def _check(self, service: LanguageService, text: str) -> None:
        result = service.check(text)
        if not get_current_worker().is_cancelled:
            try:
                self.app.call_from_thread(self._checked, service, result)
            except RuntimeError:  # the application closed while the text was being checked
                pass

    def _checked(self, service: LanguageService, result: CheckResult) -> None:
        """Show a check's result, unless the text or the file changed meanwhile: the newer text
        is checked next, and showing the older one's problems would make them flicker."""
        if service is not self.service or result.text != self.editor.text:
            return
        self.last = result
        self.editor.mark(result)
        self._show_problems(result)
        self._show_outline(result)
        self._show_info()
        self.post_message(self.Checked(result))

    def _show_problems(self, result: CheckResult) -> None:
        problems = self.query_one("#problems", ListView)
        problems.clear()
        for d in result.diagnostics:
            text = f"{d.span.line}:{d.span.column} {d.severity} {d.code}: {d.message}"
            if d.help:
                text += f" \u2014 {d.help}"
            problems.append(ListItem(Label(Text(text), classes=d.severity)))
        state = "unsaved" if self.dirty else "saved"
        counts = (f"{result.errors} error{'s' * (result.errors != 1)}, "
                  f"{result.warnings} warning{'s' * (result.warnings != 1)}")
        self.query_one("#status", Static).update(
            f"{self._shown(self.path) if self.path else ''} ({state}) \u2014 {counts}" if result.diagnostics
            else f"{self._shown(self.path) if self.path else ''} ({state}) \u2014 no problems")

    def _show_outline(self, result: CheckResult) -> None:
        tree = self.query_one("#outline", Tree)
        tree.clear()
        tree.root.set_label(Text(self.path.name if self.path else "(no file)"))
        tree.root.data = (1, 1)

        def add(node, entries: list[OutlineEntry]) -> None:
            for entry in entries:
                if entry.children:
                    branch = node.add(Text(entry.label), data=(entry.line, entry.column), expand=False)
                    add(branch, entry.children)
                else:
                    node.add_leaf(Text(entry.label), data=(entry.line, entry.column))
        add(tree.root, outline(result.unit))
        tree.root.expand()

    @on(ListView.Selected, "#problems")
    def problem_chosen(self, event: ListView.Selected) -> None:
        if self.last is None or event.list_view.index is None:
            return
        d = self.last.diagnostics[event.list_view.index]
        self.jump(d.span.line, d.span.column)

    @on(Tree.NodeSelected, "#outline")
    def outline_chosen(self, event: Tree.NodeSelected) -> None:
        if event.node.data:
            self.jump(*event.node.data)

    def jump(self, line: int, column: int) -> None:
        """Put the cursor on a 1-based line and column and give the editor the focus."""
        row = max(min(line - 1, self.editor.document.line_count - 1), 0)
        self.editor.cursor_location = (row, max(column - 1, 0))
        self.editor.scroll_cursor_visible(center=True)
        self.editor.focus()

    def next_problem(self) -> None:
        if not self.last or not self.last.diagnostics:
            self.app.notify("No problems in this file.")
            return
        row = self.editor.cursor_location[0] + 1
        later = [d for d in self.last.diagnostics if d.span.line > row] or self.last.diagnostics
        self.jump(later[0].span.line, later[0].span.column)
        self.app.notify(f"line {later[0].span.line}: {later[0].message}", timeout=4)

    # --- names -----------------------------------------------------------------
    @on(TextArea.SelectionChanged, "#editor")
    def cursor_moved(self) -> None:
        self._show_info()

    def name_info(self) -> NameInfo | None:
        if self.last is None:
            return None
        row, column = self.editor.cursor_location
        word, _, _ = word_at(self.editor.document.get_line(row), column)
        return describe(self.last.unit, word)

    def _show_info(self) -> None:
        info = self.name_info()
        panel = self.query_one("#info", Static)
        if info is None:
            panel.update("Move the cursor onto a name to see its definition and type.")
        else:
            panel.update(f"[b]{info.title}[/b]\n" + "\n".join(_escape(line) for line in info.lines))

    def complete(self) -> None:
        """Offer the names that complete the word before the cursor."""
        row, column = self.editor.cursor_location
        line = self.editor.document.get_line(row)
        prefix, start = prefix_at(line, column)
        names = completions(self.last.unit if self.last else None, prefix)
        if not names:
            self.app.notify(f"No name starts with “{prefix}”." if prefix else "Type the start of a name first.")
            return

        def insert(name: str | None) -> None:
            if name:
                self.editor.replace(name, (row, start), (row, start + len(prefix)))
            self.editor.focus()
        if len(names) == 1:
            insert(names[0])
        else:
            self.app.push_screen(CompletionScreen(names), insert)


def _escape(text: str) -> str:
    from rich.markup import escape
    return escape(text)
