"""A virtual clock for the Kit stand-in's rate-limit window, shared by the Kit tests."""

from __future__ import annotations

import threading

START = 1_796_000_000.0  # 2026-11-30, in Unix seconds


class VirtualClock:
    """Unix seconds that move only when a test says so (safe to read from the server's threads)."""

    def __init__(self, now: float = START) -> None:
        self._now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
