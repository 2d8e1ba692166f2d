"""The editor checks its text in a worker thread: typing goes on while a check runs, and a
check of a text that has changed since is never shown."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("textual")

from test_workbench import FRAILTY, make_app, make_folder, problem_texts, run, settle, until  # noqa: E402

ROW = FRAILTY.split("\n").index("  level 1 \"Supported self care\": ltc_count at least 1")
AT = len('  level 1 "Supported self care": ltc_count')


def test_typing_goes_on_while_a_check_runs_and_only_the_latest_text_is_shown(tmp_path):
    async def go():
        app = make_app(make_folder(tmp_path))
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            service = app.edit.service
            real_check, release, started = service.check, threading.Event(), threading.Event()
            checked: list[str] = []

            def held_check(text):  # the first check waits until the test lets it go
                if not checked:
                    checked.append(text)
                    started.set()
                    assert release.wait(10)
                return real_check(text)
            service.check = held_check
            editor = app.edit.editor
            editor.cursor_location = (ROW, AT)
            await pilot.press("x")
            # past the debounce: the check of "...ltc_countx" is running (waited for, not timed:
            # a busy machine starts the worker late)
            assert await until(pilot, started.is_set)
            before = app.edit.last
            await pilot.press("y")  # the editor takes keys while that check waits
            assert editor.document.get_line(ROW).startswith('  level 1 "Supported self care": ltc_countxy')
            assert app.edit.last is before
            await pilot.pause(0.3)
            release.set()
            await settle(pilot)
            # the latest text's problems, not the held check's
            assert await until(pilot, lambda: app.edit.last.text == editor.text)
            texts = problem_texts(app)
            assert any("unknown name `ltc_countxy`" in t for t in texts), texts
            assert not any("`ltc_countx`" in t for t in texts), texts
    run(go())


def test_a_result_for_an_older_text_is_not_shown(tmp_path):
    async def go():
        app = make_app(make_folder(tmp_path))
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            shown = app.edit.last
            stale = app.edit.service.check(FRAILTY.replace("ltc_count at least 1", "ltc_countz at least 1"))
            assert stale.errors == 1
            app.edit._checked(app.edit.service, stale)  # arrives for a text no longer in the editor
            assert app.edit.last is shown and problem_texts(app) == []
            fresh = app.edit.service.check(app.edit.editor.text)
            app.edit._checked(app.edit.service, fresh)
            assert app.edit.last is fresh
    run(go())


def test_imports_are_kept_between_checks_until_a_save_asks_for_them_again(tmp_path):
    from tui.workbench.workbench_lang import LanguageService

    path = make_folder(tmp_path)
    service = LanguageService(path)
    text = path.read_text(encoding="utf-8")
    assert service.check(text).errors == 0
    base = tmp_path / "base.pw"
    base.write_text(base.read_text(encoding="utf-8").replace("criterion older", "criterion elderly"),
                    encoding="utf-8")
    assert service.check(text).errors == 0  # the compiled import is kept while this file is edited
    service.forget_imports()  # what saving does
    again = service.check(text)
    assert any("older" in d.message for d in again.diagnostics if d.severity == "error"), again.diagnostics
