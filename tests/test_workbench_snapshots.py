"""SVG snapshots of each workbench screen at 80x24 and 160x48 (pytest-textual-snapshot).

Deterministic: the protocols are written by the tests, patients come from the
generator with a fixed seed, the as-of date is fixed, cursors do not blink,
and notifications are cleared before the picture is taken. Regenerate with
``pytest tests/test_workbench_snapshots.py --snapshot-update`` after a
deliberate change to the screens, and look at the pictures before keeping them.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_textual_snapshot")

from textual.widgets import Input, ListView, Select  # noqa: E402

from test_workbench import FRAILTY, make_app, make_folder, settle, until  # noqa: E402
from tui.workbench.workbench_tests import runner  # noqa: E402

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]


def _before(*steps):
    async def run_before(pilot) -> None:
        await settle(pilot)
        for step in steps:
            await step(pilot)
            await settle(pilot)
        # lists are refilled by mounting; give the last repaint time even on a busy machine
        await pilot.pause(0.3)
        await settle(pilot)
        pilot.app.clear_notifications()
        await pilot.pause()
    return run_before


async def _type_an_error(pilot) -> None:
    row = FRAILTY.split("\n").index("  level 1 \"Supported self care\": ltc_count at least 1")
    editor = pilot.app.edit.editor
    editor.cursor_location = (row, len('  level 1 "Supported self care": ltc_count'))
    await pilot.press("x")
    await pilot.pause(0.4)
    assert await until(pilot, lambda: pilot.app.edit.last.text == editor.text)


async def _tab(pilot, key: str) -> None:
    await pilot.press(key)


async def _explain(pilot) -> None:
    await pilot.press("f4")
    await pilot.pause()
    patients = pilot.app.query_one("#patients", ListView)
    patients.index = 3
    patients.action_select_cursor()


async def _what_if(pilot) -> None:
    await pilot.press("f5")
    await pilot.pause()
    pilot.app.query_one("#param", Select).value = "minimum_criteria"
    pilot.app.query_one("#param-value", Input).value = "1"
    pilot.app.query_one("#population-pane").run()


@pytest.mark.parametrize("size", SIZES)
def test_edit_screen_with_a_problem(snap_compare, tmp_path, size):
    assert snap_compare(make_app(make_folder(tmp_path)), terminal_size=size, run_before=_before(_type_an_error))


@pytest.mark.parametrize("size", SIZES)
def test_tests_screen(snap_compare, tmp_path, size):
    if runner() is None:
        pytest.skip("the test runner (engine/protocol_tests.py) is not in this build")

    async def run_all(pilot):
        await pilot.press("f3")
        await pilot.pause()
        pilot.app.query_one("#run-all").press()
        await settle(pilot)
        for _ in range(50):  # until the run's result is shown
            if "passed" in str(pilot.app.query_one("#tests-summary").content):
                break
            await pilot.pause(0.1)
    assert snap_compare(make_app(make_folder(tmp_path)), terminal_size=size, run_before=_before(run_all))


@pytest.mark.parametrize("size", SIZES)
def test_explain_screen(snap_compare, tmp_path, size):
    app = make_app(make_folder(tmp_path), patients=20)
    assert snap_compare(app, terminal_size=size, run_before=_before(_explain))


@pytest.mark.parametrize("size", SIZES)
def test_population_screen_with_a_what_if(snap_compare, tmp_path, size):
    app = make_app(make_folder(tmp_path), patients=60)
    assert snap_compare(app, terminal_size=size, run_before=_before(_what_if))


@pytest.mark.parametrize("size", SIZES)
def test_pathway_screen(snap_compare, tmp_path, size):
    async def show(pilot):
        await pilot.press("f6")
    assert snap_compare(make_app(make_folder(tmp_path)), terminal_size=size, run_before=_before(show))


@pytest.mark.parametrize("size", SIZES)
def test_help_screen(snap_compare, tmp_path, size):
    async def show(pilot):
        await pilot.press("f1")
    assert snap_compare(make_app(make_folder(tmp_path)), terminal_size=size, run_before=_before(show))
