"""A batch's tasks: from prompts, dicts, a JSONL file or a CSV file, with `{field}` templates.

Each row becomes a `Task`: an id, a prompt, optional `deps` for the run context, and the row
itself. Files are read lazily, one row at a time, each time the `TaskSource` is iterated; a
bad row raises its error when it is reached, naming the file, the line and what is wrong.

Rows:
    - A JSONL line is a JSON object; blank lines are skipped. A CSV file's first line is its
      header; its cells are text, and a ``deps`` cell holds a JSON object (or nothing).
      Files are UTF-8, with or without the byte-order mark Excel writes.
    - A prompt is the row's ``prompt`` field, or the template filled from the row.
    - A string item of an iterable is the row ``{"prompt": item}``.

Ids:
    A row's ``id`` field when it has one (text or a whole number; unique in the batch).
    Otherwise ``task-`` and 16 hex digits of a SHA-256 of the row and its prompt, so an id
    belongs to its content, not its position: adding, removing or reordering rows leaves the
    other rows' ids alone, and a resumed batch never pairs a recorded result with a row it
    did not come from (row numbers would, after an edit above it). A row whose content or
    prompt changes (a new template) gets a new id and runs again. The n-th copy of identical
    rows gets ``-n`` appended (``-2``, ``-3``...); identical rows are interchangeable.
    Values JSON cannot encode (a Python object in ``deps``) count by their type only.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from string import Formatter
from typing import Any, BinaryIO, Literal, NoReturn

from sfagent.exceptions import ConfigurationError, UserError

__all__ = [
    "DuplicateTaskIdError",
    "PromptTemplate",
    "Task",
    "TaskError",
    "TaskFileError",
    "TaskSource",
    "TemplateError",
    "TemplateFieldError",
    "load_tasks",
]

_BOM = b"\xef\xbb\xbf"
_SUFFIXES: dict[str, Literal["jsonl", "csv"]] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}
_Rows = Iterator[tuple[int, Any]]


# --- errors ----------------------------------------------------------------------------------


class TemplateError(ConfigurationError):
    """A prompt template that cannot be used: unbalanced braces, an unnamed ``{}``..."""


class TaskError(UserError):
    """A row that cannot become a task (no prompt, an empty one, a bad id or deps...).

    Attributes:
        problem: What is wrong.
        source: The file's path, or ``None`` for tasks given as an iterable.
        line: Where the row starts: its 1-based line in the file, or its 1-based position in
            the iterable; ``None`` when no row is concerned.
    """

    def __init__(self, problem: str, *, source: str | None = None, line: int | None = None) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        super().__init__(f"{_place(source, line)}: {problem}" if line is not None else problem)


class TaskFileError(TaskError):
    """A task file that cannot be read as JSONL or CSV: missing, not UTF-8, invalid JSON on a
    line, no header, a row with the wrong number of cells..."""


class TemplateFieldError(TaskError):
    """A row that cannot fill the template: a field it lacks, or a value its format refuses.

    Attributes:
        field: The template's field.
    """

    def __init__(
        self, problem: str, *, field: str, source: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(problem, source=source, line=line)
        self.field = field


class DuplicateTaskIdError(TaskError):
    """Two rows with the same id.

    Attributes:
        task_id: The repeated id.
        first_line: Where the first row with that id is (line or position).
    """

    def __init__(self, task_id: str, *, first_line: int, source: str | None, line: int) -> None:
        first = f"line {first_line}" if source is not None else f"item {first_line}"
        problem = f"duplicate task id {task_id!r} (first used at {first})"
        super().__init__(problem, source=source, line=line)
        self.task_id = task_id
        self.first_line = first_line


def _place(source: str | None, line: int | None) -> str:
    return f"{source}, line {line}" if source is not None else f"task item {line}"


# --- the template ----------------------------------------------------------------------------


class _Unfillable(Exception):
    """Internal: a field a row cannot fill; the caller adds where the row is."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


class PromptTemplate:
    """A prompt with ``{field}`` placeholders, filled from each row.

    The rules are `str.format`'s, with one difference: a placeholder names a field verbatim,
    so ``{user.name}`` and ``{first name}`` are the columns called that (no attribute or index
    lookups). Write ``{{`` and ``}}`` for literal braces. A conversion (``!r``) and a format
    spec (``{score:.2f}``) apply to the value; values are inserted as they are, braces
    included. A null is inserted as nothing (like an empty CSV cell), and a list or object as
    JSON.

    Args:
        text: The template.

    Raises:
        TemplateError: The template is malformed.
    """

    __slots__ = ("_parts", "fields", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._parts = _parse_template(text)
        names = (name for _, name, _, _ in self._parts if name is not None)
        self.fields: tuple[str, ...] = tuple(dict.fromkeys(names))
        """The fields the template reads, each once, in order."""

    def __repr__(self) -> str:
        return f"PromptTemplate({self.text!r})"

    def render(self, row: Mapping[str, Any]) -> str:
        """The template filled from `row`.

        Raises:
            TemplateFieldError: `row` lacks a field, or a value does not fit its format spec.
        """
        try:
            return self._fill(row)
        except _Unfillable as exc:
            raise TemplateFieldError(exc.problem, field=exc.field) from None

    def _fill(self, row: Mapping[str, Any]) -> str:
        out: list[str] = []
        for literal, name, conversion, spec in self._parts:
            out.append(literal)
            if name is None:
                continue
            if name not in row:
                raise _Unfillable(name, f"the row has no field {name!r} ({_fields_of(row)})")
            out.append(_field_text(name, row[name], conversion, spec))
        return "".join(out)


def _fields_of(row: Mapping[str, Any]) -> str:
    if not row:
        return "it has none"
    shown = ", ".join(repr(name) for name in itertools.islice(row, 20))
    return f"its fields: {shown}" + (", …" if len(row) > 20 else "")


def _parse_template(text: str) -> list[tuple[str, str | None, str | None, str]]:
    if not isinstance(text, str):
        raise TemplateError(f"a template must be text, got {type(text).__name__}")
    try:
        parsed = list(Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"template {text!r}: {exc} (write {{{{ and }}}} for braces)") from None
    parts = []
    for literal, name, spec, conversion in parsed:
        if name is not None and not name:
            raise TemplateError(f"template {text!r}: '{{}}' needs a field name, e.g. {{prompt}}")
        if conversion not in (None, "s", "r", "a"):
            raise TemplateError(f"template {text!r}: unknown conversion '!{conversion}'")
        if spec and ("{" in spec or "}" in spec):
            raise TemplateError(f"template {text!r}: a format spec cannot hold a placeholder")
        parts.append((literal, name, conversion, spec or ""))
    return parts


_CONVERSIONS: dict[str, Callable[[object], str]] = {"s": str, "r": repr, "a": ascii}


def _field_text(name: str, value: Any, conversion: str | None, spec: str) -> str:
    if value is None:
        value = ""
    if conversion is not None:
        value = _CONVERSIONS[conversion](value)
    elif isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and not spec:
        return value
    try:
        return format(value, spec)
    except (ValueError, TypeError) as exc:
        raise _Unfillable(
            name, f"field {name!r}: format ':{spec}' does not fit it ({exc})"
        ) from None


# --- tasks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One task of a batch.

    Attributes:
        id: Stable across runs of the same tasks (see the module's notes on ids); the key a
            resumed batch finds the task's records by.
        prompt: The user prompt the run starts from.
        deps: What the run hands to tools as `RunContext.deps` (``None`` for none).
        row: The row as read (CSV cells are text), for reports and results.
    """

    id: str
    prompt: str
    deps: Any = field(default=None, hash=False)
    row: Mapping[str, Any] = field(default_factory=dict, hash=False)


class _Builder:
    """Rows → tasks for one pass over a source: checks each row, hands out ids."""

    def __init__(self, options: _Options, source: str | None) -> None:
        self._options = options
        self._source = source
        self._ids: dict[str, int] = {}
        self._copies: dict[str, int] = {}

    def task(self, line: int, row: Any) -> Task:
        if not isinstance(row, Mapping):
            self._fail(line, f"expected an object with a prompt, got {_kind(row)}")
        if not all(isinstance(key, str) for key in row):
            self._fail(line, "a row's field names must be text")
        prompt = self._prompt(line, row)
        deps = self._deps(line, row)
        task_id = self._id(line, row, prompt)
        return Task(task_id, prompt, deps, row)

    def _fail(self, line: int, problem: str) -> NoReturn:
        raise TaskError(problem, source=self._source, line=line)

    def _prompt(self, line: int, row: Mapping[str, Any]) -> str:
        template = self._options.template
        if template is not None:
            try:
                prompt = template._fill(row)
            except _Unfillable as exc:
                raise TemplateFieldError(
                    exc.problem, field=exc.field, source=self._source, line=line
                ) from None
        else:
            given = row.get("prompt")
            if given is None:
                self._fail(line, "no 'prompt' field (give each row one, or pass a template)")
            if not isinstance(given, str):
                self._fail(line, f"'prompt' must be text, got {_kind(given)}")
            prompt = given
        if not prompt.strip():
            self._fail(line, "the prompt is empty")
        return prompt

    def _deps(self, line: int, row: Mapping[str, Any]) -> Any:
        deps = row.get(self._options.deps_field)
        if self._source is None or deps is None:
            return deps  # from Python, deps may be any object
        name = self._options.deps_field
        if self._options.deps_as_json and isinstance(deps, str):
            if not deps.strip():
                return None
            try:
                deps = json.loads(deps)
            except ValueError as exc:
                self._fail(line, f"{name!r} must be a JSON object: {exc}")
        if not isinstance(deps, dict):
            self._fail(line, f"{name!r} must be an object, got {_kind(deps)}")
        return deps

    def _id(self, line: int, row: Mapping[str, Any], prompt: str) -> str:
        given = row.get(self._options.id_field)
        if given is None or given == "":
            task_id = self._content_id(row, prompt)
        elif isinstance(given, bool) or not isinstance(given, str | int):
            self._fail(line, f"the id must be text or a whole number, got {_kind(given)}")
        elif isinstance(given, str) and not given.strip():
            self._fail(line, "the id is blank")
        else:
            task_id = str(given)
        first = self._ids.setdefault(task_id, line)
        if first != line:
            raise DuplicateTaskIdError(task_id, first_line=first, source=self._source, line=line)
        return task_id

    def _content_id(self, row: Mapping[str, Any], prompt: str) -> str:
        content = json.dumps(
            [prompt, row],
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
            default=lambda value: f"<{type(value).__qualname__}>",
        )
        digest = "task-" + hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        copies = self._copies[digest] = self._copies.get(digest, 0) + 1
        return digest if copies == 1 else f"{digest}-{copies}"


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "text", type(None): "null", bool: "true/false"}
    return names.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


@dataclass(frozen=True)
class _Options:
    template: PromptTemplate | None
    id_field: str
    deps_field: str
    deps_as_json: bool = False  # CSV cells are text: a deps cell holds a JSON object


class TaskSource:
    """The tasks of a batch, read lazily (and again) each time it is iterated.

    Made by `load_tasks`. Iterating a file twice reads it twice and gives the same tasks;
    a source made from an iterator (not a list) can be iterated once.

    Attributes:
        source: The file's path, or ``None`` for tasks given as an iterable.
    """

    def __init__(
        self, rows: Callable[[], _Rows], options: _Options, *, source: str | None, once: bool
    ) -> None:
        self._rows = rows
        self._options = options
        self.source = source
        self._once = once
        self._used = False

    def __repr__(self) -> str:
        return f"TaskSource({self.source or 'items'!r})"

    @property
    def template(self) -> PromptTemplate | None:
        """The template that fills each prompt (``None``: rows give their own)."""
        return self._options.template

    def __iter__(self) -> Iterator[Task]:
        if self._once and self._used:
            raise TaskError("these tasks came from an iterator, which reads once; pass a list")
        self._used = True
        return self._tasks()

    def _tasks(self) -> Iterator[Task]:
        builder = _Builder(self._options, self.source)
        for line, row in self._rows():
            yield builder.task(line, row)


def load_tasks(
    source: str | os.PathLike[str] | Iterable[str | Mapping[str, Any]],
    *,
    template: str | PromptTemplate | None = None,
    format: Literal["jsonl", "csv"] | None = None,
    id_field: str = "id",
    deps_field: str = "deps",
) -> TaskSource:
    """The tasks of a batch, from a file or from prompts and dicts.

    Args:
        source: A path to a ``.jsonl``/``.ndjson`` or ``.csv`` file (a string is always a
            path), or an iterable of prompts (strings) and rows (dicts).
        template: Fills each prompt from its row's fields; without one, each row needs a
            ``prompt`` field.
        format: ``"jsonl"`` or ``"csv"`` for a file whose name does not say.
        id_field: The field holding a row's id.
        deps_field: The field holding a row's deps.

    Raises:
        TaskFileError: The file is missing, or its kind is unknown. Errors in rows are raised
            while iterating, when the row is reached.
        TemplateError: The template is malformed.
    """
    compiled = PromptTemplate(template) if isinstance(template, str) else template
    options = _Options(compiled, id_field, deps_field)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        kind = format or _SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise TaskFileError(f"{path}: name a .jsonl or .csv file, or pass format=")
        if not path.is_file():
            raise TaskFileError(f"{path}: no such file")
        if kind == "jsonl":
            return TaskSource(lambda: _jsonl_rows(path), options, source=str(path), once=False)
        options = dataclasses.replace(options, deps_as_json=True)
        return TaskSource(lambda: _csv_rows(path, options), options, source=str(path), once=False)
    items = source
    return TaskSource(lambda: _item_rows(items), options, source=None, once=iter(items) is items)


# --- readers ---------------------------------------------------------------------------------


def _item_rows(items: Iterable[str | Mapping[str, Any]]) -> _Rows:
    for position, item in enumerate(items, start=1):
        yield position, {"prompt": item} if isinstance(item, str) else item


def _jsonl_rows(path: Path) -> _Rows:
    name = str(path)
    with _open(path) as file:
        for number, line in enumerate(_text_lines(file, name), start=1):
            if line.strip():
                yield number, _json_line(line, name, number)


def _json_line(line: str, source: str, number: int) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise TaskFileError(f"invalid JSON: {exc}", source=source, line=number) from None


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise TaskFileError(f"{path}: cannot open ({exc.strerror})") from None


def _text_lines(file: BinaryIO, source: str) -> Iterator[str]:
    """The file's lines, decoded one at a time so a bad byte is blamed on its own line.

    Split on b"\n" only (the line keeps its ending, as csv wants): a U+2028 inside a JSON
    string is not a line break, and no UTF-8 sequence holds the byte 0x0A.
    """
    for number, raw in enumerate(file, start=1):
        # Excel starts its UTF-8 files with a byte-order mark.
        yield _decoded(raw.removeprefix(_BOM) if number == 1 else raw, source, number)


def _decoded(raw: bytes, source: str, number: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TaskFileError("not UTF-8 text", source=source, line=number) from None


def _csv_rows(path: Path, options: _Options) -> _Rows:
    name = str(path)
    with _open(path) as file:
        # strict: an unclosed quote is an error, not a field that swallows the rest of the file.
        reader = csv.reader(_text_lines(file, name), strict=True)
        header = _csv_header(_next_record(reader, name, 1), name, options)
        start = reader.line_num + 1
        while (record := _next_record(reader, name, start)) is not None:
            if any(record):  # blank lines, and Excel's empty rows (",,,"), are skipped
                if len(record) != len(header):
                    problem = f"{len(record)} cells where the header has {len(header)}"
                    raise TaskFileError(problem, source=name, line=start)
                yield start, dict(zip(header, record, strict=True))
            start = reader.line_num + 1


def _next_record(reader: Iterator[list[str]], source: str, line: int) -> list[str] | None:
    try:
        return next(reader, None)
    except csv.Error as exc:
        raise TaskFileError(f"not valid CSV: {exc}", source=source, line=line) from None


def _csv_header(record: list[str] | None, source: str, options: _Options) -> list[str]:
    if not record or not any(record):
        problem = "no header row: the first line must name the columns"
        raise TaskFileError(problem, source=source, line=1)
    seen: set[str] = set()
    for column, name in enumerate(record, start=1):
        if not name:
            raise TaskFileError(f"header column {column} has no name", source=source, line=1)
        if name in seen:
            raise TaskFileError(f"header names {name!r} twice", source=source, line=1)
        seen.add(name)
    needed = options.template.fields if options.template else ("prompt",)
    missing = [field for field in needed if field not in seen]
    if missing:
        columns = ", ".join(map(repr, record))
        problem = f"no column {', '.join(map(repr, missing))} in the header ({columns})"
        hint = "" if options.template else "; name a 'prompt' column, or pass a template"
        raise TaskFileError(problem + hint, source=source, line=1)
    return record
