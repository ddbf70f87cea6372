"""Where a client sends requests and with which key: names, defaults and their checks."""

from __future__ import annotations

import os

from sfagent.exceptions import ConfigurationError

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "TRACE_ID_HEADER",
    "resolve_api_key",
    "resolve_base_url",
]

API_KEY_ENV = "SILICONFLOW_API_KEY"
"""The environment variable the key is read from when none is given."""

BASE_URL_ENV = "SILICONFLOW_BASE_URL"
"""The environment variable the base URL is read from when none is given."""

DEFAULT_BASE_URL = "https://api.siliconflow.cn/v1"
"""SiliconFlow's China site; international accounts use ``https://api.siliconflow.com/v1``."""

TRACE_ID_HEADER = "x-siliconcloud-trace-id"
"""The response header that identifies a request to SiliconFlow's support."""


def resolve_api_key(api_key: str | None) -> str:
    """The key to send: `api_key`, else ``$SILICONFLOW_API_KEY``, stripped.

    Raises:
        ConfigurationError: No key, or one that cannot be sent in a header (never quoted).
    """
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")
    key = key.strip()
    if not key:
        raise ConfigurationError(
            f"No API key: pass api_key=... or set the {API_KEY_ENV} environment variable. "
            "To run without a key, use the offline demo model: "
            "Agent(DemoModel(), tools=[...]) with `from sfagent.offline import DemoModel` "
            "(the `sfagent run FILE` command does this by itself)"
        )
    # A control character, a space or a non-ASCII character makes an invalid header, and the
    # error httpx raises for it quotes the key: refuse it here, without quoting it.
    if not key.isascii() or any(ch.isspace() or not ch.isprintable() for ch in key):
        raise ConfigurationError(
            "The API key contains whitespace, control or non-ASCII characters "
            "(check for a pasted non-breaking hyphen or full-width character)"
        )
    return key


def resolve_base_url(base_url: str | None) -> str:
    """The API base: `base_url`, else ``$SILICONFLOW_BASE_URL``, else `DEFAULT_BASE_URL`.

    Raises:
        ConfigurationError: The URL is not http(s).
    """
    url = base_url if base_url is not None else os.environ.get(BASE_URL_ENV, "") or DEFAULT_BASE_URL
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"base_url must start with http:// or https://, got {url!r}")
    return url
