"""The workbench (`pathways tui`), driven through Textual's Pilot.

The protocols are written here into a temporary folder, so the tests neither
change the library nor depend on its current wording; one test opens the
real library read-only.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("textual")

from click.testing import CliRunner  # noqa: E402
from textual.widgets import Input, ListView, Select, Static, Tree  # noqa: E402

from tui.workbench.workbench_app import WorkbenchApp  # noqa: E402
from tui.workbench.workbench_editor import CompletionScreen  # noqa: E402
from tui.workbench.workbench_screens import HelpScreen, LeaveScreen  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2024-04-01"

BASE = """\
protocol base:
  version "1.0.0"
  title "Shared definitions for the workbench tests"

parameter minimum_age "Minimum age" = 65 years

criterion older "Aged 65 or over": age at least minimum_age
"""

FRAILTY = """\
protocol frailty:
  version "1.0.0"
  title "Frailty case finding (workbench fixture)"

uses "base.pw" as base

outcomes level

parameter minimum_criteria "How many criteria must be met" = 2
parameter lookback "Look-back window" = 12 months

define ltc_count "Number of active long term conditions": count conditions where status is active

criterion case_finding "Case finding criteria":
  at least minimum_criteria of:
    "three or more active long term conditions": ltc_count at least 3
    "an emergency admission in the look-back": count emergency_admissions in the last lookback at least 1
    "four or more regular medicines": count medications where status is active at least 4
    base.older

levels level "Level":
  level 3 "Case management": case_finding
  level 1 "Supported self care": ltc_count at least 1
  otherwise level 0 "No long term condition"

pathway review "Review pathway":
  entry when level is 3
  step identified "Identified":
    due "Contact the patient" within 14 days
    on approached go to assessed
    on declined go to exit declined
  step assessed "Assessed":
    due "Review the plan" every 3 months
    on reviewed go to assessed
  exit declined "Declined"
  exit died "Died": on died

care plan review_plan "Care plan" for review:
  objectives "Objectives":
    "Stay well at home"

test "a 70-year-old with no conditions is on level 0":
  as of 2024-01-01
  patient:
    born 1954-01-01
  expect level is 0
"""


def make_folder(tmp: Path) -> Path:
    """A folder with the fixture protocols; returns the main file."""
    (tmp / "base.pw").write_text(BASE, encoding="utf-8")
    (tmp / "frailty.pw").write_text(FRAILTY, encoding="utf-8")
    return tmp / "frailty.pw"


def make_app(path: Path, **kwargs) -> WorkbenchApp:
    return WorkbenchApp(path, AS_OF, blink=False, **kwargs)


async def settle(pilot) -> None:
    """Let timers, workers and the messages they post run out."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def until(pilot, condition, seconds: float = 10.0) -> bool:
    """Let the app run until ``condition()`` holds (True) or ``seconds`` pass (False): waiting
    for a check in a worker, not timing it (a busy machine runs it late)."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return True
        await pilot.pause(0.05)
    return condition()


def run(coro):
    return asyncio.run(coro)


def problem_texts(app) -> list[str]:
    return [str(item.query_one("Label").content) for item in app.query_one("#problems", ListView).children]


# --- files, outline, editor ---------------------------------------------------


def test_opens_a_library_file_with_its_outline_and_no_problems():
    async def go():
        app = make_app(ROOT / "library" / "castlefields.pw")
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            assert app.edit.path.name == "castlefields.pw"
            assert "ltc_pyramid.pw" in [p.name for p in app.edit.files]
            assert app.edit.last.errors == 0
            outline = app.query_one("#outline", Tree)
            groups = [str(n.label) for n in outline.root.children]
            assert any(g.startswith("Criteria and definitions") for g in groups)
            assert any(g.startswith("Parameters") for g in groups)
            assert not app.edit.dirty
    run(go())


def test_outline_jumps_to_criterion_items_levels_and_steps(tmp_path):
    async def go():
        app = make_app(make_folder(tmp_path))
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            tree = app.query_one("#outline", Tree)
            labels = {}
            stack = list(tree.root.children)
            while stack:
                node = stack.pop()
                labels[str(node.label)] = node
                stack.extend(node.children)
            assert "level 3 \u2014 Case management" in labels
            assert "step assessed \u2014 Assessed" in labels
            assert "objectives \u2014 Objectives" in labels
            item = labels["four or more regular medicines"]
            tree.select_node(item)
            await pilot.pause()
            row = FRAILTY.split("\n").index('    "four or more regular medicines": count medications where '
                                            'status is active at least 4')
            assert app.edit.editor.cursor_location[0] == row
            assert app.focused is app.edit.editor
    run(go())


def test_typing_an_error_shows_it_in_the_problems_list_and_fixing_it_clears_it(tmp_path):
    async def go():
        app = make_app(make_folder(tmp_path))
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            assert problem_texts(app) == []
            editor = app.edit.editor
            row = FRAILTY.split("\n").index("  level 1 \"Supported self care\": ltc_count at least 1")
            editor.cursor_location = (row, len('  level 1 "Supported self care": ltc_count'))
            await pilot.press("x", "y")  # ltc_countxy: a name that does not exist
            await pilot.pause(0.4)  # past the debounce
            assert await until(pilot, lambda: app.edit.last.text == editor.text)
            texts = problem_texts(app)
            assert any("unknown name `ltc_countxy`" in t and t.startswith(f"{row + 1}:") for t in texts), texts
            assert any("did you mean `ltc_count`" in t for t in texts)
            assert row in app.edit.editor.diagnostic_ranges  # underlined in the text
            assert app.edit.dirty
            # choosing the problem puts the cursor on it
            editor.cursor_location = (0, 0)
            problems = app.query_one("#problems", ListView)
            problems.index = 0
            problems.action_select_cursor()
            await pilot.pause()
            assert editor.cursor_location == (row, len('  level 1 "Supported self care": '))
            editor.cursor_location = (row, len('  level 1 "Supported self care": ltc_countxy'))
            await pilot.press("backspace", "backspace")
            await pilot.pause(0.4)
            assert await until(pilot, lambda: app.edit.last.text == editor.text)
            assert problem_texts(app) == []
            assert app.edit.editor.diagnostic_ranges == {}
            assert not app.edit.dirty  # back to the saved text
    run(go())


def test_side_panel_shows_definition_and_type_of_the_name_under_the_cursor(tmp_path):
    async def go():
        app = make_app(make_folder(tmp_path))
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            row = FRAILTY.split("\n").index("  level 1 \"Supported self care\": ltc_count at least 1")
            app.edit.editor.cursor_location = (row, len('  level 1 "Supported self care": ltc_'))
            await pilot.pause()
            info = str(app.query_one("#info", Static).content)
            assert "ltc_count" in info and "type: number" in info and "count conditions where" in info
            row = FRAILTY.split("\n").index("    base.older")
            app.edit.editor.cursor_location = (row, 10)
            await pilot.pause()
            info = str(app.query_one("#info", Static).content)
            assert "base.older" in info and "criterion: Aged 65 or over" in info and "true/false" in info
    run(go())


def test_completion_of_names(tmp_path):
    async def go():
        app = make_app(make_folder(tmp_path))
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            editor = app.edit.editor
            last = editor.document.line_count - 1
            editor.cursor_location = (last, 0)
            await pilot.press(*"define z: ltc_c")
            await pilot.press("ctrl+n")  # one name fits: inserted at once
            await pilot.pause()
            assert editor.document.get_line(last) == "define z: ltc_count"
            await pilot.press(*" and base.")
            await pilot.press("ctrl+n")  # several fit: a list to choose from
            await pilot.pause()
            assert isinstance(app.screen, CompletionScreen)
            assert "base.older" in app.screen.names and "base.minimum_age" in app.screen.names
            app.screen.dismiss("base.older")
            await pilot.pause()
            assert editor.document.get_line(last) == "define z: ltc_count and base.older"
    run(go())


def test_save_formats_and_a_syntax_error_is_saved_as_typed(tmp_path):
    async def go():
        path = make_folder(tmp_path)
        app = make_app(path)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            editor = app.edit.editor
            editor.cursor_location = (editor.document.line_count - 1, 0)
            editor.insert("define   extra :   ltc_count>=2\n")
            await pilot.press("ctrl+s")
            await pilot.pause()
            on_disk = path.read_text(encoding="utf-8")
            assert "define extra: ltc_count at least 2\n" in on_disk
            assert editor.text == on_disk and not app.edit.dirty
            editor.insert("define broken: (\n")
            broken = editor.text
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert path.read_text(encoding="utf-8") == broken  # nothing typed is lost
            messages = [n.message for n in app._notifications]
            assert any("could not be formatted" in m and "line" in m for m in messages), messages
    run(go())


# --- tests panel ------------------------------------------------------------------


FAILING_TEST = """
test "seventy with an emergency admission is on level 3":
  as of 2024-01-01
  patient:
    born 1954-01-01
    admission emergency on 2023-10-01 for 2 days
  expect level is 1
"""


def test_tests_panel_runs_all_or_one_and_shows_failures_and_coverage(tmp_path):
    from tui.workbench.workbench_tests import runner

    if runner() is None:
        pytest.skip("the test runner (engine/protocol_tests.py) is not in this build")

    async def go():
        path = make_folder(tmp_path)
        path.write_text(FRAILTY + FAILING_TEST, encoding="utf-8")
        app = make_app(path)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await pilot.press("f3")
            await pilot.pause()
            app.query_one("#run-all").press()
            await settle(pilot)
            tests = app.query_one("#tests-pane")
            assert [c.name for c in tests.cases] == ["a 70-year-old with no conditions is on level 0",
                                                     "seventy with an emergency admission is on level 3"]
            summary = str(app.query_one("#tests-summary", Static).content)
            assert summary.startswith("1 passed, 1 failed, 0 in error; coverage ")
            listed = [str(item.query_one("Label").content) for item in app.query_one("#test-list").children]
            assert listed == ["\u2713 a 70-year-old with no conditions is on level 0",
                              "\u2717 seventy with an emergency admission is on level 3"]
            detail = str(app.query_one("#test-detail", Static).content)
            assert "expected 1" in detail and "actual   3" in detail and "Why:" in detail
            coverage = app.query_one("#coverage")
            rows = [coverage.get_row_at(i) for i in range(coverage.row_count)]
            older = next(r for r in rows if "Aged 65 or over" in str(r[2]))
            assert older[3] == "2" and older[4] == "-"  # both patients are over 65: seen true twice
            # run only the first test
            listing = app.query_one("#test-list", ListView)
            listing.index = 0
            app.query_one("#run-one").press()
            await settle(pilot)
            assert str(app.query_one("#tests-summary", Static).content).startswith("1 passed, 0 failed")
    run(go())


# --- explain and population ------------------------------------------------------


def test_explain_a_generated_patient(tmp_path):
    async def go():
        app = make_app(make_folder(tmp_path), patients=30)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            assert len(app.dataset.records) == 30
            await pilot.press("f4")
            await pilot.pause()
            app.query_one("#patient-search", Input).value = "000007"
            await pilot.pause()
            patients = app.query_one("#patients", ListView)
            assert len(patients.children) == 1
            patients.index = 0
            patients.action_select_cursor()
            await settle(pilot)
            shown = str(app.query_one("#outcomes", Static).content)
            assert "syn-1-000007" in shown and "Level:" in shown
            tree = app.query_one("#explain-tree", Tree)
            top = tree.root.children[0]
            assert str(top.label).split(" ", 1)[1].startswith("Level (level): level")
            levels = [str(n.label) for n in top.children]
            assert any("level 3 \u201cCase management\u201d" in t for t in levels)
            assert app.query_one("#explain-pane").explained["patient_id"] == "syn-1-000007"
    run(go())


def test_changing_a_parameter_moves_patients_between_levels(tmp_path):
    async def go():
        app = make_app(make_folder(tmp_path), patients=150)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await pilot.press("f5")
            await pilot.pause()
            pane = app.query_one("#population-pane")
            app.query_one("#param", Select).value = "minimum_criteria"
            app.query_one("#param-value", Input).value = "1"
            pane.run()
            await settle(pilot)
            loose = pane.moves.count
            assert loose > 0
            assert all(before != "3" and after == "3" for _, before, after in pane.moves.moved)
            summary = str(app.query_one("#population-summary", Static).content)
            assert f"{loose} patient" in summary and "case managers needed" in summary
            app.query_one("#param-value", Input).value = "2"  # the value as written: nobody moves
            pane.run()
            await settle(pilot)
            assert pane.moves.count == 0
            app.query_one("#param-value", Input).value = "2 months"  # wrong kind of value: said, not run
            pane.run()
            await settle(pilot)
            assert any("is a number" in n.message for n in app._notifications)
    run(go())


def test_pathway_view_draws_steps_and_transitions(tmp_path):
    async def go():
        app = make_app(make_folder(tmp_path))
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await pilot.press("f6")
            await pilot.pause()
            text = str(app.query_one("#pathway-diagram", Static).content)
            assert "identified  Identified" in text
            assert "on approached \u2192 assessed" in text
            assert "on reviewed \u2192 assessed  (stays)" in text
            assert "on died \u2192 exit died" in text
    run(go())


# --- keys, help, quitting ------------------------------------------------------------


def test_help_screen_and_palette_commands(tmp_path):
    async def go():
        app = make_app(make_folder(tmp_path))
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("f1")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            await pilot.pause()
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert {"Save", "Next problem", "Run all tests", "Run the population", "Help"} <= set(titles)
    run(go())


def test_quit_with_unsaved_changes_asks_first(tmp_path):
    async def go():
        path = make_folder(tmp_path)
        app = make_app(path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("x")
            await pilot.press("ctrl+q")
            await pilot.pause()
            assert isinstance(app.screen, LeaveScreen)
            await pilot.press("escape")  # cancel: still editing, nothing lost
            await pilot.pause()
            assert app.is_running and app.edit.dirty
            await pilot.press("ctrl+q")
            await pilot.pause()
            await pilot.click("#discard")
            await pilot.pause()
        assert app.return_code == 0
        assert path.read_text(encoding="utf-8") == FRAILTY  # discarded knowingly, the file untouched
    run(go())


def test_quit_without_changes_does_not_ask(tmp_path):
    async def go():
        app = make_app(make_folder(tmp_path))
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("ctrl+q")
            await pilot.pause()
            assert not isinstance(app.screen, LeaveScreen)
        assert app.return_code == 0
    run(go())


# --- the command ------------------------------------------------------------------


def test_command_refuses_a_file_that_is_not_a_protocol(tmp_path):
    from tui.cmd_tui import tui

    other = tmp_path / "notes.txt"
    other.write_text("hello", encoding="utf-8")
    result = CliRunner().invoke(tui, [str(other)])
    assert result.exit_code == 2
    assert "is not a protocol file" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(tui, [str(tmp_path), "--as-of", "2024-13-01"])
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.output
