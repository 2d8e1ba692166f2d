"""Text -> syntax: the first pass.

A file is cut into top-level statements (a statement starts at every line
that begins in column 1) and each is parsed on its own with a LALR parser,
so one syntax error costs one statement, never the rest of the file.
A session's :class:`dsl.statements.StatementCache` keeps the statements
parsed, so a text checked again parses only the statements that changed.
Comments are kept beside the tree for the formatter; ``##`` comments just
above a statement become its doc text.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache

from lark import Lark, Tree
from lark.exceptions import UnexpectedInput, UnexpectedToken, VisitError
from lark.indenter import DedentError, Indenter

from pathways import model as m
from pathways.walk import depth as node_depth

from .build import BuildModel
from .diagnostics import Label, Sink
from .statements import StatementCache
from .syntax_errors import STATEMENT_WORDS, GluedWord, report_syntax_error

#: Deeper statements are refused before any recursive pass sees them.
MAX_DEPTH = 150


class _Indenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR"]
    CLOSE_PAREN_types = ["RPAR"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def process(self, stream):
        # The contextual lexer reads a word where only a keyword may come as that keyword
        # and the rest (`65 years andd x` as `and` `d` `x`), which would report the wrong
        # word or, worse, parse (`andlives_alone`). A word is never a keyword glued to a name.
        prev = None
        for tok in super().process(stream):
            if prev is not None and tok.start_pos == prev.end_pos and prev.type not in _NOT_WORDS \
                    and str(prev).isalpha() and (str(tok)[:1].isalpha() or str(tok)[:1] == "_"):
                raise GluedWord(prev, tok)
            yield tok
            prev = tok


#: Terminals that are not keywords (a keyword glued to a name is a misspelt word).
_NOT_WORDS = frozenset({"NAME", "CODE", "STRING", "NUMBER", "INT", "DATE", "_NL", "_INDENT", "_DEDENT"})


#: The parser's indentation tracker keeps its state on the one shared parser, so two
#: threads (the workbench checks in a worker) must not parse at the same time.
_PARSING = threading.Lock()


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark.open_from_package(
        "dsl", "grammar.lark", parser="lalr", postlex=_Indenter(),
        propagate_positions=True, maybe_placeholders=True,
    )


@dataclass(frozen=True)
class Comment:
    line: int
    column: int
    text: str
    own_line: bool  # the comment is the whole line (else it trails code)


@dataclass
class Statement:
    """One parsed top-level statement and the lines it covers."""

    node: object  # Header | Use | Decl | Outcomes
    first_line: int
    last_line: int


@dataclass
class Syntax:
    """What the parser saw in one file."""

    source: str
    statements: list[Statement] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    failed_chunks: int = 0
    #: names declared by statements that failed to parse; their uses are not
    #: reported again as unknown names
    broken_names: set[str] = field(default_factory=set)


# --- comments and chunks ------------------------------------------------------

_STRING_OR_HASH = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#')


def scan_comments(source: str) -> list[Comment]:
    """Find ``#`` comments outside quoted text.

    >>> scan_comments('define x: "a # b"  # why\\n# own\\n')
    [Comment(line=1, column=20, text='# why', own_line=False), Comment(line=2, column=1, text='# own', own_line=True)]
    """
    out = []
    for number, line in enumerate(source.split("\n"), start=1):
        if "#" not in line:
            continue
        for match in _STRING_OR_HASH.finditer(line):
            if match.group() == "#":
                col = match.start()
                out.append(Comment(number, col + 1, line[col:].rstrip(), not line[:col].strip()))
                break
    return out


def _chunks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) 0-based line ranges of top-level statements."""
    starts = [i for i, ln in enumerate(lines) if ln[:1] not in ("", " ", "\t", "#", "\r", "\f")]
    ranges = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        while end - 1 > start and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
            end -= 1
        ranges.append((start, end - 1))
    return ranges


def _depth(tree: Tree) -> int:
    """The depth of a parse tree, without recursion."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        for child in node.children:
            if isinstance(child, Tree):
                stack.append((child, d + 1))
    return deepest


_DECLARES = re.compile(r"^(?:define|criterion|parameter|codes|score|bands|levels|pathway|care\s+plan)\s+"
                       r"([A-Za-z_][A-Za-z0-9_]*)")  # capitals too: `Fall_count` is reported, then meant as `fall_count`


def parse(source: str, sink: Sink, cache: "StatementCache | None" = None) -> Syntax:
    """Parse a whole file, statement by statement, reporting into ``sink``.

    With a ``cache`` (see :class:`dsl.statements.StatementCache`), statements
    parsed before, here or anywhere else in the file, are not parsed again."""
    syntax = Syntax(source=source, comments=scan_comments(source))
    if "\x00" in source:
        at = source.index("\x00")
        line = source.count("\n", 0, at) + 1
        column = at - (source.rfind("\n", 0, at) + 1) + 1
        sink.error("PW106", "this file contains a NUL character (code 0), so it is not a protocol text",
                   m.Span(line=line, column=column, end_line=line, end_column=column + 1, start=at, end=at + 1),
                   help="protocol files are plain UTF-8 text; was another kind of file saved as `.pw`?")
        syntax.failed_chunks += 1
        return syntax
    lines = source.split("\n")
    offsets = [0]
    for ln in lines:
        offsets.append(offsets[-1] + len(ln) + 1)
    docs = {c.line: c.text for c in syntax.comments if c.own_line and c.text.startswith("##") and c.column == 1}
    parser = _lark()
    chunks = _chunks(lines)
    lead = chunks[0][0] if chunks else len(lines)
    for n in range(lead):
        text = lines[n]
        if text.strip() and not text.lstrip().startswith("#"):
            syntax.failed_chunks += 1  # nothing may vanish without a word
            sink.error("PW107", "this line is indented, but there is no statement above it for it to belong to",
                       m.Span(line=n + 1, column=1, end_line=n + 1, end_column=len(text) + 1, start=offsets[n],
                              end=offsets[n] + len(text)), help="statements start in column 1")
            break
    words = [lines[first].split(None, 1)[0] if lines[first].strip() else "" for first, _ in chunks]
    skip = previous_failed = False
    for k, (first, last) in enumerate(chunks):
        chunk = "\n".join(lines[first:last + 1]) + "\n"
        node = cache.get(chunk, first, offsets[first], sink) if cache is not None else None
        if node is not None:
            skip = previous_failed = False
            syntax.statements.append(Statement(_with_doc(node, first, docs), first + 1, last + 1))
            continue
        try:
            with _PARSING:
                tree = parser.parse(chunk)
        except (UnexpectedInput, DedentError) as exc:
            syntax.failed_chunks += 1
            declared = _DECLARES.match(lines[first])
            if declared:
                syntax.broken_names.add(declared.group(1).lower())
            # One mistake, one error: the lines of a block written without indenting
            # them, or a closing brace left over from a statement that failed.
            if skip or (previous_failed and words[k][:1] in ("}", "]", ")")):
                skip = False
                continue
            previous_failed = True
            if isinstance(exc, UnexpectedToken) and exc.token.type == "$END" and set(exc.expected) <= {"_INDENT"} \
                    and k + 1 < len(chunks) and words[k + 1] not in STATEMENT_WORDS:
                line = chunks[k + 1][0]
                sink.error("PW107", "this line should be indented under the line above it",
                           m.Span(line=line + 1, column=1, end_line=line + 1, end_column=len(lines[line]) + 1,
                                  start=offsets[line], end=offsets[line] + len(lines[line])),
                           labels=[Label(span=m.Span(line=last + 1, column=len(lines[last].rstrip()),
                                                     end_line=last + 1, end_column=len(lines[last].rstrip()) + 1),
                                         message="this line ends with `:`, so the lines below it must be indented")],
                           help="indent the lines of a block by two spaces more than the line that ends with `:`")
                skip = True
                continue
            if isinstance(exc, DedentError):
                sink.error("PW107", "this line's indentation does not match any block above it",
                           _dedent_span(chunk, first, offsets[first]),
                           help="indent it to line up with the lines of its block")
            else:
                report_syntax_error(exc, sink, first, offsets[first], chunk)
            continue
        skip = previous_failed = False
        depth = _depth(tree)
        if depth > MAX_DEPTH * 4:
            syntax.failed_chunks += 1
            sink.error("PW108", "this statement is nested too deeply to read",
                       m.Span(line=first + 1, column=1, end_line=first + 1, end_column=2, start=offsets[first]),
                       help="split it into named definitions")
            continue
        built = Sink(sink.file) if cache is not None else sink  # kept to be replayed on a cache hit
        try:
            node = BuildModel(built, first, offsets[first], chunk).transform(tree)
        except (RecursionError, VisitError) as exc:
            if isinstance(exc, VisitError) and not isinstance(exc.orig_exc, RecursionError):
                raise
            if built is not sink:
                sink.items.extend(built.items)
            syntax.failed_chunks += 1
            sink.error("PW108", "this statement is nested too deeply to read",
                       m.Span(line=first + 1, column=1, end_line=first + 1, end_column=2, start=offsets[first]),
                       help="split it into named definitions")
            continue
        if built is not sink:
            sink.items.extend(built.items)
        if isinstance(node, m.Node) and node_depth(node) > MAX_DEPTH:
            syntax.failed_chunks += 1
            sink.error("PW108", f"this statement nests more than {MAX_DEPTH} levels deep",
                       m.Span(line=first + 1, column=1, end_line=first + 1, end_column=2, start=offsets[first]),
                       help="split it into named definitions and combine those")
            continue
        if cache is not None:
            cache.put(chunk, first, offsets[first], node, built.items)
        syntax.statements.append(Statement(_with_doc(node, first, docs), first + 1, last + 1))
    return syntax


def _with_doc(node, first: int, docs: dict[int, str]):
    """The node with the ``##`` lines just above its statement as its doc text."""
    doc_lines = []
    above = first  # 1-based line number of the line just above the statement
    while above in docs:
        doc_lines.insert(0, docs[above][2:].strip())
        above -= 1
    if doc_lines and isinstance(node, (m.Decl, m.Header)):
        node = node.model_copy(update={"doc": "\n".join(doc_lines)})
    return node


def _dedent_span(chunk: str, first: int, offset: int) -> m.Span:
    """The first line whose indentation matches no open block."""
    levels = [0]
    for i, ln in enumerate(chunk.split("\n")):
        if not ln.strip() or ln.lstrip().startswith("#"):
            continue
        indent = len(ln.expandtabs(8)) - len(ln.expandtabs(8).lstrip())
        if indent > levels[-1]:
            levels.append(indent)
        elif indent < levels[-1]:
            while levels and indent < levels[-1]:
                levels.pop()
            if not levels or levels[-1] != indent:
                return m.Span(line=first + i + 1, column=1, end_line=first + i + 1, end_column=indent + 1,
                              start=offset)
    return m.Span(line=first + 1, column=1, end_line=first + 1, end_column=2, start=offset)
