"""A thread pool that counts the jobs handed to it (one job a batch is what the pools promise)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


class CountingPool(ThreadPoolExecutor):
    def __init__(self, workers: int = 1) -> None:
        super().__init__(max_workers=workers)
        self.jobs = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)
