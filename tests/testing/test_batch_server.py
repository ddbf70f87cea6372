"""The batch API emulation, driven with plain httpx: the docs' rules, the clock, wrapping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sfagent.testing.batch_server import BatchServer
from sfagent.testing.server import Reply

pytestmark = pytest.mark.timeout(30)

MODEL = "Qwen/Qwen3-8B"
ENVELOPE = {"code": 20000, "message": "Ok", "status": True}


def line(custom_id: str, model: str = MODEL, last_role: str = "user", **body: Any) -> str:
    messages = [{"role": "system", "content": "Be brief."}, {"role": last_role, "content": "Hi"}]
    entry = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions"}
    entry["body"] = {"model": model, "messages": messages, **body}
    return json.dumps(entry)


@pytest.fixture
def server() -> Iterator[BatchServer]:
    with BatchServer(polls_per_step=None) as srv:
        yield srv


@pytest.fixture
def http(server: BatchServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        yield client


def upload(http: httpx.Client, text: str) -> httpx.Response:
    files = {"file": ("requests.jsonl", text.encode(), "application/jsonl")}
    return http.post("/files", files=files, data={"purpose": "batch"})


def submit(http: httpx.Client, text: str, **extra: Any) -> dict[str, Any]:
    file_id = upload(http, text).json()["data"]["id"]
    body = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    answer = http.post("/batches", json=body | extra)
    assert answer.status_code == 200, answer.text
    batch: dict[str, Any] = answer.json()
    return batch


def test_upload_is_wrapped_as_the_docs_show(server: BatchServer, http: httpx.Client) -> None:
    answer = upload(http, line("a") + "\n" + line("b") + "\n")
    assert answer.status_code == 200
    payload = answer.json()
    assert {k: payload[k] for k in ENVELOPE} == ENVELOPE
    data = payload["data"]
    assert data["id"].startswith("file-")
    assert data["object"] == "file"
    assert data["purpose"] == "batch"
    assert data["filename"] == "requests.jsonl"
    assert isinstance(data["createdAt"], int)
    assert data["bytes"] > 0
    assert server.uploads == [data["id"]]
    assert server.file_text(data["id"]).splitlines() == [line("a"), line("b")]


def test_create_get_list_are_plain_by_default(server: BatchServer, http: httpx.Client) -> None:
    batch = submit(http, line("a"), metadata={"sfagent_job": "j"})
    assert batch["object"] == "batch"
    assert batch["status"] == "in_queue"
    assert batch["request_counts"] is None
    assert batch["metadata"] == {"sfagent_job": "j"}
    assert batch["expires_at"] - batch["created_at"] == 24 * 3600
    assert http.get(f"/batches/{batch['id']}").json()["id"] == batch["id"]
    listed = http.get("/batches").json()
    assert listed["object"] == "list"
    assert [b["id"] for b in listed["data"]] == [batch["id"]]
    assert server.created[0]["input_file_id"] == batch["input_file_id"]


@pytest.mark.parametrize("wrap", ["all", "none"])
def test_wrap_options(wrap: Any) -> None:
    with BatchServer(wrap=wrap) as server, httpx.Client(base_url=server.base_url) as http:
        uploaded = upload(http, line("a")).json()
        assert ("data" in uploaded and "code" in uploaded) == (wrap == "all")
        file_id = uploaded["data"]["id"] if wrap == "all" else uploaded["id"]
        body = {
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        }
        created = http.post("/batches", json=body).json()
        assert ("code" in created) == (wrap == "all")


def test_manual_progress_and_results(server: BatchServer, http: httpx.Client) -> None:
    batch = submit(http, line("a") + "\n\n" + line("b"))
    assert http.get(f"/batches/{batch['id']}").json()["status"] == "in_queue"  # no auto steps
    assert server.advance(batch["id"]) == "in_progress"
    assert server.batch(batch["id"])["request_counts"] == {"total": 2, "completed": 0, "failed": 0}
    assert server.advance(batch["id"]) == "finalizing"
    assert server.advance(batch["id"]) == "completed"
    done = http.get(f"/batches/{batch['id']}").json()
    assert done["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
    assert done["completed_at"] is not None
    assert done["error_file_id"] is None
    content = http.get(f"/files/{done['output_file_id']}/content")
    lines = [json.loads(text) for text in content.text.splitlines()]
    assert [entry["custom_id"] for entry in lines] == ["a", "b"]
    assert lines[0]["response"]["status_code"] == 200
    assert lines[0]["error"] is None
    assert lines[0]["response"]["body"]["choices"][0]["message"]["content"] == "Answer to: Hi"
    assert server.advance(batch["id"]) == "completed"  # finished batches stay


def test_auto_progress_every_n_polls() -> None:
    with BatchServer(polls_per_step=2) as server, httpx.Client(base_url=server.base_url) as http:
        batch = submit(http, line("a"))
        seen = [http.get(f"/batches/{batch['id']}").json()["status"] for _ in range(6)]
    assert seen == [
        "in_queue",
        "in_progress",
        "in_progress",
        "finalizing",
        "finalizing",
        "completed",
    ]


def test_responder_errors_go_to_the_error_file() -> None:
    def responder(custom_id: str, body: dict[str, Any]) -> Reply:
        if custom_id == "b":
            return Reply.error(400, {"code": 20015, "message": "too long", "data": None})
        return Reply(text=f"{body['model']} says hi")

    server = BatchServer(responder=responder, polls_per_step=None)
    with server, httpx.Client(base_url=server.base_url) as http:
        batch = submit(http, line("a") + "\n" + line("b"), replace={"model": "x/Y"})
        server.run(batch["id"])
        done = server.batch(batch["id"])
        output = server.file_text(done["output_file_id"])
        errors = server.file_text(done["error_file_id"])
    assert (
        json.loads(output)["response"]["body"]["choices"][0]["message"]["content"] == "x/Y says hi"
    )
    failed = json.loads(errors)
    assert failed["custom_id"] == "b"
    assert failed["response"]["status_code"] == 400
    assert failed["response"]["body"]["code"] == 20015
    assert done["request_counts"] == {"total": 2, "completed": 1, "failed": 1}


def test_cancel(server: BatchServer, http: httpx.Client) -> None:
    batch = submit(http, line("a"))
    cancelling = http.post(f"/batches/{batch['id']}/cancel").json()
    assert cancelling["status"] == "cancelling"
    assert cancelling["cancelling_at"] is not None
    assert server.advance(batch["id"]) == "cancelled"
    done = server.batch(batch["id"])
    assert json.loads(server.file_text(done["error_file_id"]))["error"]["code"] == "batch_cancelled"
    refused = http.post(f"/batches/{batch['id']}/cancel")
    assert refused.status_code == 400
    assert "cancelled" in refused.json()["message"]


def test_expiry_on_the_clock(server: BatchServer, http: httpx.Client) -> None:
    batch = submit(http, line("a"))
    server.advance(batch["id"])
    server.advance_clock(24 * 3600 - 1)
    assert server.batch(batch["id"])["status"] == "in_progress"
    server.advance_clock(1)
    done = http.get(f"/batches/{batch['id']}").json()
    assert done["status"] == "expired"
    assert done["expired_at"] == server.now
    assert json.loads(server.file_text(done["error_file_id"]))["error"]["code"] == "batch_expired"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\n".join(line(f"t{i}") for i in range(5001)), "5001 lines; at most 5000"),
        (line("a") + "\n" + line("b", model="deepseek-ai/DeepSeek-V3"), "one model per file"),
        (line("a") + "\n" + line("a"), "line 2: custom_id 'a' is not unique"),
        (
            line("a") + "\n" + line("b", last_role="assistant"),
            "line 2: messages must end with a user",
        ),
        (line("a") + "\n{not json", "line 2 is not JSON"),
        (json.dumps({"body": {"model": MODEL, "messages": []}}), "line 1 has no custom_id"),
        (json.dumps({"custom_id": "a", "body": {"model": MODEL}}), "body.messages is required"),
        ("", "no lines"),
    ],
)
def test_line_validation(server: BatchServer, http: httpx.Client, text: str, message: str) -> None:
    answer = upload(http, text)
    assert answer.status_code == 400
    assert message in answer.json()["message"]
    assert answer.json()["code"] == 20015
    assert server.uploads == []


def test_5000_lines_are_accepted(http: httpx.Client) -> None:
    assert upload(http, "\n".join(line(f"t{i}") for i in range(5000))).status_code == 200


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"completion_window": "23h"}, "24h to 336h"),
        ({"completion_window": "337h"}, "24h to 336h"),
        ({"endpoint": "/v1/embeddings"}, "endpoint"),
        ({"input_file_id": "file-nope"}, "does not exist"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "16 pairs"),
        ({"metadata": {"k": "v" * 513}}, "512"),
    ],
)
def test_create_validation(
    server: BatchServer, http: httpx.Client, change: dict[str, Any], message: str
) -> None:
    file_id = upload(http, line("a")).json()["data"]["id"]
    body = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "336h",
    }
    answer = http.post("/batches", json=body | change)
    assert answer.status_code == 400
    assert message in answer.json()["message"]
    assert server.created == []


def test_upload_needs_purpose_batch(http: httpx.Client) -> None:
    files = {"file": ("r.jsonl", line("a").encode(), "application/jsonl")}
    answer = http.post("/files", files=files, data={"purpose": "fine-tune"})
    assert answer.status_code == 400
    assert "purpose" in answer.json()["message"]
    assert http.post("/files", json={"purpose": "batch"}).status_code == 400


def test_list_pages_newest_first(server: BatchServer, http: httpx.Client) -> None:
    ids = []
    for _ in range(3):
        server.advance_clock(10)
        ids.append(submit(http, line("a"))["id"])
    first = http.get("/batches", params={"limit": 2}).json()
    assert [b["id"] for b in first["data"]] == ids[::-1][:2]
    assert first["has_more"]
    rest = http.get("/batches", params={"limit": 2, "after": first["last_id"]}).json()
    assert [b["id"] for b in rest["data"]] == [ids[0]]
    assert not rest["has_more"]


def test_unknown_ids_and_paths(http: httpx.Client) -> None:
    assert http.get("/batches/batch_nope").status_code == 404
    assert http.get("/files/file-nope/content").status_code == 404
    assert http.delete("/batches").status_code == 404


def test_fail_next_and_chat_completions_still_served(
    server: BatchServer, http: httpx.Client
) -> None:
    server.fail_next(Reply.error(503, {"code": 50505, "message": "busy", "data": None}))
    assert http.get("/batches").status_code == 503
    assert http.get("/batches").status_code == 200
    server.add(Reply(text="online"))
    chat = http.post(
        "/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    )
    assert chat.json()["choices"][0]["message"]["content"] == "online"
    assert [r.path for r in server.requests][-1] == "/v1/chat/completions"


def test_api_key_is_required_when_set() -> None:
    with BatchServer(api_key="sk-right") as server, httpx.Client(base_url=server.base_url) as http:
        assert http.get("/batches").status_code == 401
        answer = http.get("/batches", headers={"Authorization": "Bearer sk-right"})
        assert answer.status_code == 200
        assert all("authorization" not in r.headers for r in server.requests)
    assert "sk-right" not in repr(server)
