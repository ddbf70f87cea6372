"""Docstring → tool description and parameter descriptions (Google, NumPy, reST, Epydoc)."""

from __future__ import annotations

import functools
import inspect
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_SECTION_FIRST_LINE = re.compile(r"^\s*[A-Za-z][A-Za-z ]*:\s*$")
_NUMPY_UNDERLINE = re.compile(r"^\s*-{3,}\s*$", re.MULTILINE)
_REST_FIELD = re.compile(
    r"^\s*:(param|parameter|arg|argument|key|keyword|type|returns?|raises?)\b", re.MULTILINE
)
_EPYDOC_FIELD = re.compile(r"^\s*@(param|type|returns?|rtype|raises?)\b", re.MULTILINE)


@dataclass(frozen=True)
class ParsedDocstring:
    """What a tool takes from a docstring.

    Attributes:
        description: Summary plus long description; never the Args/Returns/Raises/Examples sections.
        params: Parameter name → description.
    """

    description: str = ""
    params: dict[str, str] = field(default_factory=dict)


def parse_docstring(doc: str | None) -> ParsedDocstring:
    """Parse a docstring, detecting its style, into a description and parameter descriptions."""
    if not doc or not doc.strip():
        return ParsedDocstring()
    import docstring_parser  # deferred: only tools that have docstrings pay for it

    text = inspect.cleandoc(doc)
    first, _, rest = text.partition("\n")
    if _SECTION_FIRST_LINE.match(first):
        # "Args:" on the docstring's first line: cleandoc dedents the entries under it to
        # column 0, and parsers then read the header as the summary and lose the section.
        # Re-indent the entries and start with a blank line so it parses as a section.
        text = "\n" + first.strip() + "\n" + textwrap.indent(textwrap.dedent(rest), "    ")
    try:
        parsed = _parser(_detect_style(text, docstring_parser))(text)
    except docstring_parser.ParseError:
        # An unparseable docstring still describes the tool; it just yields no parameters.
        return ParsedDocstring(description=text.strip())
    summary = [p for p in (parsed.short_description, parsed.long_description) if p]
    params = {
        p.arg_name.lstrip("*"): _reflow(p.description)
        for p in parsed.params
        if p.description and p.description.strip()
    }
    return ParsedDocstring(description="\n\n".join(summary).strip(), params=params)


@functools.cache
def _parser(style: Any) -> Callable[[str], Any]:
    """The parse function for `style`: one Google / NumPy parser reused for every docstring.

    `docstring_parser.parse` builds a new parser (compiling its regexes) per call; a parser's
    `parse` changes nothing in it, so one per style serves every call, from any thread.
    """
    import docstring_parser
    from docstring_parser.google import GoogleParser
    from docstring_parser.numpydoc import NumpydocParser

    styles = docstring_parser.DocstringStyle
    if style == styles.GOOGLE:
        return GoogleParser().parse
    if style == styles.NUMPYDOC:
        return NumpydocParser().parse
    return functools.partial(docstring_parser.parse, style=style)


def _detect_style(text: str, parser: Any) -> Any:
    # Each style leaves an unmistakable mark; naming it spares running all four parsers
    # (what AUTO does), which dominated the cost of defining a tool.
    styles = parser.DocstringStyle
    if _REST_FIELD.search(text):
        return styles.REST
    if _EPYDOC_FIELD.search(text):
        return styles.EPYDOC
    if _NUMPY_UNDERLINE.search(text):
        return styles.NUMPYDOC
    if ":" in text:
        return styles.GOOGLE
    return styles.AUTO


def _reflow(text: str) -> str:
    """Join a parameter description's wrapped lines; keep paragraph breaks."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)
