"""Putting a dashboard's numbered events back in commit order.

Frames of one account commit one at a time (the account lock), but two
workers publish after their commits and the later one can win the race to
the dashboard. Each charge event carries the account's sequence number; a
dashboard holds an early one back until the events before it arrive, and
waits out a gap (an event the channel layer lost) only for a moment before
it reads the missing ones from the event log (`accept` them), or, when the
log no longer has them, takes a fresh snapshot (`rebase`).
"""

from typing import Any


class EventOrder:
    """Releases events numbered after `after` in order, each once."""

    def __init__(self, after: int):
        self.next = after + 1
        self._held: dict[int, Any] = {}

    @property
    def waiting(self) -> bool:
        """Whether events are held back behind a gap."""
        return bool(self._held)

    @property
    def missing(self) -> tuple[int, int] | None:
        """The numbers of the gap before the first event held back (first, last), if any."""
        if not self._held:
            return None
        return self.next, min(self._held) - 1

    def accept(self, seq: int, event: Any) -> list[Any]:
        """The events now ready, in order; older numbers (in the snapshot, repeats) are dropped."""
        if seq >= self.next:
            self._held[seq] = event
        return self._release()

    def rebase(self, after: int) -> list[Any]:
        """A fresh snapshot counts up to `after`: drop what it counts, release what follows."""
        self.next = after + 1
        self._held = {seq: event for seq, event in self._held.items() if seq > after}
        return self._release()

    def _release(self) -> list[Any]:
        ready = []
        while self.next in self._held:
            ready.append(self._held.pop(self.next))
            self.next += 1
        return ready
