"""The command-line contract: exit codes, JSON diagnostics, export, graph."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pathways.model import Protocol

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "library"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_check_library_is_clean():
    out = run("check", "library/")
    assert out.returncode == 0, out.stdout
    assert "0 errors, 0 warnings" in out.stdout


def test_check_reports_errors_with_exit_1_and_json_fields(tmp_path):
    bad = tmp_path / "bad.pw"
    bad.write_text('protocol bad:\n  version "1"\n\ndefine old: agee at least 65 years\n')
    out = run("check", "--format", "json", str(bad))
    assert out.returncode == 1
    items = json.loads(out.stdout)
    assert len(items) == 1
    d = items[0]
    assert {"file", "line", "column", "end_line", "end_column", "severity", "code", "message"} <= d.keys()
    assert (d["line"], d["column"], d["end_column"], d["code"]) == (4, 13, 17, "PW201")
    assert d["help"] == "did you mean `age`?"


def test_warnings_alone_exit_0(tmp_path):
    f = tmp_path / "w.pw"
    f.write_text('protocol w:\n  version "1"\n\noutcomes a\n\ndefine a: age at least 65 years\n\ndefine unused: 1\n')
    out = run("check", str(f))
    assert out.returncode == 0
    assert "warning[PW401]" in out.stdout


def test_text_output_renders_source_and_carets(tmp_path):
    f = tmp_path / "t.pw"
    f.write_text('protocol t:\n  version "1"\n\ndefine x: count conditions where statu is active\n')
    out = run("check", str(f))
    assert out.returncode == 1
    assert f"{f}:4:34" in out.stdout
    assert "4 | define x: count conditions where statu is active" in out.stdout
    assert "^^^^^" in out.stdout and "did you mean `status`?" in out.stdout


@pytest.mark.parametrize("args", [[], ["check"], ["check", "no/such/file.pw"], ["nonsense"],
                                  ["check", "--format", "xml", "library/"], ["graph", "library/ltc_pyramid.pw",
                                                                             "--pathway", "nope"]])
def test_usage_errors_exit_2_without_traceback(args):
    out = run(*args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr


def test_check_folder_without_protocols_is_a_usage_error(tmp_path):
    out = run("check", str(tmp_path))
    assert out.returncode == 2 and "no .pw files" in out.stderr


def test_export_round_trips():
    out = run("export", "library/ltc_pyramid.pw")
    assert out.returncode == 0, out.stderr
    protocol = Protocol.model_validate_json(out.stdout)
    assert protocol.header.name == "ltc_pyramid"
    assert [u.alias for u in protocol.uses] == ["conditions", "castlefields", "evercare"]
    assert protocol.uses[1].protocol.get("eligible").criterion is True
    again = json.loads(protocol.model_dump_json())
    assert again == json.loads(out.stdout)


def test_export_refuses_a_protocol_with_errors(tmp_path):
    f = tmp_path / "e.pw"
    f.write_text('protocol e:\n  version "1"\n\ndefine x: nothing\n')
    out = run("export", str(f))
    assert out.returncode == 1 and "nothing exported" in out.stderr
    assert out.stdout.startswith("error[PW201]")


def test_graph_of_the_case_management_pathway():
    out = run("graph", "library/case_management.pw", "--pathway", "case_management")
    assert out.returncode == 0
    assert out.stdout.startswith("flowchart TD")
    assert '"on consented"' in out.stdout and "Comprehensive assessment" in out.stdout
    dot = run("graph", "library/case_management.pw", "--format", "dot")
    assert dot.stdout.startswith('digraph "case_management"') and "->" in dot.stdout


def test_graph_of_dependencies_and_care_plan():
    deps = run("graph", "library/castlefields.pw", "--dependencies")
    assert deps.returncode == 0 and "Active long term conditions" in deps.stdout
    plan = run("graph", "library/case_management_plan.pw", "--care-plan", "case_management_plan")
    assert plan.returncode == 0 and "Contingency and emergency arrangements" in plan.stdout
