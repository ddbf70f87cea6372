"""Public names that load on first use (PEP 562), for packages that re-export submodules.

A package lists its public names once per defining module; `lazy_exports` gives back the
``__all__``, ``__getattr__`` and ``__dir__`` that import a submodule only when one of its names
is first looked up, so importing the package stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]], *, eager: Sequence[str] = ()
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """Build ``(__all__, __getattr__, __dir__)`` for `package`.

    Args:
        package: The package's ``__name__``.
        exports: Defining module -> the public names it provides.
        eager: Names the package defines itself (added to ``__all__``).
    """
    home = {name: module for module, names in exports.items() for name in names}
    public = sorted([*eager, *home])
    namespace = import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value  # later lookups skip this hook
        return value

    def __dir__() -> list[str]:
        return list(public)

    return public, __getattr__, __dir__
