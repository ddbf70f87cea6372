"""What a model's tokens cost: SiliconFlow's published prices, or yours, and a money budget.

Prices are in the currency's units (CNY for SiliconFlow) per million tokens, input and output
apart, and are held as `Decimal`: money is never a float here. A model the table does not know
costs ``None``, never a guess, and model ids match exactly (case included): SiliconFlow prices
``Pro/deepseek-ai/DeepSeek-V3`` and ``deepseek-ai/DeepSeek-V3`` as two models, and a free
model's ``Pro/`` twin is not free.

Where the built-in figures come from (taken 2026-12-01, from stored copies of public pages, not
from siliconflow.cn itself, which was out of reach):

- lobehub/lobe-chat, ``src/config/aiModels/siliconcloud.ts`` at commit ``01cf7a8dd990``, a
  transcription of https://siliconflow.cn/zh-cn/models made between late April and early June
  2025 (it lists Qwen3, released 2025-04-28, and models to be retired on 2025-06-05);
- "硅基流动 SiliconFlow API 完整调研" (huasheng.ai), a survey dated 2026-02-08, which agrees for
  DeepSeek-V3 (2 / 8), DeepSeek-R1 (4 / 16) and Qwen3-235B-A22B (2.5 / 10) and adds
  DeepSeek-V3.1 and DeepSeek-R1-0528;
- desirecore/config-center, ``compute/providers/siliconflow.json`` (2026-04), for
  Qwen3-235B-A22B-Instruct-2507;
- SiliconFlow's batch guide (https://docs.siliconflow.cn/cn/userguide/guides/batch): batch
  inference costs 50% less than online, hence ``batch_discount=0.5``.

Qwen3-30B-A3B is left out on purpose: the sources disagree (0.7 / 2.8 against 1.26 / 1.26).
No cache-hit prices are built in (none of the sources gives SiliconFlow's). The figures may be
out of date: SiliconFlow changes prices without notice. Override or extend them::

    prices = SILICONFLOW_PRICES | PriceTable.load("prices.toml")
"""

from __future__ import annotations

import difflib
import json
import os
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any, Protocol, TypeAlias

from sfagent.exceptions import ConfigurationError

__all__ = [
    "SILICONFLOW_PRICES",
    "Budget",
    "Price",
    "PriceTable",
    "PriceTableError",
    "TokenCounts",
    "UnknownModelError",
]

Amount: TypeAlias = "Decimal | int | str | float"
"""A price or a limit as given: floats are read through their shortest repr (``0.35`` is
``Decimal("0.35")``, not the binary float's 53-bit expansion)."""

_MILLION = Decimal(1_000_000)
_HALF = Decimal("0.5")
_PRICE_KEYS = frozenset(
    {
        "input_per_million",
        "output_per_million",
        "cached_input_per_million",
        "batch_discount",
        "currency",
    }
)
_FILE_KEYS = frozenset({"models", "currency", "batch_discount"})


class PriceTableError(ConfigurationError):
    """A price, a price file or a budget limit that cannot be used."""


class UnknownModelError(PriceTableError):
    """A model has no price in the table, where one is required (a money budget needs it).

    Attributes:
        model: The model id asked for.
        suggestion: A known id that differs only in case or a typo, or ``None``.
    """

    def __init__(self, model: str, suggestion: str | None) -> None:
        hint = f" (did you mean {suggestion!r}? ids match exactly)" if suggestion else ""
        super().__init__(f"no price for model {model!r}{hint}; add one to the price table")
        self.model = model
        self.suggestion = suggestion


class TokenCounts(Protocol):
    """What a cost is computed from: `RunUsage`, the wire `Usage`, or any such object.

    An object that also has ``cached_tokens`` (the wire `Usage` does) gets its cache hits
    priced at the cache-hit rate when the price has one.
    """

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...


def _decimal(value: object, what: str) -> Decimal:
    # bool is an int: a price of True is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str | float):
        raise PriceTableError(f"{what} must be a number, got {value!r}")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise PriceTableError(f"{what} must be a number, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise PriceTableError(f"{what} must be a finite number of at least 0, got {value!r}")
    return number


@dataclass(frozen=True, init=False)
class Price:
    """One model's price, per million tokens.

    Attributes:
        input_per_million: Price of a million prompt tokens.
        output_per_million: Price of a million completion tokens (reasoning included).
        batch_discount: The batch API's price as a fraction of the online one (SiliconFlow
            documents half: ``0.5``).
        currency: The currency of both prices, e.g. ``"CNY"``.
        cached_input_per_million: Price of a million prompt tokens served from the cache, or
            ``None`` to price cache hits like any prompt token (never under-counts).
    """

    input_per_million: Decimal
    output_per_million: Decimal
    batch_discount: Decimal
    currency: str
    cached_input_per_million: Decimal | None

    def __init__(
        self,
        input_per_million: Amount,
        output_per_million: Amount,
        *,
        batch_discount: Amount = _HALF,
        currency: str = "CNY",
        cached_input_per_million: Amount | None = None,
    ) -> None:
        discount = _decimal(batch_discount, "batch_discount")
        if discount > 1:
            raise PriceTableError(f"batch_discount is a fraction up to 1, got {batch_discount!r}")
        if not isinstance(currency, str) or not currency.strip():
            raise PriceTableError(f"currency must be a code such as 'CNY', got {currency!r}")
        cached = cached_input_per_million
        # A frozen dataclass: fields are set once, here, after their values are checked.
        set_field = object.__setattr__
        set_field(self, "input_per_million", _decimal(input_per_million, "input_per_million"))
        set_field(self, "output_per_million", _decimal(output_per_million, "output_per_million"))
        set_field(self, "batch_discount", discount)
        set_field(self, "currency", currency)
        set_field(
            self,
            "cached_input_per_million",
            None if cached is None else _decimal(cached, "cached_input_per_million"),
        )

    def cost(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        cached_tokens: int = 0,
        batch: bool = False,
    ) -> Decimal:
        """The exact price of these tokens, unrounded.

        Args:
            prompt_tokens: Prompt tokens, cache hits included.
            completion_tokens: Completion tokens.
            cached_tokens: How many of the prompt tokens were cache hits.
            batch: Priced at the batch API's rate.
        """
        if min(prompt_tokens, completion_tokens, cached_tokens) < 0:
            raise ValueError("token counts cannot be negative")
        cached_rate = self.cached_input_per_million
        hits = 0 if cached_rate is None else min(cached_tokens, prompt_tokens)
        # Enough digits that no product of real token counts and prices is ever rounded.
        with localcontext() as exact:
            exact.prec = 60
            total = (prompt_tokens - hits) * self.input_per_million
            total += completion_tokens * self.output_per_million
            if cached_rate is not None:
                total += hits * cached_rate
            total /= _MILLION
            return total * self.batch_discount if batch else total


class PriceTable(Mapping[str, Price]):
    """Prices by exact model id; immutable: `with_prices` and ``|`` return a new table.

    Args:
        prices: Model id to `Price`, as a mapping or as pairs.
    """

    __slots__ = ("_prices",)

    def __init__(self, prices: Mapping[str, Price] | Iterable[tuple[str, Price]] = ()) -> None:
        items = prices.items() if isinstance(prices, Mapping) else prices
        table: dict[str, Price] = {}
        for model, price in items:
            if not isinstance(model, str) or not model:
                raise PriceTableError(f"a model id must be a non-empty string, got {model!r}")
            if not isinstance(price, Price):
                raise PriceTableError(f"the price of {model!r} must be a Price, got {price!r}")
            table[model] = price
        self._prices = table

    def __getitem__(self, model: str) -> Price:
        return self._prices[model]

    def __iter__(self) -> Iterator[str]:
        return iter(self._prices)

    def __len__(self) -> int:
        return len(self._prices)

    def __repr__(self) -> str:
        return f"PriceTable({len(self)} models)"

    def __or__(self, other: Mapping[str, Price]) -> PriceTable:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self.with_prices(other)

    def with_prices(self, prices: Mapping[str, Price]) -> PriceTable:
        """A new table: these prices added, replacing this table's for the same ids."""
        return PriceTable({**self._prices, **PriceTable(prices)._prices})

    def cost(self, model: str, usage: TokenCounts, *, batch: bool = False) -> Decimal | None:
        """What `usage` cost on `model`, or ``None`` when the table has no price for it.

        When the usage is an estimate (`RunUsage.estimated`), so is the cost.

        Args:
            model: The exact model id the requests named.
            usage: Token counts: a `RunUsage`, a wire `Usage`, or alike.
            batch: Priced at the batch API's rate.
        """
        price = self._prices.get(model)
        if price is None:
            return None
        cached = getattr(usage, "cached_tokens", 0)
        return price.cost(
            usage.prompt_tokens,
            usage.completion_tokens,
            cached_tokens=cached if isinstance(cached, int) else 0,
            batch=batch,
        )

    def require(self, model: str) -> Price:
        """The price of `model`, or `UnknownModelError` naming the nearest known id."""
        price = self._prices.get(model)
        if price is not None:
            return price
        raise UnknownModelError(model, _nearest(model, self._prices))

    @classmethod
    def load(cls, source: str | os.PathLike[str] | Mapping[str, Any]) -> PriceTable:
        """Read prices from a JSON or TOML file, or from a dict of the same shape.

        The shape, in TOML (TOML needs Python 3.11+; JSON works everywhere)::

            currency = "CNY"        # optional: the default for every model below
            batch_discount = 0.5    # optional: likewise

            [models."deepseek-ai/DeepSeek-V3"]
            input_per_million = 2
            output_per_million = 8
            cached_input_per_million = 0.5   # optional

        The table holds only what the source lists; merge it onto the built-in one with
        ``SILICONFLOW_PRICES | PriceTable.load(path)``.

        Raises:
            PriceTableError: The file cannot be read, or an entry is not a valid price (the
                message names the file and the model).
        """
        if isinstance(source, Mapping):
            return cls(_parse_prices(source, "the price data"))
        path = Path(source)
        return cls(_parse_prices(_read_price_file(path), str(path)))


def _nearest(model: str, known: Iterable[str]) -> str | None:
    by_case = {name.casefold(): name for name in known}
    if model.casefold() in by_case:
        return by_case[model.casefold()]
    close = difflib.get_close_matches(model, list(by_case.values()), n=1, cutoff=0.85)
    return close[0] if close else None


def _read_price_file(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise PriceTableError(f"{path}: a price file must end in .json or .toml")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PriceTableError(f"{path}: cannot read the price file ({exc.strerror})") from None
    try:
        if suffix == ".json":
            return json.loads(data.decode("utf-8-sig"), parse_float=Decimal)
        return _parse_toml(data.decode("utf-8"), path)
    except UnicodeDecodeError:
        raise PriceTableError(f"{path}: the price file is not UTF-8 text") from None
    except ValueError as exc:  # json's and tomllib's decode errors are ValueErrors
        raise PriceTableError(f"{path}: not valid {suffix[1:].upper()}: {exc}") from None


def _parse_toml(text: str, path: Path) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text, parse_float=Decimal)
    raise PriceTableError(
        f"{path}: reading TOML needs Python 3.11 or later (the standard tomllib); "
        "write the prices as JSON instead"
    )


def _parse_prices(data: Any, origin: str) -> dict[str, Price]:
    if not isinstance(data, Mapping):
        raise PriceTableError(f"{origin}: expected a table with a 'models' key")
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise PriceTableError(f"{origin}: unknown keys {unknown}; expected {sorted(_FILE_KEYS)}")
    models = data.get("models", {})
    if not isinstance(models, Mapping):
        raise PriceTableError(f"{origin}: 'models' must map model ids to prices")
    defaults = {key: data[key] for key in ("currency", "batch_discount") if key in data}
    return {model: _price(entry, defaults, model, origin) for model, entry in models.items()}


def _price(entry: Any, defaults: Mapping[str, Any], model: str, origin: str) -> Price:
    if isinstance(entry, Price):
        return entry
    try:
        return _checked_price(entry, defaults)
    except PriceTableError as exc:
        raise PriceTableError(f"{origin}: model {model!r}: {exc}") from None


def _checked_price(entry: Any, defaults: Mapping[str, Any]) -> Price:
    if not isinstance(entry, Mapping):
        raise PriceTableError("expected input_per_million and output_per_million")
    unknown = sorted(set(entry) - _PRICE_KEYS)
    if unknown:
        raise PriceTableError(f"unknown keys {unknown}; expected some of {sorted(_PRICE_KEYS)}")
    fields = {**defaults, **entry}
    missing = [key for key in ("input_per_million", "output_per_million") if key not in fields]
    if missing:
        raise PriceTableError(f"missing {' and '.join(missing)}")
    return Price(
        fields["input_per_million"],
        fields["output_per_million"],
        batch_discount=fields.get("batch_discount", _HALF),
        currency=fields.get("currency", "CNY"),
        cached_input_per_million=fields.get("cached_input_per_million"),
    )


SILICONFLOW_PRICES = PriceTable(
    {
        # DeepSeek: each Pro/ id is its own entry (for DeepSeek, at the same figures).
        "deepseek-ai/DeepSeek-V3": Price("2", "8"),
        "Pro/deepseek-ai/DeepSeek-V3": Price("2", "8"),
        "deepseek-ai/DeepSeek-V3.1": Price("2", "8"),
        "deepseek-ai/DeepSeek-R1": Price("4", "16"),
        "Pro/deepseek-ai/DeepSeek-R1": Price("4", "16"),
        "deepseek-ai/DeepSeek-R1-0528": Price("4", "16"),
        "deepseek-ai/DeepSeek-V2.5": Price("1.33", "1.33"),
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": Price(0, 0),
        "Pro/deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": Price("0.35", "0.35"),
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B": Price("0.7", "0.7"),
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B": Price("1.26", "1.26"),
        # Qwen2 and Qwen2.5
        "Qwen/Qwen2-7B-Instruct": Price(0, 0),
        "Pro/Qwen/Qwen2-7B-Instruct": Price("0.35", "0.35"),
        "Qwen/Qwen2.5-7B-Instruct": Price(0, 0),
        "Pro/Qwen/Qwen2.5-7B-Instruct": Price("0.35", "0.35"),
        "Qwen/Qwen2.5-14B-Instruct": Price("0.7", "0.7"),
        "Qwen/Qwen2.5-32B-Instruct": Price("1.26", "1.26"),
        "Qwen/Qwen2.5-72B-Instruct": Price("4.13", "4.13"),
        "Qwen/Qwen2.5-72B-Instruct-128K": Price("4.13", "4.13"),
        "Qwen/Qwen2.5-Coder-7B-Instruct": Price(0, 0),
        "Pro/Qwen/Qwen2.5-Coder-7B-Instruct": Price("0.35", "0.35"),
        "Qwen/Qwen2.5-Coder-32B-Instruct": Price("1.26", "1.26"),
        "Qwen/QwQ-32B": Price("1", "4"),
        # Qwen3
        "Qwen/Qwen3-8B": Price(0, 0),
        "Qwen/Qwen3-14B": Price("0.5", "2"),
        "Qwen/Qwen3-32B": Price("1", "4"),
        "Qwen/Qwen3-235B-A22B": Price("2.5", "10"),
        "Qwen/Qwen3-235B-A22B-Instruct-2507": Price("2.5", "10"),
        # GLM (THUDM)
        "THUDM/glm-4-9b-chat": Price(0, 0),
        "Pro/THUDM/glm-4-9b-chat": Price("0.6", "0.6"),
        "THUDM/GLM-4-9B-0414": Price(0, 0),
        "THUDM/GLM-4-32B-0414": Price("1.89", "1.89"),
        "THUDM/GLM-Z1-9B-0414": Price(0, 0),
        "THUDM/GLM-Z1-32B-0414": Price("1", "4"),
        # InternLM
        "internlm/internlm2_5-7b-chat": Price(0, 0),
    }
)
"""SiliconFlow's prices in CNY per million tokens, as published when taken (see the module
docstring for sources and date); extend or override with ``|``."""


class Budget:
    """A money limit for a batch: once `spent` reaches `limit`, no new task may start.

    Tasks already running finish and are charged in full, so the final spend can pass the
    limit by what those tasks cost; `remaining` never goes below zero. Safe to share between
    threads.

    Args:
        limit: The most to spend before new tasks stop starting (``0`` starts none).
        currency: The currency of the limit and of every charge, e.g. ``"CNY"``.
    """

    def __init__(self, limit: Amount, *, currency: str = "CNY") -> None:
        self.limit = _decimal(limit, "the budget limit")
        self.currency = currency
        self._spent = Decimal(0)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Budget(limit={self.limit} {self.currency}, spent={self.spent})"

    @property
    def spent(self) -> Decimal:
        """Everything charged so far."""
        with self._lock:
            return self._spent

    @property
    def remaining(self) -> Decimal:
        """What is left before the limit (zero once it is reached)."""
        with self._lock:
            return max(self.limit - self._spent, Decimal(0))

    def charge(self, amount: Decimal) -> None:
        """Add a cost (a task's, or one request's as it completes) to what was spent."""
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount < 0:
            raise ValueError(f"a charge must be a finite Decimal of at least 0, got {amount!r}")
        with self._lock:
            self._spent += amount

    def may_start(self) -> bool:
        """Whether a new task may start: only while `spent` is under `limit`."""
        with self._lock:
            return self._spent < self.limit
