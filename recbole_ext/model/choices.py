"""A key whose value is one of a few words (``attention_impl``, ``loss_impl``), read from a
configuration that may lack it: the first word is the default."""

from __future__ import annotations

from typing import Any, Sequence

from recbole_ext.errors import ConfigError


def configured_choice(config: Any, key: str, choices: Sequence[str]) -> str:
    """The value of ``key`` in ``config`` (``choices[0]`` where the configuration has none).

    Raises:
        ConfigError: the value is not one of ``choices``.
    """
    value = config[key] if key in config else None
    value = choices[0] if value is None else value
    if value not in choices:
        raise ConfigError(f"invalid configuration: {key}={value!r}; allowed: {' | '.join(choices)}")
    return value
