"""Every error body shape SiliconFlow (and OpenAI-compatible gateways) send, mapped to its error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sfagent.client.error_bodies import (
    MAX_MESSAGE_CHARS,
    error_from_response,
    is_error_reply,
    parse_error_body,
    parse_json_body,
)
from sfagent.exceptions import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    GatewayTimeoutError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
)
from sfagent.messages import ChatCompletion, ChatCompletionChunk

EXPECTED_CLASS = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
    500: InternalServerError,
    502: InternalServerError,
    503: ServiceUnavailableError,
    504: GatewayTimeoutError,
}


def load_error_bodies(fixtures_dir: Path) -> list[dict[str, object]]:
    data = json.loads((fixtures_dir / "error_bodies.json").read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


def test_every_fixture_body_maps_to_its_error(fixtures_dir: Path) -> None:
    entries = load_error_bodies(fixtures_dir)
    assert len(entries) >= 10
    for entry in entries:
        status = entry["status"]
        body = entry["body"]
        assert isinstance(status, int)
        raw = json.dumps(body).encode()
        err = error_from_response(status, raw, trace_id="trace-1")
        assert type(err) is EXPECTED_CLASS[status]
        assert err.status_code == status
        assert err.trace_id == "trace-1"
        assert err.body == body
        if isinstance(body, dict):
            assert err.message == body["message"]
            assert err.code == body.get("code")
        else:
            assert err.message == body
            assert err.code is None
        assert err.message in str(err)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"code":20012,"message":"Model does not exist.","data":null}',
            (20012, "Model does not exist."),
        ),
        ({"code": 50505, "message": "overloaded", "data": "..."}, (50505, "overloaded")),
        ('{"message":"TPM limit reached.","data":null}', (None, "TPM limit reached.")),
        (b'"Api key is invalid"', (None, "Api key is invalid")),
        (b"Api key is invalid", (None, "Api key is invalid")),
        ("404 page not found\n", (None, "404 page not found")),
        (
            {"error": {"message": "pass it back", "type": "invalid_request_error", "code": "x"}},
            ("x", "pass it back"),
        ),
        (
            {"error": {"message": "too long", "code": "context_length_exceeded"}},
            ("context_length_exceeded", "too long"),
        ),
        (
            {"error": {"message": "not a code", "code": "two words"}},
            (None, "not a code"),
        ),
        ({"error": {"message": "quota", "type": "t", "code": 429}}, (429, "quota")),
        ({"error": {"message": "numeric string", "code": "60000"}}, (60000, "numeric string")),
        ({"error": {"type": "only_type"}}, (None, '{"type": "only_type"}')),
        ({"error": "plain inner string"}, (None, "plain inner string")),
        ({"detail": "Not Found"}, (None, "Not Found")),
        ({"code": True, "message": "bool is not a code"}, (None, "bool is not a code")),
        ({"code": 60000, "message": None}, (60000, '{"code": 60000, "message": null}')),
        ({"message": {"nested": 1}}, (None, '{"nested": 1}')),
        ([1, 2], (None, "[1, 2]")),
        (42, (None, "42")),
        (b"", (None, "")),
        (b"   \r\n", (None, "")),
        (None, (None, "")),
        (b"<html><body>Bad Gateway</body></html>", (None, "<html><body>Bad Gateway</body></html>")),
        (b"\xff\xfe garbage", (None, "\ufffd\ufffd garbage")),
    ],
)
def test_parse_error_body_shapes(body: object, expected: tuple[int | None, str]) -> None:
    assert parse_error_body(body) == expected


def test_long_messages_are_cut() -> None:
    code, message = parse_error_body("x" * 10_000)
    assert code is None
    assert len(message) == MAX_MESSAGE_CHARS
    assert message.endswith("…")


def test_empty_body_gets_the_reason_phrase() -> None:
    err = error_from_response(400, b"", trace_id=None)
    assert isinstance(err, BadRequestError)
    assert err.message == "Bad Request (empty error body)"
    assert err.body is None
    assert str(err) == "HTTP 400: Bad Request (empty error body)"


def test_unknown_status_codes() -> None:
    err = error_from_response(418, b"", trace_id=None)
    assert type(err) is APIStatusError
    assert err.message.endswith("(empty error body)")
    odd = error_from_response(599, b"", trace_id="t")
    assert type(odd) is InternalServerError
    assert odd.message == "(empty error body)"
    assert "trace id t" in str(odd)


def test_parse_json_body_passes_parsed_values_through() -> None:
    value = {"a": 1}
    assert parse_json_body(value) is value
    assert parse_json_body(bytearray(b'{"a": 1}')) == {"a": 1}
    assert parse_json_body("not json") == "not json"


CHOICE = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "delta": {"content": "hi"}}


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"code": 50505, "message": "overloaded", "data": None}, True),
        ({"error": {"message": "x", "type": "invalid_request_error"}}, True),
        # where the stream's and the body's old rules disagreed: both now say error
        ({"id": "c1", "choices": [], "code": 50505, "message": "overloaded"}, True),
        ({"id": "c1", "choices": [CHOICE], "error": {"message": "x", "code": 502}}, True),
        # answers
        ({"id": "c1", "choices": [CHOICE]}, False),
        ({"id": "c1", "choices": [CHOICE], "code": 0, "message": "success"}, False),
        ({"id": "c1", "choices": [], "error": None}, False),
        ({"error": "not an object"}, False),
        ({"code": 50505}, False),
        ({}, False),
    ],
)
def test_one_rule_tells_an_error_from_an_answer(payload: dict[str, object], error: bool) -> None:
    assert is_error_reply(ChatCompletion.model_validate(payload)) is error
    assert is_error_reply(ChatCompletionChunk.model_validate(payload)) is error
