"""The audit log: hash-chained entries, and verification that names the line of
any edit, deletion, insertion or reordering."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from engine.audit import GENESIS, AuditLog, entry_hash, verify
from tui.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def _entry(i: int) -> dict:
    return {"who": "gp", "via": "test", "protocol": {"name": "p", "version": "1", "sha256": "ab" * 32},
            "as_of": "2024-04-01", "parameters": {}, "input": f"sha256:{i:064x}", "outcomes": {"level": i % 4}}


@pytest.fixture
def log(tmp_path) -> Path:
    path = tmp_path / "audit.jsonl"
    AuditLog(path).append([_entry(i) for i in range(5)], when="2026-01-01T00:00:00.000+00:00")
    return path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_entries_are_chained_and_canonical(log):
    entries = [orjson.loads(line) for line in _lines(log)]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0]["prev"] == GENESIS
    for before, after in zip(entries, entries[1:]):
        assert after["prev"] == before["hash"] == entry_hash(before)
    assert _lines(log)[0] == orjson.dumps(entries[0], option=orjson.OPT_SORT_KEYS)
    result = verify(log)
    assert result.ok and result.entries == 5 and result.head == entries[-1]["hash"]


def test_appends_continue_the_chain_across_writers(log):
    AuditLog(log).append([_entry(10)])
    AuditLog(log).append([_entry(11)])  # a second process would do the same: read the head under the lock
    first = AuditLog(log)
    first.append([_entry(12)])
    AuditLog(log).append([_entry(13)])
    first.append([_entry(14)])  # its cached head is stale: it must notice and re-read
    assert verify(log).ok and verify(log).entries == 10


def test_an_edited_entry_is_named(log):
    lines = _lines(log)
    lines[2] = lines[2].replace(b'"level":2', b'"level":3')
    _write(log, lines)
    result = verify(log)
    assert result.problems == ["line 3: entry 3 was changed after it was written (its content does not match its hash)"]


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(log):
    lines = _lines(log)
    entry = orjson.loads(lines[1])
    entry["outcomes"] = {"level": 0}
    entry["hash"] = entry_hash(entry)
    lines[1] = orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
    _write(log, lines)
    assert verify(log).problems == ["line 3: entry 3 does not follow the entry before it "
                                    "(the line above was changed, or replaced)"]


def test_a_deleted_entry_is_named(log):
    lines = _lines(log)
    del lines[1]
    _write(log, lines)
    assert verify(log).problems == ["line 2: entry 2 missing before this line (removed)"]


def test_reordered_entries_are_named(log):
    lines = _lines(log)
    lines[1], lines[3] = lines[3], lines[1]
    _write(log, lines)
    problems = verify(log).problems
    assert problems and problems[0].startswith("line 2: ")
    assert any(p.startswith("line 4: entry 2 is out of place") for p in problems)


def test_an_inserted_entry_is_named(log):
    lines = _lines(log)
    forged = {**_entry(99), "when": "2026-01-01T00:00:00.000+00:00", "seq": 3, "prev": orjson.loads(lines[1])["hash"]}
    forged["hash"] = entry_hash(forged)
    lines.insert(2, orjson.dumps(forged, option=orjson.OPT_SORT_KEYS))
    _write(log, lines)
    problems = verify(log).problems
    assert problems == ["line 4: entry 3 is out of place: entry 4 was expected here (inserted, copied or moved)"]


def test_garbage_and_a_truncated_tail(log):
    head = verify(log).head
    lines = _lines(log)
    _write(log, lines[:-1])
    assert verify(log).ok  # a shorter chain is whole...
    assert verify(log, expect_head=head).problems[0].startswith("the last entry's hash is")  # ...but not the one kept
    _write(log, lines[:2] + [b"not json"] + lines[2:])
    assert verify(log).problems[0] == "line 3: not an audit entry (not JSON, or no seq, prev and hash)"


def test_pathways_audit_verify_exit_codes(log):
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify", str(log)])
    assert ok.exit_code == 0 and "5 entries, the chain is intact" in ok.output
    lines = _lines(log)
    del lines[3]
    _write(log, lines)
    bad = runner.invoke(cli, ["audit", "verify", str(log)])
    assert bad.exit_code == 1 and "line 4: entry 4 missing" in bad.output and "Traceback" not in bad.output


def test_pathways_run_appends_one_entry_per_patient(tmp_path):
    from engine.generate import generate

    data = tmp_path / "people.jsonl"
    data.write_bytes(b"".join(orjson.dumps(r.model_dump(mode="json")) + b"\n"
                              for r in generate(20, seed=2, as_of="2024-04-01")))
    log = tmp_path / "run-audit.jsonl"
    result = CliRunner().invoke(cli, ["run", str(ROOT / "library" / "castlefields.pw"), "--data", str(data),
                                      "--as-of", "2024-04-01", "--audit", str(log), "--output", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    checked = verify(log)
    assert checked.ok and checked.entries == 20
    entry = orjson.loads(_lines(log)[0])
    assert entry["via"] == "cli" and entry["as_of"] == "2024-04-01" and entry["protocol"]["name"] == "castlefields"
    assert entry["input"].startswith("sha256:") and "eligible" in entry["outcomes"]
