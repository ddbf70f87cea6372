"""Loading tasks: prompts, dicts, JSONL and CSV; templates; stable ids; errors that say where."""

from __future__ import annotations

import itertools
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

from sfagent.batch._tasks import (
    DuplicateTaskIdError,
    PromptTemplate,
    Task,
    TaskError,
    TaskFileError,
    TemplateError,
    TemplateFieldError,
    load_tasks,
)
from sfagent.exceptions import ConfigurationError, UserError

FIXTURES = Path(__file__).parent / "fixtures"


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def ids(source: Any, **kwargs: Any) -> list[str]:
    return [task.id for task in load_tasks(source, **kwargs)]


# --- from Python ---------------------------------------------------------------------------------


def test_prompts_and_dicts_from_an_iterable() -> None:
    db = object()  # from Python, deps may be any object (a database handle...)
    tasks = list(load_tasks(["What is 2+2?", {"id": "b", "prompt": "Hi", "deps": db}]))
    assert tasks[0].prompt == "What is 2+2?"
    assert tasks[0].row == {"prompt": "What is 2+2?"}
    assert tasks[0].deps is None
    assert tasks[0].id.startswith("task-")
    assert tasks[1] == Task("b", "Hi", db, {"id": "b", "prompt": "Hi", "deps": db})


def test_a_string_item_fills_the_prompt_field_of_a_template() -> None:
    (task,) = load_tasks(["Paris"], template="Describe {prompt} in one line.")
    assert task.prompt == "Describe Paris in one line."


def test_task_is_frozen_and_hashable_by_id_and_prompt() -> None:
    task = Task("a", "p", {"k": 1}, {"prompt": "p"})
    with pytest.raises(AttributeError):
        task.id = "b"  # type: ignore[misc]
    assert hash(task) == hash(Task("a", "p", {"other": 2}, {}))
    assert Task("a", "p").deps is None
    assert Task("a", "p").row == {}


def test_a_list_can_be_read_again_but_an_iterator_only_once() -> None:
    again = load_tasks(["a", "b"])
    assert [t.id for t in again] == [t.id for t in again]
    once = load_tasks(x for x in ["a", "b"])
    assert len(list(once)) == 2
    with pytest.raises(TaskError, match="reads once"):
        iter(once)


def test_items_are_read_lazily() -> None:
    def endless() -> Iterator[str]:
        for n in itertools.count(1):
            yield f"prompt {n}"

    first = list(itertools.islice(load_tasks(endless()), 3))
    assert [t.prompt for t in first] == ["prompt 1", "prompt 2", "prompt 3"]


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("", "task item 2: the prompt is empty"),
        ("  \n", "task item 2: the prompt is empty"),
        ({"text": "hi"}, "task item 2: no 'prompt' field"),
        ({"prompt": 3}, "task item 2: 'prompt' must be text, got a number"),
        (["a"], "task item 2: expected an object with a prompt, got a list"),
        (7, "task item 2: expected an object with a prompt, got a number"),
        ({1: "x", "prompt": "p"}, "field names must be text"),
        ({"prompt": "p", "id": 1.5}, "id must be text or a whole number"),
        ({"prompt": "p", "id": True}, "id must be text or a whole number"),
        ({"prompt": "p", "id": "  "}, "the id is blank"),
    ],
)
def test_bad_items_name_their_position(item: Any, match: str) -> None:
    with pytest.raises(TaskError, match=match) as caught:
        list(load_tasks(["fine", item]))
    assert caught.value.source is None
    assert caught.value.line == 2
    assert isinstance(caught.value, UserError)


# --- JSONL ---------------------------------------------------------------------------------------


def test_jsonl_with_unicode_blank_lines_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    lines = [
        '{"id": "zh", "prompt": "北京今天天气怎么样？🌤", "deps": {"city": "北京"}}',
        "",
        '{"id": 7, "prompt": "line\\u2028separator stays inside"}',
        "   ",
        '{"prompt": "no id"}',
    ]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n\r\n\n")
    tasks = list(load_tasks(path))
    assert [t.id for t in tasks[:2]] == ["zh", "7"]
    assert tasks[0].prompt == "北京今天天气怎么样？🌤"
    assert tasks[0].deps == {"city": "北京"}
    assert tasks[1].prompt == "line\u2028separator stays inside"
    assert tasks[2].id.startswith("task-")
    assert len(tasks) == 3


def test_a_unicode_line_separator_in_raw_json_text_does_not_split_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"prompt": "a\u2028b"}\n', encoding="utf-8")  # unescaped U+2028
    (task,) = load_tasks(path)
    assert task.prompt == "a\u2028b"


@pytest.mark.parametrize(
    ("content", "line", "match", "error"),
    [
        (b'{"prompt": "ok"}\n{"prompt": "x",}\n', 2, "invalid JSON", TaskFileError),
        (
            b'{"prompt": "ok"}\n\n\n[1, 2]\n',
            4,
            "expected an object with a prompt, got a list",
            TaskError,
        ),
        (b'"just a string"\n', 1, "got text", TaskError),
        (b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n', 2, "not UTF-8", TaskFileError),
        (b'{"prompt": ""}\n', 1, "the prompt is empty", TaskError),
        (b'{"question": "q"}\n', 1, "no 'prompt' field", TaskError),
        (b'{"prompt": "p", "deps": [1]}\n', 1, "'deps' must be an object, got a list", TaskError),
        (b'{"prompt": "p", "deps": "{}"}\n', 1, "'deps' must be an object, got text", TaskError),
    ],
)
def test_bad_jsonl_lines_name_file_and_line(
    tmp_path: Path, content: bytes, line: int, match: str, error: type[TaskError]
) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(content)
    with pytest.raises(error, match=match) as caught:
        list(load_tasks(path))
    assert caught.value.source == str(path)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"{path}, line {line}: ")


def test_a_bad_line_is_raised_when_reached(tmp_path: Path) -> None:
    rows = [{"prompt": f"task {n}"} for n in range(10_000)]
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    with path.open("a", encoding="utf-8") as file:
        file.write("{broken\n")
    source = load_tasks(path)
    first = list(itertools.islice(source, 5))  # streaming: no need to read to the end first
    assert [t.prompt for t in first] == [f"task {n}" for n in range(5)]
    with pytest.raises(TaskFileError, match="line 10001: invalid JSON"):
        for _ in source:
            pass


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"id": "a", "prompt": "1"}\n{"id": "b", "prompt": "2"}\n\n{"id": "a", "prompt": "3"}\n'
    )
    with pytest.raises(DuplicateTaskIdError) as caught:
        list(load_tasks(path))
    error = caught.value
    assert (error.task_id, error.first_line, error.line) == ("a", 1, 4)
    assert str(error) == f"{path}, line 4: duplicate task id 'a' (first used at line 1)"


def test_a_number_id_and_its_text_are_the_same_id() -> None:
    with pytest.raises(DuplicateTaskIdError, match=r"'7' \(first used at item 1\)"):
        list(load_tasks([{"id": 7, "prompt": "a"}, {"id": "7", "prompt": "b"}]))


# --- CSV -----------------------------------------------------------------------------------------


def test_csv_exported_by_excel(tmp_path: Path) -> None:
    # BOM, CRLF rows, a quoted cell with a comma, one with a newline, doubled quotes, JSON deps,
    # and the empty ",,," rows Excel leaves at the end.
    path = shutil.copy(FIXTURES / "excel_export.csv", tmp_path / "export.csv")
    tasks = list(load_tasks(path, template="Weather in {city}? Notes: {notes}"))
    assert [t.id for t in tasks] == ["bj", "sh"]
    assert tasks[0].prompt == "Weather in Beijing, China? Notes: first line\nsecond line"
    assert tasks[0].deps is None
    assert tasks[1].prompt == 'Weather in 上海 🌆? Notes: she said "hi"'
    assert tasks[1].deps == {"unit": "C"}
    assert tasks[1].row == {
        "id": "sh",
        "city": "上海 🌆",
        "notes": 'she said "hi"',
        "deps": '{"unit": "C"}',
    }
    assert list(tasks[0].row) == ["id", "city", "notes", "deps"]  # the BOM is not in the name


def test_csv_line_numbers_count_multiline_cells(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('prompt,id\n"a\nb\nc",x\n\n"",y\n', encoding="utf-8")
    with pytest.raises(TaskError, match=r"line 6: the prompt is empty"):
        list(load_tasks(path))


def test_csv_with_a_prompt_column_and_blank_trailing_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("prompt\nhello\nwörld\n\n\n", encoding="utf-8")
    assert [t.prompt for t in load_tasks(path)] == ["hello", "wörld"]


@pytest.mark.parametrize(
    ("content", "template", "line", "match"),
    [
        ("", None, 1, "no header row"),
        ("\n\nprompt\nx\n", None, 1, "no header row"),
        (
            "What is 2+2?,4\nfoo,bar\n",
            "{question}",
            1,
            r"no column 'question' in the header \('What is 2\+2\?', '4'\)",
        ),
        ("question,answer\nq,a\n", None, 1, "name a 'prompt' column, or pass a template"),
        ("prompt,prompt\na,b\n", None, 1, "names 'prompt' twice"),
        ("prompt,,x\na,b,c\n", None, 1, "column 2 has no name"),
        ("prompt,id\na,1\nb,2,3\n", None, 3, "3 cells where the header has 2"),
        ("prompt,id\na,1\nb\n", None, 3, "1 cells where the header has 2"),
        ('prompt,id\na,1\n"unclosed,2\nc,3\n', None, 3, "not valid CSV"),
        ('prompt,deps\na,{"x": \n', None, 2, "'deps' must be a JSON object"),
        ("prompt,deps\na,[1]\n", None, 2, "'deps' must be an object, got a list"),
    ],
)
def test_bad_csv_names_file_and_line(
    tmp_path: Path, content: str, template: str | None, line: int, match: str
) -> None:
    path = tmp_path / "tasks.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TaskError, match=match) as caught:
        list(load_tasks(path, template=template))
    assert caught.value.source == str(path)
    assert caught.value.line == line


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_a_bad_byte_is_blamed_on_its_own_line(tmp_path: Path, suffix: str) -> None:
    # Far past the first read-ahead buffer, so the line is not the buffer's.
    row = '"p{}"\n' if suffix == "csv" else '{{"prompt": "p{}"}}\n'
    head = "prompt\n" if suffix == "csv" else ""
    path = tmp_path / f"big.{suffix}"
    with path.open("wb") as file:
        file.write(head.encode())
        file.writelines(row.format(n).encode() for n in range(19_999))
        file.write(row.format("café").encode("latin-1"))
    with pytest.raises(TaskFileError, match="not UTF-8") as caught:
        list(load_tasks(path))
    assert caught.value.line == 20_000 + len(head.splitlines())


# --- files in general ----------------------------------------------------------------------------


def test_file_kind_comes_from_the_name_or_format(tmp_path: Path) -> None:
    text = tmp_path / "tasks.txt"
    text.write_text('{"prompt": "p"}\n')
    with pytest.raises(TaskFileError, match=r"\.jsonl or \.csv"):
        load_tasks(text)
    assert [t.prompt for t in load_tasks(text, format="jsonl")] == ["p"]
    upper = tmp_path / "TASKS.NDJSON"
    upper.write_text('{"prompt": "q"}\n')
    assert [t.prompt for t in load_tasks(str(upper))] == ["q"]  # a string is a path


def test_a_missing_file_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match="no such file"):
        load_tasks(tmp_path / "nope.jsonl")


def test_a_file_deleted_before_reading(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"prompt": "p"}])
    source = load_tasks(path)
    path.unlink()
    with pytest.raises(TaskFileError, match="cannot open"):
        list(source)


def test_custom_id_and_deps_fields(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"uid": "u1", "prompt": "p", "ctx": {"a": 1}}])
    (task,) = load_tasks(path, id_field="uid", deps_field="ctx")
    assert (task.id, task.deps) == ("u1", {"a": 1})


# --- stable ids ----------------------------------------------------------------------------------


def test_the_same_file_gives_the_same_ids(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"prompt": f"p{n}"} for n in range(50)])
    first = ids(path)
    source = load_tasks(path)
    assert first == ids(path) == [t.id for t in source] == [t.id for t in source]
    assert len(set(first)) == 50
    assert all(len(i) == len("task-") + 16 for i in first)


def test_ids_follow_content_not_position(tmp_path: Path) -> None:
    rows = [{"prompt": f"question {n}", "label": n % 3} for n in range(20)]
    before = dict(zip(ids(rows), map(json.dumps, rows), strict=True))
    changed = list(rows)
    random.Random(7).shuffle(changed)
    changed.insert(5, {"prompt": "a new one"})
    del changed[12]
    after = dict(zip(ids(changed), map(json.dumps, changed), strict=True))
    for task_id, row in after.items():
        if task_id in before:
            assert before[task_id] == row  # an id never moves to another row
    assert len(set(before) & set(after)) == 19


def test_changing_a_row_or_the_template_changes_its_id() -> None:
    rows = [{"q": "a", "extra": 1}, {"q": "b"}]
    base = ids(rows, template="{q}")
    edited = ids([{"q": "a", "extra": 2}, {"q": "b"}], template="{q}")
    assert edited[0] != base[0]
    assert edited[1] == base[1]
    assert set(ids(rows, template="Q: {q}")).isdisjoint(base)
    # column order does not matter
    assert ids([{"extra": 1, "q": "a"}], template="{q}") == base[:1]


def test_identical_rows_get_numbered_copies() -> None:
    got = ids(["same", "other", "same", "same"])
    assert got[2] == got[0] + "-2"
    assert got[3] == got[0] + "-3"
    assert len(set(got)) == 4


def test_explicit_and_generated_ids_mix(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,prompt\nfirst,a\n,b\n42,c\n", encoding="utf-8")
    got = ids(path)
    assert got[0] == "first"
    assert got[1].startswith("task-")
    assert got[2] == "42"


def test_deps_that_json_cannot_encode_still_get_an_id() -> None:
    class Handle:
        pass

    got = ids([{"prompt": "p", "deps": Handle()}, {"prompt": "p", "deps": Handle()}])
    assert got[1] == got[0] + "-2"
    assert got == ids([{"prompt": "p", "deps": Handle()}, {"prompt": "p", "deps": Handle()}])


# --- templates -----------------------------------------------------------------------------------


def test_template_fields_and_rendering() -> None:
    template = PromptTemplate("{a} {{literal}} {b:>4}|{c!r} {d} {e} {user.name} {first name} {a}")
    assert template.fields == ("a", "b", "c", "d", "e", "user.name", "first name")
    row = {
        "a": "{x}",
        "b": "y",
        "c": "z",
        "d": {"k": ["中", 1]},
        "e": None,
        "user.name": "Ada",
        "first name": "Grace",
    }
    assert template.render(row) == '{x} {literal}    y|\'z\' {"k": ["中", 1]}  Ada Grace {x}'
    assert repr(PromptTemplate("{a}")) == "PromptTemplate('{a}')"


def test_format_specs_apply_to_values() -> None:
    assert PromptTemplate("{n:.2f} {n:05.1f}").render({"n": 3.14159}) == "3.14 003.1"
    with pytest.raises(TemplateFieldError, match=r"field 'n': format ':\.2f'") as caught:
        PromptTemplate("{n:.2f}").render({"n": "text"})  # CSV cells are text
    assert caught.value.field == "n"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", "Single '{'"),
        ("oops }", "Single '}'"),
        ("{}", "needs a field name"),
        ("{a!x}", "unknown conversion"),
        ("{a:{w}}", "cannot hold a placeholder"),
    ],
)
def test_malformed_templates(text: str, match: str) -> None:
    with pytest.raises(TemplateError, match=match) as caught:
        PromptTemplate(text)
    assert isinstance(caught.value, ConfigurationError)
    with pytest.raises(TemplateError):
        load_tasks(["x"], template=text)


def test_a_missing_field_names_row_and_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"name": "a"}, {"nmae": "b"}])
    with pytest.raises(TemplateFieldError) as caught:
        list(load_tasks(path, template="Hello {name}"))
    error = caught.value
    assert (error.field, error.line, error.source) == ("name", 2, str(path))
    assert str(error) == f"{path}, line 2: the row has no field 'name' (its fields: 'nmae')"


def test_a_template_that_fills_to_nothing_is_an_empty_prompt() -> None:
    with pytest.raises(TaskError, match="item 1: the prompt is empty"):
        list(load_tasks([{"x": " "}], template="{x}"))


def test_render_outside_a_batch() -> None:
    with pytest.raises(TemplateFieldError, match=r"^the row has no field 'b'") as caught:
        PromptTemplate("{a}{b}").render({"a": 1})
    assert caught.value.line is None


_names = st.text(st.characters(codec="utf-8", exclude_characters="{}[]:!"), min_size=1)
_text = st.text(st.characters(codec="utf-8"))


@given(pieces=st.lists(st.tuples(_text, _names, _text), max_size=6), tail=_text)
def test_any_values_fill_any_template(pieces: list[tuple[str, str, str]], tail: str) -> None:
    # Literal text escaped as {{ }}, field values holding braces, quotes, newlines, anything:
    # the values land verbatim, and nothing in a value is read as a placeholder.
    def escape(text: str) -> str:
        return text.replace("{", "{{").replace("}", "}}")

    template = "".join(escape(lit) + "{" + name + "}" for lit, name, _ in pieces) + escape(tail)
    row = {name: value for _, name, value in pieces}
    expected = "".join(lit + row[name] for lit, name, _ in pieces) + tail
    assert PromptTemplate(template).render(row) == expected


@given(values=st.lists(_text.filter(str.strip), min_size=1, max_size=5))
def test_any_values_make_tasks(values: list[str]) -> None:
    rows = [{"v": v} for v in values]
    tasks = list(load_tasks(rows, template="<{v}>"))
    assert [t.prompt for t in tasks] == [f"<{v}>" for v in values]
    assert len({t.id for t in tasks}) == len(values)
