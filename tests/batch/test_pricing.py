"""Prices: exact Decimal costs, unknown models cost None, user tables override, budgets stop."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

from sfagent.batch.pricing import (
    SILICONFLOW_PRICES,
    Budget,
    Price,
    PriceTable,
    PriceTableError,
    UnknownModelError,
)
from sfagent.exceptions import ConfigurationError
from sfagent.messages import Usage
from sfagent.usage import RunUsage

FIXTURES = Path(__file__).parent / "fixtures"


@dataclasses.dataclass
class Counts:
    """Any object with the two counts will do."""

    prompt_tokens: int
    completion_tokens: int


# --- Price -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (2, Decimal(2)),
        ("4.13", Decimal("4.13")),
        (Decimal("0.35"), Decimal("0.35")),
        (0.35, Decimal("0.35")),  # the float's shortest repr, not its binary expansion
        (1.26, Decimal("1.26")),
        (0, Decimal(0)),
    ],
)
def test_price_holds_decimals(given: Any, expected: Decimal) -> None:
    price = Price(given, given)
    assert price.input_per_million == expected
    assert type(price.input_per_million) is Decimal
    assert price.output_per_million == expected


def test_price_defaults_and_immutability() -> None:
    price = Price(2, 8)
    assert price.batch_discount == Decimal("0.5")
    assert price.currency == "CNY"
    assert price.cached_input_per_million is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        price.input_per_million = Decimal(1)  # type: ignore[misc]
    assert Price(2, 8) == Price("2", "8.0")
    assert dataclasses.replace(price, currency="USD") == Price(2, 8, currency="USD")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_per_million": -1, "output_per_million": 1}, "at least 0"),
        ({"input_per_million": "abc", "output_per_million": 1}, "must be a number"),
        ({"input_per_million": True, "output_per_million": 1}, "must be a number"),
        ({"input_per_million": None, "output_per_million": 1}, "must be a number"),
        ({"input_per_million": float("nan"), "output_per_million": 1}, "finite"),
        ({"input_per_million": "Infinity", "output_per_million": 1}, "finite"),
        ({"input_per_million": 1, "output_per_million": 1, "batch_discount": 2}, "up to 1"),
        ({"input_per_million": 1, "output_per_million": 1, "batch_discount": -0.5}, "at least 0"),
        ({"input_per_million": 1, "output_per_million": 1, "currency": " "}, "currency"),
        ({"input_per_million": 1, "output_per_million": 1, "cached_input_per_million": -1}, "0"),
    ],
)
def test_bad_prices_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(PriceTableError, match=match) as caught:
        Price(**kwargs)
    assert isinstance(caught.value, ConfigurationError)


# --- cost ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "prompt", "completion", "batch", "expected"),
    [
        ("deepseek-ai/DeepSeek-V3", 1_000_000, 1_000_000, False, "10"),
        ("deepseek-ai/DeepSeek-V3", 1234, 567, False, "0.007004"),
        ("deepseek-ai/DeepSeek-V3", 1234, 567, True, "0.003502"),
        ("deepseek-ai/DeepSeek-R1", 1, 1, False, "0.00002"),
        ("Qwen/Qwen2.5-72B-Instruct", 1, 1, False, "0.00000826"),
        ("Qwen/Qwen2.5-72B-Instruct", 3, 0, True, "0.000006195"),
        ("Qwen/Qwen3-14B", 10**12, 10**12, False, "2500000"),
        ("Qwen/Qwen2.5-7B-Instruct", 50_000, 9_000, False, "0"),
        ("Pro/Qwen/Qwen2.5-7B-Instruct", 50_000, 9_000, False, "0.02065"),
        ("deepseek-ai/DeepSeek-V3", 0, 0, False, "0"),
    ],
)
def test_cost_is_exact(
    model: str, prompt: int, completion: int, batch: bool, expected: str
) -> None:
    cost = SILICONFLOW_PRICES.cost(model, Counts(prompt, completion), batch=batch)
    assert cost == Decimal(expected)
    assert isinstance(cost, Decimal)


@given(
    a=st.integers(0, 10**9),
    b=st.integers(0, 10**9),
    c=st.integers(0, 10**9),
    d=st.integers(0, 10**9),
)
def test_cost_adds_up_without_rounding(a: int, b: int, c: int, d: int) -> None:
    # Per-task costs summed equal the cost of the summed usage: nothing is lost to rounding.
    price = SILICONFLOW_PRICES["Qwen/Qwen2.5-72B-Instruct"]
    assert price.cost(a, b) + price.cost(c, d) == price.cost(a + c, b + d)
    assert price.cost(a, b, batch=True) * 2 == price.cost(a, b)


def test_cost_accepts_run_usage_and_wire_usage() -> None:
    run = RunUsage(requests=3, prompt_tokens=1234, completion_tokens=567, total_tokens=1801)
    wire = Usage(prompt_tokens=1234, completion_tokens=567, total_tokens=1801)
    for usage in (run, wire, run + RunUsage()):
        assert SILICONFLOW_PRICES.cost("deepseek-ai/DeepSeek-V3", usage) == Decimal("0.007004")


def test_an_estimated_usage_still_gets_a_cost() -> None:
    usage = RunUsage(prompt_tokens=100, completion_tokens=100, estimated=True)
    assert SILICONFLOW_PRICES.cost("deepseek-ai/DeepSeek-R1", usage) == Decimal("0.002")


@pytest.mark.parametrize(
    "model",
    [
        "deepseek-ai/deepseek-v3",  # ids are case-sensitive
        "DeepSeek-V3",
        "deepseek-ai/DeepSeek-V3 ",
        "Pro/Qwen/Qwen3-8B",  # a free model's Pro/ twin is not assumed free
        "Qwen/Qwen3-30B-A3B",  # left out: the sources disagree
        "",
    ],
)
def test_an_unknown_model_costs_none(model: str) -> None:
    assert SILICONFLOW_PRICES.cost(model, Counts(10, 10)) is None


def test_cache_hits_are_priced_at_the_cache_rate_when_there_is_one() -> None:
    table = PriceTable({"m": Price(2, 8, cached_input_per_million="0.5"), "plain": Price(2, 8)})
    usage = Usage.model_validate(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 600},
        }
    )
    # 400 misses at 2, 600 hits at 0.5, 10 out at 8
    assert table.cost("m", usage) == Decimal("0.00118")
    assert table.cost("plain", usage) == Decimal("0.00208")  # no cache rate: all at full price
    # RunUsage has no cache counts: every prompt token at full price, never under-counted
    assert table.cost("m", RunUsage(prompt_tokens=1000, completion_tokens=10)) == Decimal("0.00208")


def test_cache_hits_beyond_the_prompt_are_capped() -> None:
    price = Price(2, 8, cached_input_per_million=1)
    assert price.cost(100, 0, cached_tokens=500) == Decimal("0.0001")
    with pytest.raises(ValueError, match="negative"):
        price.cost(-1, 0)


# --- the built-in table --------------------------------------------------------------------------


def test_builtin_table_has_the_common_models() -> None:
    expected = {
        "deepseek-ai/DeepSeek-V3": ("2", "8"),
        "Pro/deepseek-ai/DeepSeek-V3": ("2", "8"),
        "deepseek-ai/DeepSeek-R1": ("4", "16"),
        "Qwen/Qwen2.5-7B-Instruct": ("0", "0"),
        "Qwen/Qwen2.5-72B-Instruct": ("4.13", "4.13"),
        "Qwen/Qwen3-8B": ("0", "0"),
        "Qwen/Qwen3-32B": ("1", "4"),
        "Qwen/Qwen3-235B-A22B": ("2.5", "10"),
        "THUDM/glm-4-9b-chat": ("0", "0"),
        "THUDM/GLM-4-32B-0414": ("1.89", "1.89"),
    }
    for model, (inp, out) in expected.items():
        assert SILICONFLOW_PRICES[model] == Price(inp, out), model
    assert all(p.currency == "CNY" for p in SILICONFLOW_PRICES.values())
    assert all(p.batch_discount == Decimal("0.5") for p in SILICONFLOW_PRICES.values())


def test_the_docstring_says_where_and_when() -> None:
    import sfagent.batch.pricing as pricing

    doc = pricing.__doc__ or ""
    assert "2026-12-01" in doc
    assert "out of date" in doc
    assert "lobe-chat" in doc


# --- tables: merge, override, require ------------------------------------------------------------


def test_with_prices_returns_a_new_table() -> None:
    mine = {"deepseek-ai/DeepSeek-V3": Price(1, 1), "my/model": Price("0.1", "0.2")}
    merged = SILICONFLOW_PRICES.with_prices(mine)
    assert merged["deepseek-ai/DeepSeek-V3"] == Price(1, 1)
    assert merged["my/model"] == Price("0.1", "0.2")
    assert merged["deepseek-ai/DeepSeek-R1"] == SILICONFLOW_PRICES["deepseek-ai/DeepSeek-R1"]
    assert len(merged) == len(SILICONFLOW_PRICES) + 1
    assert SILICONFLOW_PRICES["deepseek-ai/DeepSeek-V3"] == Price(2, 8)  # untouched
    assert "my/model" not in SILICONFLOW_PRICES
    assert (SILICONFLOW_PRICES | mine) == merged
    assert (SILICONFLOW_PRICES | PriceTable(mine)) == merged


def test_a_table_cannot_be_changed_in_place() -> None:
    table: Any = PriceTable({"m": Price(1, 1)})
    with pytest.raises(TypeError):
        table["m"] = Price(2, 2)
    with pytest.raises(TypeError):
        _ = table | 3
    assert repr(table) == "PriceTable(1 models)"


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ({"": Price(1, 1)}, "non-empty"),
        ({"m": (1, 2)}, "must be a Price"),
        ({3: Price(1, 1)}, "id"),
    ],
)
def test_a_table_checks_its_entries(entries: Any, match: str) -> None:
    with pytest.raises(PriceTableError, match=match):
        PriceTable(entries)


def test_require_names_the_nearest_id() -> None:
    assert SILICONFLOW_PRICES.require("Qwen/Qwen3-32B") == Price(1, 4)
    with pytest.raises(UnknownModelError, match="did you mean 'deepseek-ai/DeepSeek-V3'") as caught:
        SILICONFLOW_PRICES.require("deepseek-ai/deepseek-v3")
    assert caught.value.model == "deepseek-ai/deepseek-v3"
    assert caught.value.suggestion == "deepseek-ai/DeepSeek-V3"
    with pytest.raises(UnknownModelError) as typo:
        SILICONFLOW_PRICES.require("Qwen/Qwen2.5-72B-Instuct")
    assert typo.value.suggestion == "Qwen/Qwen2.5-72B-Instruct"
    with pytest.raises(UnknownModelError) as none:
        SILICONFLOW_PRICES.require("openai/gpt-4o")
    assert none.value.suggestion is None
    assert "did you mean" not in str(none.value)


# --- load ----------------------------------------------------------------------------------------


def test_load_from_a_dict_with_file_defaults() -> None:
    table = PriceTable.load(
        {
            "currency": "USD",
            "batch_discount": "0.6",
            "models": {
                "a": {"input_per_million": 1, "output_per_million": 2},
                "b": {"input_per_million": 1, "output_per_million": 2, "currency": "CNY"},
                "c": Price(3, 3),
            },
        }
    )
    assert table["a"] == Price(1, 2, batch_discount="0.6", currency="USD")
    assert table["b"].currency == "CNY"
    assert table["c"] == Price(3, 3)
    assert PriceTable.load({}) == PriceTable()


def test_load_json_keeps_decimals_exact(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    data = {"models": {"x/y": {"input_per_million": 0.35, "output_per_million": 4.13}}}
    path.write_text(json.dumps(data), encoding="utf-8-sig")  # a BOM is tolerated
    table = PriceTable.load(path)
    assert table["x/y"] == Price("0.35", "4.13")
    assert table.cost("x/y", Counts(1, 1)) == Decimal("0.00000448")
    assert PriceTable.load(str(path)) == table


@pytest.mark.skipif(sys.version_info < (3, 11), reason="TOML needs tomllib")
def test_load_toml() -> None:
    table = PriceTable.load(FIXTURES / "prices.toml")
    v3 = table["deepseek-ai/DeepSeek-V3"]
    assert v3 == Price("1.5", 6, cached_input_per_million="0.3")
    assert table["my-org/my-finetune"].batch_discount == 1
    merged = SILICONFLOW_PRICES | table
    assert merged.cost("deepseek-ai/DeepSeek-V3", Counts(10**6, 0)) == Decimal("1.5")
    assert merged.cost("my-org/my-finetune", Counts(10**6, 0), batch=True) == Decimal("0.35")


def test_toml_on_python_3_10_says_to_use_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "version_info", (3, 10, 14, "final", 0))
    with pytest.raises(PriceTableError, match=r"Python 3\.11.*JSON"):
        PriceTable.load(FIXTURES / "prices.toml")


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("p.json", "{not json", r"p\.json: not valid JSON"),
        ("p.json", "[1, 2]", "a 'models' key"),
        ("p.json", '{"modles": {}}', r"unknown keys \['modles'\]"),
        ("p.json", '{"models": [1]}', "'models' must map"),
        ("p.json", '{"models": {"m": 3}}', "model 'm': expected input_per_million"),
        ("p.json", '{"models": {"m": {"input_per_million": 1}}}', "missing output_per_million"),
        (
            "p.json",
            '{"models": {"m": {"input_per_million": 1, "ouput_per_million": 2}}}',
            r"model 'm': unknown keys \['ouput_per_million'\]",
        ),
        (
            "p.json",
            '{"models": {"m": {"input_per_million": "two", "output_per_million": 2}}}',
            "model 'm': input_per_million must be a number",
        ),
        ("p.toml", "models = [", r"p\.toml: not valid TOML"),
        ("p.yaml", "models: {}", r"\.json or \.toml"),
    ],
)
def test_bad_price_files_name_the_file_and_the_problem(
    tmp_path: Path, name: str, content: str, match: str
) -> None:
    if name.endswith(".toml") and sys.version_info < (3, 11):
        pytest.skip("TOML needs tomllib")
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PriceTableError, match=match) as caught:
        PriceTable.load(path)
    assert str(path) in str(caught.value)


def test_unreadable_price_files(tmp_path: Path) -> None:
    with pytest.raises(PriceTableError, match="cannot read"):
        PriceTable.load(tmp_path / "missing.json")
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"models": {"caf\xe9": {}}}')
    with pytest.raises(PriceTableError, match="not UTF-8"):
        PriceTable.load(latin)


# --- budget --------------------------------------------------------------------------------------


def test_budget_stops_starting_once_reached() -> None:
    budget = Budget("1.00")
    assert budget.may_start()
    budget.charge(Decimal("0.60"))
    assert budget.may_start()
    assert budget.remaining == Decimal("0.40")
    budget.charge(Decimal("0.40"))  # exactly reached: stop
    assert not budget.may_start()
    assert budget.remaining == 0
    budget.charge(Decimal("0.25"))  # a task that was running finishes and is still charged
    assert budget.spent == Decimal("1.25")
    assert budget.remaining == 0
    assert not budget.may_start()


def test_running_tasks_finish_past_the_limit() -> None:
    # A runner with two slots: starts while allowed, charges each task when it finishes.
    budget, finished = Budget(10), 0
    running: list[Decimal] = []
    for _ in range(100):
        while len(running) < 2 and budget.may_start():
            running.append(Decimal(3))
        if not running:
            break
        budget.charge(running.pop(0))
        finished += 1
    # 3, 6, 9 finish under the limit with another started each time; the one that takes it to
    # 12 leaves one running, which finishes (15). Nothing starts after the limit is reached.
    assert finished == 5
    assert budget.spent == Decimal(15)


def test_a_zero_budget_starts_nothing() -> None:
    assert not Budget(0).may_start()


@pytest.mark.parametrize("amount", [Decimal(-1), 0.5, 1, Decimal("NaN")])
def test_budget_charges_are_non_negative_decimals(amount: Any) -> None:
    with pytest.raises(ValueError, match="charge"):
        Budget(1).charge(amount)


@pytest.mark.parametrize("limit", [-1, "lots", None])
def test_budget_limit_is_checked(limit: Any) -> None:
    with pytest.raises(PriceTableError):
        Budget(limit)


def test_budget_is_safe_across_threads() -> None:
    budget = Budget(10**6)

    def spend() -> None:
        for _ in range(1000):
            budget.charge(Decimal("0.001"))

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert budget.spent == Decimal("8.000")
    assert "spent=8.000" in repr(budget)
