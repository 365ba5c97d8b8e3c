"""Runs a harness for N inputs: counts failures by kind, never stops on one.

Determinism: the inputs of epoch e of path p under seed s come from
random.Random(f"{s}/{p}/{e}"), and a harness is rebuilt at each epoch (every
epoch_len inputs) with only fake clocks and seeded rngs inside, so
(seed, path, epoch, index) replays a failure exactly: replay() rebuilds the
epoch and runs its inputs up to the index.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from fuzzing.standins import ErrorLog, Violation, crash_kind, format_exc

# An input taking longer than this is a failure ("slow").
SLOW_SECONDS = 1.0
REPRODUCERS_PER_KIND = 3


@dataclass
class Failure:
    kind: str
    path: str
    seed: int
    epoch: int
    index: int
    detail: str
    input: object

    def as_json(self) -> dict:
        return {"kind": self.kind, "path": self.path, "seed": self.seed, "epoch": self.epoch,
                "index": self.index, "detail": self.detail, "input": encode(self.input)}


@dataclass
class Result:
    path: str
    inputs: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU time (the machine may be shared)
    max_input_seconds: float = 0.0
    failures: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)  # kind -> [Failure]
    stats: Counter = field(default_factory=Counter)  # harness counters (outcomes)

    def summary(self) -> dict:
        return {
            "inputs": self.inputs,
            "seconds": round(self.seconds, 2),
            "exec_per_s": round(self.inputs / self.seconds) if self.seconds else None,
            "cpu_seconds": round(self.cpu_seconds, 2),
            "exec_per_cpu_s": round(self.inputs / self.cpu_seconds) if self.cpu_seconds else None,
            "max_ms_per_input": round(self.max_input_seconds * 1000, 2),
            "failures": dict(self.failures),
            "failure_seeds": {k: [[f.seed, f.epoch, f.index] for f in v]
                              for k, v in self.examples.items()},
            "outcomes": dict(self.stats.most_common(24)),
        }


def encode(value):
    """JSON for inputs: bytes as {"hex": ...}."""
    if isinstance(value, (bytes, bytearray)):
        return {"hex": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    return value


def decode(value):
    if isinstance(value, dict) and set(value) == {"hex"}:
        return bytes.fromhex(value["hex"])
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    return value


class quiet_logs:
    """sroamd's logs off during a run (10^6 warnings cost more than the
    inputs), except what is logged with a traceback: that is collected."""

    def __enter__(self) -> ErrorLog:
        self.logger = logging.getLogger("sroamd")
        self.saved = (self.logger.level, self.logger.handlers[:], self.logger.propagate)
        self.handler = ErrorLog()
        self.logger.handlers[:] = [self.handler]
        self.logger.setLevel(logging.ERROR)
        self.logger.propagate = False
        # asyncio reports exceptions nobody retrieved through its own logger.
        self.asyncio = logging.getLogger("asyncio")
        self.asyncio_saved = (self.asyncio.handlers[:], self.asyncio.propagate)
        self.asyncio.handlers[:] = [self.handler]
        self.asyncio.propagate = False
        return self.handler

    def __exit__(self, *exc) -> None:
        self.logger.setLevel(self.saved[0])
        self.logger.handlers[:] = self.saved[1]
        self.logger.propagate = self.saved[2]
        self.asyncio.handlers[:], self.asyncio.propagate = self.asyncio_saved


def run_one(harness, inp, errors: ErrorLog) -> list[tuple[str, str]]:
    """Execute one input; returns the failures (kind, detail) it caused."""
    found = []
    try:
        harness.execute(inp)
    except Violation as v:
        found.append((v.kind, v.detail))
    except Exception as e:  # noqa: BLE001 - every escape is a finding
        found.append(("crash:" + crash_kind(e), format_exc(e)))
    try:
        harness.check()
    except Violation as v:
        found.append((v.kind, v.detail))
    except Exception as e:  # noqa: BLE001
        found.append(("check_crash:" + crash_kind(e), format_exc(e)))
    found.extend((e.kind, e.detail) for e in errors.take())
    return found


def run_epoch(path_cls, seed: int, epoch: int, count: int, errors: ErrorLog, stats: Counter):
    """Yield (index, input, failures, seconds) for the inputs of one epoch.

    After an input that failed, the harness is rebuilt (state broken once
    stays broken: the next inputs would only report it again); replay()
    goes through the same steps, so a failure replays exactly."""
    rng = random.Random(f"{seed}/{path_cls.name}/{epoch}")
    harness = path_cls(seed, epoch)
    try:
        for index in range(count):
            inp = harness.generate(rng)
            t0 = time.perf_counter()
            found = run_one(harness, inp, errors)
            elapsed = time.perf_counter() - t0
            if elapsed > SLOW_SECONDS:
                found.append(("slow", f"{elapsed:.3f} s"))
            yield index, inp, found, elapsed
            if found:
                stats.update(harness.stats())
                harness.close()
                harness = path_cls(seed, epoch)
    finally:
        stats.update(harness.stats())
        harness.close()


def run(path_cls, count: int, seed: int = 0, epoch_len: int = 20000,
        save_dir: str | None = None, progress=None, progress_every: float = 10.0,
        max_seconds: float | None = None) -> Result:
    result = Result(path_cls.name)
    start = time.perf_counter()
    cpu_start = time.process_time()
    next_report = start + progress_every
    done = 0
    with quiet_logs() as errors:
        epoch = 0
        while done < count:
            epoch_inputs = run_epoch(path_cls, seed, epoch, min(epoch_len, count - done),
                                     errors, result.stats)
            for index, inp, found, elapsed in epoch_inputs:
                if elapsed > result.max_input_seconds:
                    result.max_input_seconds = elapsed
                for kind, detail in found:
                    _record(result, Failure(kind, path_cls.name, seed, epoch, index,
                                            detail, inp), save_dir)
                done += 1
                now = time.perf_counter()
                if progress is not None and now >= next_report:
                    next_report = now + progress_every
                    cpu = time.process_time() - cpu_start
                    progress(f"{path_cls.name}: {done} inputs, {done / (now - start):.0f}/s, "
                             f"{done / cpu if cpu else 0:.0f}/CPU-s, "
                             f"{sum(result.failures.values())} failures "
                             f"({len(result.failures)} kinds)")
                if max_seconds is not None and now - start > max_seconds:
                    count = done
                    epoch_inputs.close()
                    break
            epoch += 1
    result.inputs = done
    result.seconds = time.perf_counter() - start
    result.cpu_seconds = time.process_time() - cpu_start
    return result


def _record(result: Result, failure: Failure, save_dir: str | None) -> None:
    result.failures[failure.kind] += 1
    examples = result.examples.setdefault(failure.kind, [])
    if len(examples) >= REPRODUCERS_PER_KIND:
        return
    examples.append(failure)
    if save_dir is not None:
        os.makedirs(save_dir, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in failure.kind)[:100]
        name = f"{failure.path}-{safe}-{failure.seed}-{failure.epoch}-{failure.index}.json"
        with open(os.path.join(save_dir, name), "w") as f:
            json.dump(failure.as_json(), f, indent=1)


def replay(path_cls, seed: int, epoch: int, index: int) -> list[tuple[str, str]]:
    """Rebuild the epoch and run it up to index; the failures of that input."""
    with quiet_logs() as errors:
        steps = run_epoch(path_cls, seed, epoch, index + 1, errors, Counter())
        for i, _inp, found, _elapsed in steps:
            if i == index:
                steps.close()
                return found
    return []


def replay_input(path_cls, inp, seed: int = 0) -> list[tuple[str, str]]:
    """Run one saved input alone on a fresh harness (stateless reproduction)."""
    harness = path_cls(seed, 0)
    try:
        with quiet_logs() as errors:
            return run_one(harness, decode(inp), errors)
    finally:
        harness.close()
