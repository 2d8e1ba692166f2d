"""Mutations of protocol text for fuzzing, shared by the test and the script."""

from __future__ import annotations

import random

from dsl.compiler import compile_text
from pathways.walk import walk

FRAGMENTS = [
    "(", ")", ":", "\n", "\n  ", "\t", '"', "#", "£", "%", ".", ",", "-", "=", ">=", "at least ", "of:",
    " and ", " or ", " not ", "count ", " where ", " in the last ", "12 months", "£100", "2024-02-30",
    "9" * 40, "any of:\n    ", "level 3 ", "otherwise ", "go to exit ", "on died ", "{x}", "\x00", "\ufeff",
    "é", "\r\n", "define x: ", "uses \"x.pw\"\n", "((((((((((", "not not not not ", "\\", "items met in ",
]


def mutate(text: str, rng: random.Random) -> str:
    """Apply one to four random edits: delete, insert, duplicate, swap, truncate."""
    for _ in range(rng.randint(1, 4)):
        if not text:
            text = rng.choice(FRAGMENTS)
            continue
        i = rng.randrange(len(text))
        j = min(len(text), i + rng.randint(1, 40))
        choice = rng.random()
        if choice < 0.25:
            text = text[:i] + text[j:]
        elif choice < 0.55:
            text = text[:i] + rng.choice(FRAGMENTS) + text[i:]
        elif choice < 0.7:
            text = text[:i] + text[i:j] * rng.randint(2, 5) + text[j:]
        elif choice < 0.8:
            lines = text.split("\n")
            a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
        elif choice < 0.9:
            text = text[:i]
        else:
            text = text[:i] + "".join(chr(rng.randrange(0, 0x2FF)) for _ in range(rng.randint(1, 8))) + text[i:]
    return text


def compile_with_cached_imports(library):
    """compile_text, but the library files a fuzzed text imports are compiled once per
    process, not once per input: without this, imports are most of the time (the
    pyramid imports three files, and the protocols that import it four or five)."""
    from pathlib import Path

    from dsl.compiler import Session

    root = Path(library).resolve()
    session = Session(root=root)
    path = root / "__fuzz__.pw"

    def compile_cached(source: str, file: str = "<input>", base_dir=None):
        session.lowered.pop(path, None)  # the fuzzed text is new each time; its imports are not
        return session.result(session.compile_text(source, file, path))
    return compile_cached


def check_one(text: str, base_dir) -> None:
    """Compile ``text``; raise AssertionError if the result breaks a promise.

    Any other exception escaping compile_text is itself the failure."""
    result = compile_text(text, "fuzz.pw", base_dir=base_dir)
    lines = max(text.count("\n") + 1, 1)
    for d in result.diagnostics:
        assert d.message, d
        if d.file == "fuzz.pw":
            assert 1 <= d.span.line <= lines + 1, (d, lines)
    if result.protocol is None:
        assert any(d.severity == "error" for d in result.diagnostics), "no model and no error"
    else:
        for node in walk(result.protocol):
            pass  # the model is complete enough to traverse
