"""LocalExperiment: sticky, locally decided A/B variations (balena's LocalExperiment).

Assignment is random on first engagement and then persisted per (experiment, device id) in the
store; each engagement records an ``$identify`` that ``$preInsert``s ``Experiments`` =
``<name>_<variation>``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

V = TypeVar("V", bound=str)


class _ExperimentClient(Protocol):
    @property
    def device_id(self) -> str: ...

    def experiment_variation(
        self, experiment: str, device_id: str, choose: Callable[[], str]
    ) -> str | None: ...

    def identify(self, operations: dict[str, dict[str, str]]) -> str | None: ...


class LocalExperiment(Generic[V]):
    """An experiment with variations defined as percentages that sum to 100."""

    def __init__(
        self,
        name: str,
        client: _ExperimentClient | None = None,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self.client = client
        self._variations: list[tuple[V, float]] = []
        self._rand = rand

    def _describe(self) -> str:
        return ", ".join(f"variation {v}: {p}%" for v, p in self._variations)

    def define(self, variation: V, percent: float) -> LocalExperiment[V]:
        """Add a variation taking ``percent`` of devices; chainable.

        Raises:
            ValueError: the percent is not in [0, 100], the variation exists already, or the
                total would exceed 100.
        """
        if percent != percent or percent < 0 or percent > 100:
            raise ValueError(
                f"Invalid percentage for variation {variation} of experiment {self.name}: "
                f"{percent} (must be between 0 and 100)"
            )
        if any(v == variation for v, _ in self._variations):
            raise ValueError(f"Variation {variation} is already defined in experiment {self.name}")
        total = sum(p for _, p in self._variations) + percent
        if total > 100:
            self._variations.append((variation, percent))
            described = self._describe()
            self._variations.pop()
            raise ValueError(
                f"Variations of experiment {self.name} sum up to more than 100%: {described}"
            )
        self._variations.append((variation, percent))
        return self

    @property
    def variations(self) -> list[tuple[V, float]]:
        """The defined variations and their percentages, in definition order."""
        return list(self._variations)

    def engage(self, device_id: str | None = None) -> V:
        """The variation for ``device_id`` (default: the client's), assigned once and kept.

        Raises:
            ValueError: no variations are defined, or they do not sum to 100.
        """
        if not self._variations:
            raise ValueError(f"Variations are not defined for experiment {self.name}")
        if sum(p for _, p in self._variations) < 100:
            raise ValueError(
                f"Experiment {self.name} is not fully defined; "
                f"variations must sum up to 100%: {self._describe()}"
            )
        if device_id is None:
            if self.client is None:
                raise ValueError("engage() needs a device_id when no client is attached")
            device_id = self.client.device_id
        known: dict[str, V] = {v: v for v, _ in self._variations}
        client = self.client
        stored = (
            None
            if client is None
            else client.experiment_variation(self.name, device_id, self._roll)
        )
        if stored not in known:
            if stored is not None:  # a variation no longer defined: roll again, not stored
                return self._roll()
            # No client, or telemetry is off: nothing is kept, the first variation every time.
            return self._variations[0][0]
        variation = known[stored]
        if client is not None:
            client.identify({"$preInsert": {"Experiments": f"{self.name}_{variation}"}})
        return variation

    def _roll(self) -> V:
        roll = self._rand() * 100
        margin = 0.0
        for variation, percent in self._variations:
            margin += percent
            if roll < margin:
                return variation
        return self._variations[-1][0]
