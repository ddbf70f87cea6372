"""Finding the tools of `sfagent run/chat/tools TARGET`: import a file or module, collect.

``TARGET`` is a path to a Python file or a dotted module name, optionally followed by
``:NAME`` to pick one object. What is collected, in order of preference: an `Agent`, else a
`ToolSet`, else every module-level `Tool` (functions decorated with ``@tool``). Plain functions
are never collected: a file's helpers are not tools unless marked.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["CLIError", "Found", "load_target"]

OFFLINE_PLACEHOLDER_KEY = "sfagent-cli-offline-placeholder"
"""Set as the key while importing a file offline, so a module-level ``Agent("model-id")`` can be
built; the CLI then swaps its model for the demo model, so this value is never sent."""


class CLIError(Exception):
    """A user mistake or a failed run, reported as one line on stderr.

    Attributes:
        message: The line (without the ``error:`` prefix).
        exit_code: The process exit code.
    """

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(frozen=True)
class Found:
    """What a target provided.

    Attributes:
        label: The target as the user wrote it (for messages).
        agent: The `Agent` found, if any.
        tools: The tools (the agent's tools when an agent was found).
    """

    label: str
    agent: Any
    tools: Any


def load_target(target: str, *, offline: bool) -> Found:
    """Import `target` and collect its agent or tools.

    Args:
        target: ``path/to/file.py``, ``package.module``, either with an optional ``:NAME``.
        offline: Whether the run has no API key; a placeholder key is then set during the
            import (see `OFFLINE_PLACEHOLDER_KEY`).

    Raises:
        CLIError: The file or module does not exist, fails to import, or holds no tools.
    """
    spec, name = _split_name(target)
    with _placeholder_key(offline):
        module = _import(spec)
    label = Path(spec).name if _is_path(spec) else spec
    if name is not None:
        if not hasattr(module, name):
            raise CLIError(f"{label} has no attribute {name!r}")
        return _from_object(label, name, getattr(module, name))
    return _collect(label, vars(module))


def _split_name(target: str) -> tuple[str, str | None]:
    head, sep, tail = target.rpartition(":")
    if sep and head and tail.isidentifier() and not (len(head) == 1 and head.isalpha()):
        return head, tail  # "file.py:agent"; "C:" alone is a Windows drive
    return target, None


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec or "/" in spec or Path(spec).is_file()


@contextlib.contextmanager
def _placeholder_key(offline: bool) -> Iterator[None]:
    from sfagent.client.config import API_KEY_ENV

    if not offline or os.environ.get(API_KEY_ENV, "").strip():
        yield
        return
    os.environ[API_KEY_ENV] = OFFLINE_PLACEHOLDER_KEY
    try:
        yield
    finally:
        os.environ.pop(API_KEY_ENV, None)


def _import(spec: str) -> ModuleType:
    if _is_path(spec):
        return _import_file(Path(spec))
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # like `python -m`: modules of the current directory
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name is not None and spec.startswith(exc.name):
            raise CLIError(
                f"no file or module named {spec!r} (a file path must exist; "
                "a module must be importable from here)"
            ) from None
        raise CLIError(_import_failure(spec, exc)) from None
    except Exception as exc:
        raise CLIError(_import_failure(spec, exc)) from None


def _import_file(path: Path) -> ModuleType:
    if not path.exists():
        raise CLIError(f"no such file: {path}")
    if not path.is_file():
        raise CLIError(f"not a file: {path}")
    path = path.resolve()
    name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules else None
    name = name or f"_sfagent_target_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CLIError(f"cannot import {path.name}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pydantic look their module up here
    sys.path.insert(0, str(path.parent))  # its sibling modules import like under `python`
    try:
        spec.loader.exec_module(module)
    except SystemExit as exc:
        sys.modules.pop(name, None)
        raise CLIError(f"importing {path.name} called exit({exc.code})") from None
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise CLIError(_import_failure(path.name, exc, path)) from None
    return module


def _import_failure(label: str, exc: BaseException, path: Path | None = None) -> str:
    where = ""
    if isinstance(exc, SyntaxError) and exc.lineno is not None:
        where = f" (line {exc.lineno})"
    elif path is not None:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        if frames:
            where = f" (line {frames[-1].lineno})"
    text = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return f"importing {label} failed{where}: {detail}"


def _from_object(label: str, name: str, value: Any) -> Found:
    from sfagent.agent import Agent
    from sfagent.tools import Tool, ToolSet

    if isinstance(value, Agent):
        return Found(label, value, value.tools)
    if isinstance(value, ToolSet):
        return Found(label, None, value)
    if isinstance(value, Tool):
        return Found(label, None, ToolSet([value]))
    raise CLIError(
        f"{label}:{name} is a {type(value).__name__}, not an Agent, a ToolSet or a @tool"
    )


def _collect(label: str, namespace: dict[str, Any]) -> Found:
    from sfagent.agent import Agent
    from sfagent.tools import Tool, ToolSet

    for kind in (Agent, ToolSet):
        named = _unique(namespace, kind)
        if len(named) > 1:
            names = ", ".join(named)
            raise CLIError(
                f"{label} defines several {kind.__name__}s ({names}): pick one with {label}:NAME"
            )
        if named:
            (value,) = named.values()
            return Found(label, value, value.tools) if kind is Agent else Found(label, None, value)
    tools = list(_unique(namespace, Tool).values())
    if not tools:
        raise CLIError(
            f"no tools in {label}: decorate functions with @tool, or define a ToolSet or an Agent"
        )
    return Found(label, None, ToolSet(tools))


def _unique(namespace: dict[str, Any], kind: type) -> dict[str, Any]:
    """Public module-level values of `kind`, each object once, in definition order."""
    seen: set[int] = set()
    out: dict[str, Any] = {}
    for name, value in namespace.items():
        if isinstance(value, kind) and not name.startswith("_") and id(value) not in seen:
            seen.add(id(value))
            out[name] = value
    return out
