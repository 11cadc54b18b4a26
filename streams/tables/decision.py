"""The shape every context's pure decision returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from streams.models import Payload

State = TypeVar("State")


class UnhandledEvent(ValueError):
    """The event is valid but not one this context handles: it goes to the dead-letter topic."""


@dataclass(frozen=True)
class Decision(Generic[State]):
    state: State
    events: list[Payload] = field(default_factory=list)
    # The events' tenant when it is not the input's (a carrier update resolved to its order's tenant).
    tenant: str | None = None
