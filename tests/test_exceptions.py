"""Every sfagent error pickles with its attributes: a durable engine records a failed step or
run that way, and the process that reads it back must get the same error."""

from __future__ import annotations

import inspect
import pickle

import pytest

import sfagent.exceptions as errors
from sfagent.exceptions import (
    APIStatusError,
    BudgetExceeded,
    ModelRequestError,
    RateLimitError,
    SFAgentError,
    ToolRetriesExceeded,
)

ALL_ERRORS = sorted(
    (c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, SFAgentError)),
    key=lambda c: c.__name__,
)


def test_an_error_with_keyword_attributes_comes_back_whole() -> None:
    cause = RateLimitError("slow down", status_code=429, code=50603, trace_id="t-1", body={"x": 1})
    cause.retry_after = 2.5
    error = ModelRequestError("the request failed", error=cause, result={"partial": True})
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is ModelRequestError
    assert str(back) == str(error)
    assert back.result == {"partial": True}
    assert type(back.error) is RateLimitError
    assert (back.error.status_code, back.error.code, back.error.retry_after) == (429, 50603, 2.5)
    assert str(back.error) == "HTTP 429, code 50603: slow down (trace id t-1)"


@pytest.mark.parametrize(
    "error",
    [
        BudgetExceeded("over the time limit", budget="time", result=None),
        ToolRetriesExceeded("gave up", tool_name="lookup"),
        APIStatusError("bad gateway", status_code=502),
    ],
    ids=lambda e: type(e).__name__,
)
def test_attributes_survive(error: SFAgentError) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert back.__dict__ == error.__dict__
    assert back.args == error.args


def test_every_error_class_in_the_module_pickles() -> None:
    assert len(ALL_ERRORS) > 20
    for cls in ALL_ERRORS:
        error = cls.__new__(cls)
        error.args = ("message",)
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is cls
        assert back.args == ("message",)


def test_a_run_failure_of_an_api_error_class_pickles_as_both() -> None:
    # A run's failed request is a class made at run time (a ModelRequestError and the API
    # error's class at once), which pickle cannot find by name.
    cause = errors.AuthenticationError("bad key", status_code=401, trace_id="t-2")
    error = errors.model_request_error(cause, message="the run failed: bad key", result=[1])
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert isinstance(back, ModelRequestError)
    assert isinstance(back, errors.AuthenticationError)
    assert (str(back), back.result, back.status_code, back.trace_id) == (
        "the run failed: bad key", [1], 401, "t-2",
    )  # fmt: skip
    assert type(back.error) is errors.AuthenticationError
