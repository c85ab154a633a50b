"""A recorder with nothing recorded, for samplers under test that read no execution records."""

from __future__ import annotations


class NoRecords:
    """The sampler's recorder, with nothing recorded."""

    def record(self, execution: object) -> None:
        """Nothing to keep."""

    def drain(self) -> list[object]:
        """Nothing recorded."""
        return []
