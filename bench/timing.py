"""Interleaved timing for the benchmarks: variants take turns call by call within each
round (in a different order every round), so that a shared machine's noise hits them all
alike; rates per round, ratios as medians of per-round ratios."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator

__all__ = ["interleaved", "interleaved_async"]


def _turns(names: list[str], batch: int, rounds: int, items: int
           ) -> Iterator[tuple[int, str, int]]:
    """(round, variant, item) in running order: within a round the variants take turns
    transaction by transaction, so that the machine's noise hits all of them alike."""
    rng = random.Random(7)
    for r in range(rounds):
        order = _rotated(names, r)
        for _ in range(batch):
            item = rng.randint(1, items)
            for name in order:
                yield r, name, item


def _record(spent: dict[tuple[int, str], float], names: list[str], batch: int, rounds: int,
            rates: dict[str, list[float]]) -> None:
    """Transactions per second of each variant in each round."""
    for r in range(rounds):
        for name in names:
            rates.setdefault(name, []).append(batch / spent[r, name])


def interleaved(variants: dict[str, Callable[[int], object]], batch: int, rounds: int,
                rates: dict[str, list[float]], cpu: dict[str, list[float]] | None = None,
                *, items: int) -> None:
    """Run the variants in turns, each call with a random item in 1…`items`; their rates
    per round into `rates`, and the client's CPU time per call (µs) into `cpu`."""
    spent: dict[tuple[int, str], float] = defaultdict(float)
    used: dict[tuple[int, str], float] = defaultdict(float)
    for r, name, item in _turns(list(variants), batch, rounds, items):
        start, start_cpu = time.perf_counter(), time.process_time()
        variants[name](item)
        used[r, name] += time.process_time() - start_cpu
        spent[r, name] += time.perf_counter() - start
    _record(spent, list(variants), batch, rounds, rates)
    if cpu is not None:
        for name in variants:
            cpu[name] = [used[r, name] / batch * 1e6 for r in range(rounds)]


async def interleaved_async(variants: dict[str, Callable[[int], Awaitable[object]]],
                            batch: int, rounds: int, rates: dict[str, list[float]], *,
                            items: int) -> None:
    """`interleaved` for coroutines."""
    spent: dict[tuple[int, str], float] = defaultdict(float)
    for r, name, item in _turns(list(variants), batch, rounds, items):
        start = time.perf_counter()
        await variants[name](item)
        spent[r, name] += time.perf_counter() - start
    _record(spent, list(variants), batch, rounds, rates)


def _rotated(names: list[str], r: int) -> list[str]:
    """Variants in a different order each round, so that drift hits all of them alike."""
    k = r % len(names)
    return names[k:] + names[:k]
