"""Syntax errors in plain words: what went wrong, where, and how to mend it."""

from __future__ import annotations

import datetime as dt
import difflib
import re

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

from pathways import model as m

from .diagnostics import Label, Sink, did_you_mean


class GluedWord(UnexpectedToken):
    """A keyword with a name glued to it (`andd`, `andlives_alone`): one word the
    language does not know, reported as that word."""

    def __init__(self, keyword: Token, rest: Token):
        word = Token("NAME", str(keyword) + str(rest), start_pos=keyword.start_pos, line=keyword.line,
                     column=keyword.column, end_line=rest.end_line, end_column=rest.end_column, end_pos=rest.end_pos)
        super().__init__(word, {keyword.type})
        self.keyword, self.rest = str(keyword), str(rest)


def _lark():
    from .parser import _lark as build_parser  # the parser module imports this one
    return build_parser()



_FRIENDLY = {
    "NAME": "a name", "STRING": "text in double quotes", "NUMBER": "a number", "INT": "a whole number",
    "DATE": "a date (YYYY-MM-DD)", "UNIT": "a unit (days, weeks, months, years, GBP)", "_NL": "the end of the line",
    "_INDENT": "an indented block", "_DEDENT": "the end of the block", "$END": "the end of the file",
    "CODE": "a code", "IN_THE_LAST": "`in the last`", "ADD_OP": "`+` or `-`", "MUL_OP": "`*` or `/`",
    "DEFINE_KW": "`define` or `criterion`", "AGG_OP": "`sum`, `min`, `max`, `latest` or `earliest`",
    "PERIOD_OP": "`lowest`, `highest` or `average`", "ACTION_TIMING": "`within` or `every`",
}


def _friendly(term: str) -> str:
    if term in _FRIENDLY:
        return _FRIENDLY[term]
    try:
        pattern = _lark().get_terminal(term).pattern
    except KeyError:
        return term.lower()
    return f"`{pattern.value}`" if pattern.type == "str" else term.lower()


def _describe_token(tok: Token) -> str:
    if tok.type in ("_NL", "$END", "_DEDENT", "_INDENT"):
        return {"_NL": "end of line", "$END": "end of the statement",
                "_DEDENT": "end of the block", "_INDENT": "indented line"}[tok.type]
    text = str(tok)
    return f"`{text[:30]}`"


#: The words a top-level statement starts with.
STATEMENT_WORDS = ("protocol", "uses", "outcomes", "parameter", "codes", "define", "criterion", "score",
                   "bands", "levels", "pathway", "care", "test", "patient")

#: Terminals that can start a value; an error expecting all of them says "a value".
_VALUE_STARTS = {"AGG_OP", "ANY", "COUNT", "DATE", "FALSE", "ITEMS", "LPAR", "MINUS", "NAME", "NO", "NOT",
                 "NUMBER", "PERCENTILE", "PERIOD_OP", "STRING", "TOTAL", "TRUE"}

#: Help for characters the language does not use, keyed by the character.
_CHARACTER_HELP = {
    "{": "blocks are not written with braces: indent the lines under a line that ends with `:`",
    "}": "blocks are not written with braces: indent the lines under a line that ends with `:`",
    "[": "lists are not written with brackets: put each item on its own indented line",
    "]": "lists are not written with brackets: put each item on its own indented line",
    "&": "write `and`",
    "|": "write `or`",
    "!": "write `not`, or `is not` to compare",
    ";": "put each statement on its own line",
    "'": 'write text in double quotes: `"like this"`',
    "$": "write amounts of money in pounds: `£100`",
    "@": "remove it; comparisons are written in words, e.g. `age at least 65 years`",
    "\u201c": 'write text in plain double quotes `"`; word processors change them to curly quotes',
    "\u201d": 'write text in plain double quotes `"`; word processors change them to curly quotes',
    "\u2018": 'write text in plain double quotes `"`; word processors change them to curly quotes',
    "\u2019": 'write text in plain double quotes `"`; word processors change them to curly quotes',
    "\u2013": "write a plain `-`",
    "\u2014": "write a plain `-`",
}

#: Names of characters that cannot be seen.
_INVISIBLE = {"\u00a0": "a non-breaking space", "\ufeff": "a byte order mark", "\u200b": "a zero-width space",
              "\r": "a carriage return"}

_NAME = re.compile(r"[a-z_][a-z0-9_]*")

#: The words of terminals written as patterns, for "did you mean" (the others are their own text).
_PATTERN_WORDS = {
    "UNIT": ("day", "days", "week", "weeks", "month", "months", "year", "years"),
    "IN_THE_LAST": ("in the last",), "AGG_OP": ("sum", "min", "max", "latest", "earliest"),
    "PERIOD_OP": ("lowest", "highest", "average"), "ACTION_TIMING": ("within", "every"),
    "DEFINE_KW": ("define", "criterion"),
}


def _phrases(expected: set[str]) -> set[str]:
    """The words (or phrases: `in the last`) the parser would have taken here."""
    out: set[str] = set()
    for term in expected:
        if term in _PATTERN_WORDS:
            out.update(_PATTERN_WORDS[term])
            continue
        try:
            pattern = _lark().get_terminal(term).pattern
        except KeyError:
            continue
        if pattern.type == "str" and re.fullmatch(r"[a-z]+", pattern.value):
            out.add(pattern.value)
    return out


#: Everyday words for what the language writes otherwise: (the word, the language's first word) ->
#: the help. Named only where the language's word could come.
_EVERYDAY = {
    ("over", "more"): "write `more than` (or `at least` if the value itself counts)",
    ("above", "more"): "write `more than` (or `at least` if the value itself counts)",
    ("greater", "more"): "write `more than`", ("exceeds", "more"): "write `more than`",
    ("exceeding", "more"): "write `more than`",
    ("under", "less"): "write `less than` (or `at most` if the value itself counts)",
    ("below", "less"): "write `less than` (or `at most` if the value itself counts)",
    ("equals", "is"): "write `is`", ("equal", "is"): "write `is`",
}


def _slip(chunk: str, at: int, expected: set[str]) -> tuple[str, str] | None:
    """(what was written, a help line naming what to write), when it is close to a word the
    parser would have taken: `12 monts` for `months`, `at lest` for `least`, `in the lst`
    for `in the last`.

    Only the words the parser would have taken are candidates; everyday words for them
    (`over` for `more than`) are named too."""
    end = chunk.find("\n", at)
    words = chunk[at:end if end >= 0 else len(chunk)].split()
    # a phrase begun well and slipped later (`in the lst`): the parser stopped at its first word
    begun = {p for ps in _PATTERN_WORDS.values() for p in ps if " " in p and words and p.split()[0] == words[0]}
    phrases = _phrases(expected) | begun
    if words:
        for (word, first), help_line in _EVERYDAY.items():
            if words[0] == word and first in phrases:
                # `greater than` is replaced whole, `over` alone
                return " ".join(words[:2]) if words[1:2] == ["than"] else word, help_line
    # (a slip of a word: the closest, if close enough)
    best = None
    for phrase in sorted(phrases):
        written = " ".join(words[:phrase.count(" ") + 1])
        if not written or written == phrase:
            continue
        score = difflib.SequenceMatcher(None, written, phrase).ratio()
        if sorted(written) == sorted(phrase):
            score = max(score, 0.9)  # letters swapped: `tpo` for `top`
        if score >= 0.7 and (best is None or score > best[0]):
            best = (score, written, phrase)
    return None if best is None else (best[1], f"did you mean `{best[2]}`?")


_DATE_LIKE = re.compile(r"(?<![\w.-])(\d{1,4})([-/.])(\d{1,2})\2(\d{1,4})(?![\w.-])")


def date_like(text: str, at: int) -> tuple[int, str, str] | None:
    """(where, the text, a help line) for a date written another way around the position:
    `1945-5-1`, `01/05/1945` (day first, as in the UK).

    >>> date_like("born 01/05/1945", 7), date_like("born 1945-5-1", 9)
    ((5, '01/05/1945', 'write it as `1945-05-01`'), (5, '1945-5-1', 'write it as `1945-05-01`'))
    >>> date_like("born 31/02/1945", 5)[2]
    'there is no such day; write dates as YYYY-MM-DD, e.g. `1945-05-01`'
    """
    for match in _DATE_LIKE.finditer(text):
        if match.start() <= at < match.end():
            a, _, b, c = match.groups()
            day_first = len(c) == 4
            if len(a) != 4 and not day_first:
                return match.start(), match.group(), "write the year in full, e.g. `1945-05-01`"
            year, month, day = (int(c), int(b), int(a)) if day_first else (int(a), int(b), int(c))
            try:
                iso = dt.date(year, month, day).isoformat()
            except ValueError:
                return (match.start(), match.group(),
                        "there is no such day; write dates as YYYY-MM-DD, e.g. `1945-05-01`")
            return match.start(), match.group(), f"write it as `{iso}`"
    return None


def _known_mistake(tok: Token, expected: set[str], chunk: str, lines: int, pos: int):
    """(message, span, help) for an unexpected word that is a known kind of mistake: a slip
    of a word the parser would have taken, an everyday word for one, a date written another
    way, `count of` or `number of`; None for anything else."""
    text, at = str(tok), tok.start_pos
    slip = _slip(chunk, at, expected) if text[:1].isalpha() else None
    if slip is not None:
        written, help_line = slip
        return f"unexpected `{written}`", _chunk_span(chunk, at, lines, pos, width=len(written)), help_line
    date = date_like(chunk, at)
    if date is not None:
        where, written, help_line = date
        return (f"`{written}` is not a date the language reads: dates are written year-month-day (YYYY-MM-DD)",
                _chunk_span(chunk, where, lines, pos, width=len(written)), help_line)
    before = chunk[:at].split()[-2:]
    if before == ["count", "of"]:  # `of` was read as the name of a list
        return ("`count` is followed by the list itself, without `of`",
                _chunk_span(chunk, chunk.rfind("of", 0, at), lines, pos, width=2), f"write `count {text[:30]}`")
    word_mistake = _word_mistake(text, chunk, at, tok.type) if _NAME.fullmatch(text) else None
    if word_mistake is not None:
        message, start, help_line = word_mistake
        return message, _chunk_span(chunk, start, lines, pos, width=at + len(text) - start), help_line
    if text == "of" and before[-1:] == ["number"]:
        after = chunk[at + 2:].split()[:1]
        listed = after[0] if after and _NAME.fullmatch(after[0]) else "admissions"
        return ("unexpected `of`", _chunk_span(chunk, at, lines, pos, width=2),
                f"write `count {listed}` for the number of {listed.replace('_', ' ')}")
    return None


def _expected_text(expected: set[str]) -> str | None:
    terms = {t for t in expected if not t.startswith("__")}
    words = []
    if {"NAME", "NUMBER"} <= terms:
        terms -= _VALUE_STARTS
        words.append("a value (a number with its unit, a name, or text in quotes)")
    words.extend(sorted({_friendly(t) for t in terms}))
    if not words:
        return None
    shown = ", ".join(words[:6]) + (", ..." if len(words) > 6 else "")
    return f"expected {shown}"


def _unclosed_paren(chunk: str) -> int | None:
    """The position of a `(` that is never closed, if any (text and comments skipped)."""
    opened: list[int] = []
    i = 0
    while i < len(chunk):
        c = chunk[i]
        if c == '"':
            close = re.compile(r'(?:[^"\\\n]|\\.)*"').match(chunk, i + 1)
            i = close.end() if close else i + 1
            continue
        if c == "#":
            nl = chunk.find("\n", i)
            i = len(chunk) if nl < 0 else nl
            continue
        if c == "(":
            opened.append(i)
        elif c == ")" and opened:
            opened.pop()
        i += 1
    return opened[-1] if opened else None


def _chunk_span(chunk: str, at: int, lines: int, pos: int, width: int = 1) -> m.Span:
    line = chunk.count("\n", 0, at) + 1 + lines
    column = at - (chunk.rfind("\n", 0, at) + 1) + 1
    return m.Span(line=line, column=column, end_line=line, end_column=column + width, start=pos + at,
                  end=pos + at + width)


def report_syntax_error(exc: Exception, sink: Sink, lines: int, pos: int, chunk: str) -> None:
    if isinstance(exc, UnexpectedCharacters):
        char = chunk[exc.pos_in_stream] if exc.pos_in_stream < len(chunk) else ""
        span = m.Span(line=exc.line + lines, column=exc.column, end_line=exc.line + lines,
                      end_column=exc.column + 1, start=exc.pos_in_stream + pos, end=exc.pos_in_stream + pos + 1)
        if char == '"':
            sink.error("PW102", "this text has no closing quote", span,
                       help='add a `"` at the end of the text, on the same line')
        elif char.isalpha() and char.isupper():
            sink.error("PW103", "names are written in lower case", span,
                       help="write names with lower-case letters, digits and `_`, e.g. `active_ltcs`")
        elif char.isprintable() and char.strip():
            sink.error("PW101", f"`{char}` is not allowed here", span,
                       help=_CHARACTER_HELP.get(char, "remove it"))
        else:
            name = _INVISIBLE.get(char, f"U+{ord(char):04X}" if char else "")
            sink.error("PW101", f"an invisible character ({name}) is not allowed here", span,
                       help="delete it and type a plain space if one is needed; such characters often come "
                            "from text copied out of a web page or a word processor")
        return
    if isinstance(exc, GluedWord):
        tok, word = exc.token, str(exc.token)
        start = tok.start_pos + pos
        span = m.Span(line=tok.line + lines, column=tok.column, end_line=tok.line + lines,
                      end_column=tok.column + len(word), start=start, end=start + len(word))
        sink.error("PW100", f"unexpected `{word[:30]}`", span,
                   help=did_you_mean(word, [exc.keyword])
                   or f"if you meant `{exc.keyword}` and then `{exc.rest}`, put a space between them")
        return
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        line = (tok.line or 1) + lines
        col = tok.column or 1
        end_col = tok.end_column if tok.end_line == tok.line and tok.end_column else col + 1
        start = (tok.start_pos or 0) + pos
        if tok.type in ("_NL", "_DEDENT", "_INDENT", "$END"):
            end_col = col + 1
        span = m.Span(line=line, column=col, end_line=line, end_column=end_col, start=start, end=start + 1)
        expected = set(exc.expected)
        text = str(tok)
        if tok.type in ("_NL", "_DEDENT", "$END"):
            paren = _unclosed_paren(chunk)
            if paren is not None:
                sink.error("PW100", "this `(` is never closed", _chunk_span(chunk, paren, lines, pos),
                           help="add a `)` where the part in brackets ends")
            elif expected == {"COLON"}:
                sink.error("PW100", "a `:` is missing at the end of this line", span,
                           help='a line that names a definition, or opens a block, ends with `:`, '
                                'e.g. `define frail "Frail":`')
            elif expected == {"_INDENT"}:
                sink.error("PW100", "this line ends with `:` but no indented lines follow it", span,
                           help="write what it means after the `:`, or on lines indented under it")
            else:
                sink.error("PW100", "this line ends too early", span, help=_expected_text(expected))
            return
        if tok.type == "_INDENT" and tok.start_pos is not None:
            _report_over_indented(tok, sink, lines, pos, chunk, expected)
            return
        if tok.type in ("NAME", "CODE") and tok.line == 1 and tok.column == 1:
            if text.lower() in STATEMENT_WORDS:
                sink.error("PW103", f"`{text}` is written in lower case", span, help=f"write `{text.lower()}`")
            else:
                sink.error("PW100", f"`{text[:30]}` does not start a statement", span,
                           help=did_you_mean(text, STATEMENT_WORDS)
                           or "statements start with " + ", ".join(f"`{w}`" for w in STATEMENT_WORDS))
            return
        if "COLON" in expected and len(expected - {"_NL", "COLON"}) <= 1 and tok.start_pos \
                and chunk[tok.start_pos - 1] in " \t":
            sink.error("PW100", f"a `:` is missing before `{text[:30]}`", span,
                       help="write `:` between a name or label and what it means, "
                            'e.g. `"aged 80 or over": age at least 80 years`')
            return
        if tok.type == "CODE" and "NAME" in expected and text != text.lower():
            sink.error("PW103", "names are written in lower case", span,
                       help=f"write `{text.lower()}`" if _NAME.fullmatch(text.lower())
                       else "write names with lower-case letters, digits and `_`, e.g. `active_ltcs`")
            return
        known = _known_mistake(tok, expected, chunk, lines, pos) if tok.start_pos is not None else None
        if known is not None:
            sink.error("PW100", known[0], known[1], help=known[2])
            return
        sink.error("PW100", f"unexpected {_describe_token(tok)}", span, help=_expected_text(expected))
        return
    if isinstance(exc, UnexpectedEOF):
        sink.error("PW100", "the statement ends too early", m.Span(line=lines + 1, column=1, end_line=lines + 1,
                                                                    end_column=2, start=pos, end=pos + 1))
        return
    sink.error("PW100", "this statement could not be read", m.Span(line=lines + 1, column=1, end_line=lines + 1,
                                                                    end_column=2, start=pos, end=pos + 1))


def _report_over_indented(tok: Token, sink: Sink, lines: int, pos: int, chunk: str, expected: set) -> None:
    """A line indented more than the line above it, which opens no block: the parser sees the
    indent at the end of the line above, but the slip is on the line below, so it is shown there."""
    above_start = chunk.rfind("\n", 0, tok.start_pos) + 1
    above = chunk[above_start:tok.start_pos]
    at = tok.start_pos
    while True:  # the next line with text (blank lines and comments do not count)
        at = chunk.find("\n", at) + 1
        if at <= 0 or at >= len(chunk):
            sink.error("PW100", f"unexpected {_describe_token(tok)}", _chunk_span(chunk, tok.start_pos, lines, pos),
                       help=_expected_text(expected))
            return
        end = chunk.find("\n", at)
        text = chunk[at:end if end >= 0 else len(chunk)]
        if text.strip() and not text.lstrip().startswith("#"):
            break
    indent = len(text) - len(text.lstrip())
    indent_above = len(above) - len(above.lstrip())
    span = _chunk_span(chunk, at, lines, pos, width=max(indent, 1))
    label = Label(span=_chunk_span(chunk, above_start, lines, pos, width=max(indent_above, 1)),
                  message=f"this line is indented by {indent_above} space{'s' * (indent_above != 1)}")
    sink.error("PW107", f"this line is indented by {indent} spaces, more than the line above it", span,
               labels=[label],
               help="lines of one block line up under each other; only a line that ends with `:` "
                    "is followed by lines indented further")


_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fourteen": 14, "eighteen": 18,
                 "twenty": 20, "thirty": 30, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
                 "ninety": 90, "hundred": 100}
_MONEY_WORDS = {"pound", "pounds", "gbp", "quid", "p", "pence"}
_UNIT_WORDS = {"day", "days", "week", "weeks", "month", "months", "year", "years"}


def _word_mistake(text: str, chunk: str, at: int, kind: str) -> tuple[str, int, str] | None:
    """(message, where it starts, help) for a word the parser did not expect after a number
    (`100 pounds`, `2 falls`), after a number written in words (`two weeks`), or after a word
    it makes a record name with (`lives alone` for `lives_alone`)."""
    from pathways import schema

    number = re.search(r"(?<![\w.£])(\d+(?:\.\d+)?)[ \t]+$", chunk[:at])
    if number is not None and kind == "NAME":  # a keyword after a number is another mistake
        value = number.group(1)
        if text.lower() in _MONEY_WORDS:
            return (f"`{text[:30]}` is not a unit the language knows", at,
                    f"write amounts of money with the pound sign: `£{value}`")
        return (f"`{text[:30]}` is not a unit the language knows", at,
                f"durations are written in days, weeks, months or years (`{value} months`), money with "
                f"the pound sign (`£{value}`), and a count has no unit (`{value}`)")
    previous = re.search(r"([a-z_][a-z0-9_]*)[ \t]+$", chunk[:at])
    if previous is None:
        return None
    word = previous.group(1)
    if word in _NUMBER_WORDS and text in _UNIT_WORDS | _MONEY_WORDS:
        figure = _NUMBER_WORDS[word]
        written = f"£{figure}" if text in _MONEY_WORDS else f"{figure} {text}"
        return ("numbers are written in figures", previous.start(1), f"write `{written}`")
    joined = f"{word}_{text}"
    if joined in schema.PATIENT_ATTRIBUTES or joined in schema.COLLECTIONS:
        return (f"`{word} {text}` is written with `_` between the words", previous.start(1),
                f"write `{joined}`")
    return None
