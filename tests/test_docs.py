"""Every example in docs/language.md is compiled and checked.

How the examples are marked (docs/language.md says the same, for readers):

``pw``
    A complete protocol. It must compile with no errors and no warnings.

``pw-fragment``
    Part of a protocol. The test puts the standard header in front of it::

        protocol example:
          version "1.0.0"

    If the fragment's first word is a statement keyword (``uses``,
    ``outcomes``, ``parameter``, ``codes``, ``define``, ``criterion``,
    ``score``, ``bands``, ``levels``, ``pathway``, ``care``, ``test``) or the
    fragment starts with a comment, it is one or more statements and is used
    as it stands. Otherwise it is a single expression, and it becomes
    ``define example_value: <expression>`` (an expression written over
    several lines goes, indented, under ``define example_value:``). It must
    compile with no errors and no warnings.

``pw-error CODE``
    A mistake. It is a complete protocol if it starts with ``protocol`` (or a
    comment followed by ``protocol``), otherwise it is wrapped like a fragment.
    It must produce exactly one diagnostic, and that diagnostic has the code
    ``CODE``.

``console``
    A block whose first line is ``$ pathways check FILE`` shows what the
    command prints for the ``pw-error`` example just above it. The test writes
    that example to FILE in a scratch folder, runs the real command there and
    compares the output line for line.

``overrides FILE``
    Lines ``name = value`` giving parameter values from outside; the test
    applies them to ``library/FILE`` with ``dsl.params.override`` and expects
    no problems.

Every example is compiled with the library folder as its base directory, so
``uses "conditions.pw" as conditions`` finds the library's protocols.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from dsl.compiler import compile_text
from pathways import model as m
from pathways import schema
from pathways.walk import walk

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "language.md"
LIBRARY = ROOT / "library"

HEADER = 'protocol example:\n  version "1.0.0"\n\n'
STATEMENT_WORDS = {"uses", "outcomes", "parameter", "codes", "define", "criterion", "score", "bands",
                   "levels", "pathway", "care", "test"}
KINDS = ("pw", "pw-fragment", "pw-error", "console", "overrides")


@dataclass(frozen=True)
class Block:
    line: int  # the line of the opening fence in docs/language.md
    kind: str
    code: str | None  # the expected diagnostic code of a pw-error block
    text: str

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.kind}" + (f"-{self.code}" if self.code else "")


_FENCE = re.compile(r"^```(\S*)(?:[ \t]+(\S+))?[ \t]*$")


def blocks(path: Path = DOCS) -> list[Block]:
    """Every fenced block of the docs whose info string is one of ours, in order."""
    out: list[Block] = []
    lines = path.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match or not match.group(1):
            i += 1
            continue
        kind, arg = match.group(1), match.group(2)
        start = i
        i += 1
        body = []
        while i < len(lines) and lines[i].rstrip() != "```":
            body.append(lines[i])
            i += 1
        i += 1
        if kind in KINDS:
            out.append(Block(start + 1, kind, arg, "\n".join(body) + "\n"))
    return out


def first_word(text: str) -> str:
    for line in text.split("\n"):
        if line.strip():
            return line.split()[0]
    return ""


def program(block: Block) -> str:
    """The protocol text an example stands for (see the module docstring)."""
    text = block.text
    if block.kind == "pw":
        return text
    first = _first_code_word(text)
    if block.kind == "pw-error" and first == "protocol":
        return text
    if first in STATEMENT_WORDS or first_word(text).startswith("#"):
        return HEADER + text
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) == 1:
        return HEADER + "define example_value: " + lines[0].strip() + "\n"
    return HEADER + "define example_value:\n" + "".join(f"  {ln}\n" for ln in lines)


def _first_code_word(text: str) -> str:
    for line in text.split("\n"):
        if line.strip() and not line.lstrip().startswith("#"):
            return line.split()[0]
    return ""


def compile_block(block: Block):
    return compile_text(program(block), "example.pw", LIBRARY)


def describe(result) -> str:
    from dsl.diagnostics import render
    return "\n\n".join(render(d, result.sources.get(d.file)) for d in result.diagnostics)


ALL = blocks()
CHECKED = [b for b in ALL if b.kind in ("pw", "pw-fragment", "pw-error")]


def test_the_docs_have_examples_of_every_kind():
    kinds = {b.kind for b in ALL}
    assert kinds == set(KINDS), kinds
    assert len(CHECKED) >= 50  # the extractor found the examples


@pytest.mark.parametrize("block", CHECKED, ids=[b.id for b in CHECKED])
def test_example(block: Block):
    result = compile_block(block)
    codes = [d.code for d in result.diagnostics]
    if block.kind == "pw-error":
        assert block.code and re.fullmatch(r"PW\d{3}", block.code), "write the code: ```pw-error PW301"
        assert codes == [block.code], describe(result)
    else:
        assert codes == [], describe(result)
        assert result.protocol is not None


def _preceding_error(block: Block) -> Block:
    before = [b for b in ALL if b.line < block.line and b.kind != "console"]
    assert before and before[-1].kind == "pw-error", "a console block follows the pw-error example it runs"
    return before[-1]


CONSOLE = [b for b in ALL if b.kind == "console"]


@pytest.mark.parametrize("block", CONSOLE, ids=[b.id for b in CONSOLE])
def test_console_output_is_what_the_command_prints(block: Block, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tui.cli import cli

    command, *expected = block.text.rstrip("\n").split("\n")
    match = re.fullmatch(r"\$ pathways check (\S+\.pw)", command)
    assert match, "the first line is `$ pathways check FILE.pw`"
    source = _preceding_error(block)
    assert source.text.lstrip().startswith(("protocol", "#")), "the example run is a complete protocol"
    (tmp_path / match.group(1)).write_text(source.text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["check", match.group(1)])
    assert result.output.rstrip("\n").split("\n") == expected


OVERRIDES = [b for b in ALL if b.kind == "overrides"]


@pytest.mark.parametrize("block", OVERRIDES, ids=[b.id for b in OVERRIDES])
def test_parameter_values_given_from_outside_are_accepted(block: Block):
    from dsl.compiler import compile_file
    from dsl.params import override

    protocol = compile_file(LIBRARY / block.code).protocol
    assert protocol is not None
    values = {}
    for line in block.text.strip().split("\n"):
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip()
    changed, problems = override(protocol, values)
    assert problems == []
    for name, value in values.items():
        alias, _, base = name.rpartition(".")
        owner = next(u.protocol for u in changed.uses if u.alias == alias) if alias else changed
        assert owner.get(base).default.text == value.lstrip("£").split()[0]


# --- coverage: the examples show every construct of the model ------------------

EXPRESSION_KINDS = {"quantity", "ref", "not", "binary", "compare", "in_value_set", "filter", "window",
                    "aggregate", "per_period", "ago", "percentile", "in_top", "item_list", "items_met"}
DECLARATION_KINDS = {"parameter", "value_set", "definition", "score", "bands", "levels", "pathway",
                     "care_plan", "test"}


def _models() -> list[m.Protocol]:
    out = []
    for block in ALL:
        if block.kind in ("pw", "pw-fragment"):
            result = compile_block(block)
            if result.protocol is not None:
                out.append(result.protocol)
    return out


def test_the_examples_show_every_kind_of_expression_and_declaration():
    seen: set[str] = set()
    for protocol in _models():
        for decl in protocol.declarations:
            seen.add(decl.kind)
            for node in walk(decl):
                kind = getattr(node, "kind", None)
                if isinstance(node, m.Expr) and kind:
                    seen.add(kind)
    assert EXPRESSION_KINDS - seen == set()
    assert DECLARATION_KINDS - seen == set()


def test_the_examples_show_every_aggregate_window_and_quantifier():
    aggregates, windows, quantifiers, periods, units = set(), set(), set(), set(), set()
    for protocol in _models():
        for node in walk(protocol):
            if isinstance(node, m.Aggregate):
                aggregates.add(node.op)
            elif isinstance(node, m.Window):
                windows.add(node.mode)
            elif isinstance(node, m.ItemList):
                quantifiers.add(node.quantifier)
            elif isinstance(node, m.PerPeriod):
                periods.add(node.op)
            elif isinstance(node, m.Quantity):
                units.add(node.unit)
    assert aggregates == {"count", "any", "no", "sum", "min", "max", "latest", "earliest", "total_stay"}
    assert windows == {"last", "between", "before", "after"}
    assert quantifiers == {"all", "any", "none", "at_least"}
    assert periods == {"lowest", "highest", "average"}
    assert units >= {"days", "weeks", "months", "years", "gbp", "count", "percent"}


# --- the reference names everything the checker knows ------------------------------

def _docs_text() -> str:
    return DOCS.read_text(encoding="utf-8")


def test_every_diagnostic_code_is_explained():
    """Each code the compiler can report appears in the docs (the table of codes)."""
    emitted = set()
    for folder in ("dsl", "pathways"):
        for path in (ROOT / folder).rglob("*.py"):
            emitted |= set(re.findall(r'"(PW\d{3})"', path.read_text(encoding="utf-8")))
    text = _docs_text()
    missing = sorted(code for code in emitted if f"`{code}`" not in text)
    assert missing == []


@pytest.mark.parametrize("what, names", [
    ("collections", tuple(schema.COLLECTIONS)),
    ("patient facts", tuple(schema.PATIENT_ATTRIBUTES)),
    ("code systems", tuple(schema.CODE_SYSTEMS)),
    ("care-plan sections", schema.SECTION_KINDS),
    ("pathway events", m.PATHWAY_EVENTS),
    ("header fields", schema.HEADER_FIELDS),
    ("groups", schema.GROUPS),
    ("symbols", tuple(v for values in schema.ENUMS.values() for v in values)),
    ("attributes", tuple({a for attrs in schema.ITEM_ATTRIBUTES.values() for a in attrs})),
])
def test_the_reference_names_everything_in_the_schema(what, names):
    text = _docs_text()
    assert [n for n in names if f"`{n}`" not in text] == [], what
