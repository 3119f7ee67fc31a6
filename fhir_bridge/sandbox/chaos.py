"""Test-controlled misbehaviour: duplicates, drops, reordering, late heartbeats, slow answers."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from fhir_bridge.sandbox.outcomes import InvalidRequestError


@dataclass(frozen=True)
class ChaosDecision:
    """What to do with one event notification."""

    drop: bool
    duplicate: bool


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidRequestError(f"Chaos option {name} must be a probability between 0 and 1")
    return float(value)


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequestError(f"Chaos option {name} must be a non-negative integer")
    return value


def _non_negative_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidRequestError(f"Chaos option {name} must be a non-negative number")
    return float(value)


class Chaos:
    """Thread-safe chaos options plus the seeded RNG that applies them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random()
        self.duplicate = 0.0
        self.drop = 0.0
        self.reorder_window = 0
        self.drop_next = 0
        self.duplicate_all = False
        self.heartbeat_delay = 0.0
        # Seconds every FHIR request waits before it is handled (a real EHR's ~20 ms).
        self.latency = 0.0
        self.seed: int | None = None

    def update(self, options: dict[str, Any]) -> None:
        """Apply a partial set of options; unknown names or bad values are rejected."""
        setters = {
            "duplicate": lambda v: setattr(self, "duplicate", _probability("duplicate", v)),
            "drop": lambda v: setattr(self, "drop", _probability("drop", v)),
            "reorder_window": lambda v: setattr(
                self, "reorder_window", _non_negative_int("reorder_window", v)
            ),
            "drop_next": lambda v: setattr(self, "drop_next", _non_negative_int("drop_next", v)),
            "duplicate_all": lambda v: setattr(self, "duplicate_all", bool(v)),
            "heartbeat_delay": lambda v: setattr(
                self, "heartbeat_delay", _non_negative_number("heartbeat_delay", v)
            ),
            "latency": lambda v: setattr(self, "latency", _non_negative_number("latency", v)),
            "seed": self._reseed,
        }
        unknown = sorted(set(options) - set(setters))
        if unknown:
            raise InvalidRequestError(f"Unknown chaos options: {', '.join(unknown)}")
        with self._lock:
            for name, value in options.items():
                setters[name](value)

    def _reseed(self, value: Any) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidRequestError("Chaos option seed must be an integer or null")
        self.seed = value
        self._rng = random.Random(value)

    def as_dict(self) -> dict[str, Any]:
        """Current options, for `/_admin/stats` and debugging."""
        with self._lock:
            return {
                "duplicate": self.duplicate,
                "drop": self.drop,
                "reorder_window": self.reorder_window,
                "drop_next": self.drop_next,
                "duplicate_all": self.duplicate_all,
                "heartbeat_delay": self.heartbeat_delay,
                "latency": self.latency,
                "seed": self.seed,
            }

    def decide(self) -> ChaosDecision:
        """Roll the dice for one event notification (drop_next wins over everything)."""
        with self._lock:
            if self.drop_next > 0:
                self.drop_next -= 1
                return ChaosDecision(drop=True, duplicate=False)
            if self.drop and self._rng.random() < self.drop:
                return ChaosDecision(drop=True, duplicate=False)
            duplicate = self.duplicate_all or bool(
                self.duplicate and self._rng.random() < self.duplicate
            )
            return ChaosDecision(drop=False, duplicate=duplicate)

    def shuffle(self, items: list[Any]) -> None:
        """Shuffle a reorder buffer in place with the seeded RNG."""
        with self._lock:
            self._rng.shuffle(items)
