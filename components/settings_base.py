"""The base every ``params.yaml`` section model shares, and the error a validator raises with its own key.

Its own module so that ``components.config`` (the sections, loading) and
``components.training.candidate_settings`` (the candidate specs) both build on it
while ``config`` imports ``candidate_settings`` and never the other way round.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """params.yaml (or an override) is invalid; the message names the key.

    Defined here, below everything that raises it (``components.training`` included); import it
    from ``components.config``.
    """


class KeyedError(ValueError):
    """Raised inside a validator that knows the full dotted key better than pydantic's location does."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
