"""Descriptions from docstrings, in every style docstring-parser knows."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import Field

from sfagent import tool

GOOGLE = """Get the weather forecast.

    Uses the national service; results are cached
    for ten minutes.

    Args:
        city: The city,
            e.g. "Beijing".
        days (int): How many days.

    Returns:
        dict: The forecast.

    Raises:
        ValueError: Unknown city.

    Examples:
        >>> forecast("Beijing")
    """

NUMPY = """Get the weather forecast.

    Uses the national service; results are cached
    for ten minutes.

    Parameters
    ----------
    city : str
        The city,
        e.g. "Beijing".
    days : int, optional
        How many days.

    Returns
    -------
    dict
        The forecast.

    Examples
    --------
    >>> forecast("Beijing")
    """

REST = """Get the weather forecast.

    Uses the national service; results are cached
    for ten minutes.

    :param city: The city,
        e.g. "Beijing".
    :type city: str
    :param days: How many days.
    :returns: The forecast.
    :raises ValueError: Unknown city.
    """

EPYDOC = """Get the weather forecast.

    Uses the national service; results are cached
    for ten minutes.

    @param city: The city,
        e.g. "Beijing".
    @type city: str
    @param days: How many days.
    @return: The forecast.
    @raise ValueError: Unknown city.
    """


def _forecast_with(doc: str) -> Any:
    def forecast(city: str, days: int = 3) -> dict[str, int]:
        return {}

    forecast.__doc__ = doc
    return tool(forecast)


@pytest.mark.parametrize(
    "doc", [GOOGLE, NUMPY, REST, EPYDOC], ids=["google", "numpy", "rest", "epydoc"]
)
def test_every_style_gives_description_and_parameter_docs(doc: str) -> None:
    t = _forecast_with(doc)
    assert t.description == (
        "Get the weather forecast.\n\nUses the national service; results are cached\n"
        "for ten minutes."
    )
    props = t.parameters["properties"]
    assert props["city"]["description"] == 'The city, e.g. "Beijing".'
    assert props["days"]["description"] == "How many days."


@pytest.mark.parametrize(
    "doc", [GOOGLE, NUMPY, REST, EPYDOC], ids=["google", "numpy", "rest", "epydoc"]
)
def test_sections_never_leak_into_the_description(doc: str) -> None:
    description = _forecast_with(doc).description
    for leaked in (
        "Args",
        "Returns",
        "Raises",
        "Examples",
        ">>>",
        "ValueError",
        ":param",
        "@param",
    ):
        assert leaked not in description


def test_args_section_without_summary_line() -> None:
    t = _forecast_with("""Args:
        city: The city.
        days: Days.
    """)
    assert t.description == ""
    assert t.parameters["properties"]["city"]["description"] == "The city."


def test_field_description_wins_over_docstring() -> None:
    @tool
    def f(
        a: Annotated[int, Field(description="from Annotated")],
        b: int = Field(2, description="from default Field"),
        c: int = 3,
    ) -> None:
        """F.

        Args:
            a: from docstring a
            b: from docstring b
            c: from docstring c
        """

    props = f.parameters["properties"]
    assert props["a"]["description"] == "from Annotated"
    assert props["b"]["description"] == "from default Field"
    assert props["b"]["default"] == 2
    assert props["c"]["description"] == "from docstring c"


def test_description_override_and_missing_docstring() -> None:
    @tool(description="Custom text.")
    def documented() -> None:
        """Docstring text."""

    @tool
    def bare(x: int) -> None:
        return None

    assert documented.description == "Custom text."
    assert bare.description == ""
    assert "description" not in bare.parameters["properties"]["x"]


def test_multi_paragraph_long_description_is_kept() -> None:
    t = _forecast_with("""Summary.

    First paragraph.

    Second paragraph.

    Args:
        city: City.
    """)
    assert t.description == "Summary.\n\nFirst paragraph.\n\nSecond paragraph."
