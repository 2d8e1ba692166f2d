"""The statement cache and the label cache change how fast a re-check is, never what it says.

Every comparison is between a session that reuses statements parsed before
(moved to their new place) and one whose cache keeps nothing.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dsl.compiler import Session
from dsl.statements import StatementCache, shift
from fuzzing import mutate
from pathways import model as m

LIBRARY = (Path(__file__).resolve().parent.parent / "library").resolve()
SOURCES = {p.name: p.read_text(encoding="utf-8") for p in sorted(LIBRARY.glob("*.pw"))}
TARGET = LIBRARY / "__edited__.pw"


def _outcome(session: Session, text: str):
    """Everything a check reports about a text: diagnostics in the order found, the statements
    (nodes with their spans and doc text), what failed, and the compiled model."""
    session.lowered.pop(TARGET, None)
    unit = session.compile_text(text, "edited.pw", TARGET)
    compiled = session.result(unit)
    return ([d.model_dump() for d in unit.sink.items],
            [(s.node, s.first_line, s.last_line) for s in unit.syntax.statements],
            unit.syntax.failed_chunks, sorted(unit.syntax.broken_names),
            [d.model_dump() for d in compiled.diagnostics],
            compiled.protocol.model_dump_json() if compiled.protocol is not None else None)


@pytest.fixture(scope="module")
def sessions():
    """A caching session and one that keeps no statement; both keep imports, as the editor does."""
    return Session(root=LIBRARY), Session(root=LIBRARY, statements=StatementCache(limit=0))


def _edits(rng: random.Random, count: int):
    names = sorted(SOURCES)
    for _ in range(count):
        text = SOURCES[rng.choice(names)]
        if rng.random() < 0.5:
            at = rng.randrange(len(text))  # a keystroke, as in the editor
            yield text[:at] + rng.choice(["x", "\n", " ", '"', ":", "\n\n## a note\n"]) + text[at:]
        else:
            yield mutate(text, rng)


def test_library_files_and_edits_check_the_same_with_the_cache(sessions):
    cached, plain = sessions
    texts = list(SOURCES.values()) + list(_edits(random.Random(3), 120))
    for text in texts:
        assert _outcome(cached, text) == _outcome(plain, text)
    assert cached.statements.hits > 1000  # the edited texts were mostly not parsed again
    assert plain.statements.hits == 0 and len(plain.statements) == 0


def test_a_statement_moved_down_gets_its_new_place(sessions):
    cached, plain = sessions
    text = SOURCES["castlefields.pw"]
    _outcome(cached, text)
    moved = "## a new note\n\n" + text.replace("\n\n", "\n\n\n", 1)
    before = cached.statements.hits
    assert _outcome(cached, moved) == _outcome(plain, moved)
    assert cached.statements.hits > before
    decl = next(s.node for s in cached.compile_text(moved, "edited.pw", TARGET).syntax.statements
                if isinstance(s.node, m.Decl))
    # the span points at the declaration's text in the moved file
    assert moved[decl.span.start:].startswith(("parameter", "define", "criterion", "codes"))


def test_what_building_a_statement_reports_is_reported_again_in_its_new_place(sessions):
    cached, plain = sessions
    text = ('protocol p:\n  versoin "1"\n  version "2"\n\n'
            "define big: 123456789012345678901\n")
    first = _outcome(cached, text)
    assert any(d["code"] == "PW104" for d in first[0]) and any(d["code"] == "PW110" for d in first[0])
    for moved in ("\n\n" + text, text.replace("define big", "define other: 1\n\ndefine big")):
        again = _outcome(cached, moved)
        assert again == _outcome(plain, moved)
        big = next(d for d in again[0] if d["code"] == "PW104")
        assert moved[big["span"]["start"]:big["span"]["end"]].startswith("123456789")


def test_the_cache_keeps_at_most_its_limit_and_drops_the_oldest():
    cache = StatementCache(limit=2)
    span = m.Span(line=1, column=1, end_line=1, end_column=5, start=0, end=4)
    for text in ("a\n", "b\n", "c\n"):
        cache.put(text, 0, 0, m.Ref(name=text.strip(), span=span), [])
    assert len(cache) == 2
    assert cache.get("a\n", 0, 0, sink=None) is None
    got = cache.get("c\n", 3, 10, sink=None)
    assert got.span == m.Span(line=4, column=1, end_line=4, end_column=5, start=10, end=14)


def test_shift_leaves_nodes_without_a_place_where_they_are():
    ref = m.Ref(name="x")
    assert shift(ref, 5, 100) is ref
    assert shift(ref, 5, 100).span is m.NOWHERE
