"""Shard jobs on Ray Data: the engine behind ``embed --engine ray`` and ``curate --engine ray``.

The dataset holds one row per shard still to do; ``map_batches`` runs a pool
of actors, each holding its own encoder (built once per actor), that read their
shard straight from storage, do the work and write the shard's files
atomically. Only the small per-shard results (counts, an error) travel back
through Ray, so the driver streams them into a progress bar.

Why whole shards and not rows: a shard's output files are the unit of resume.
The last file of a shard is written last, so a job killed anywhere -- a worker,
the driver, the cluster -- is resumed by running it again, and a shard retried
after a worker died rewrites its files whole: every row lands exactly once.
The actors are restartable and their tasks retried, so a dead worker costs its
shard's time, not the job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from clipdex.errors import ClipdexError, UsageError
from clipdex.media.pools import ShardResult, ShardRunner, ShardWorker
from clipdex.quiet import verbose

__all__ = ["RayOptions", "ShardResult", "ShardWorker", "engine_options", "ray_runner", "run_shards"]


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run.

    ``address``: ``None`` starts a local Ray on this machine (or joins the one already started in this
    process), ``"auto"`` joins the cluster this machine belongs to, or ``ray://host:10001``.
    ``cpus_per_worker``: by default the local cores shared out between the workers.
    """

    address: str | None = None
    num_workers: int = 1
    cpus_per_worker: float | None = None
    gpus_per_worker: float = 0.0

    def worker_cpus(self) -> float:
        if self.cpus_per_worker:
            return self.cpus_per_worker
        return max(1.0, (os.cpu_count() or 1) // max(1, self.num_workers))


def _actor_class(worker: ShardWorker, threads: int) -> type:
    """The Ray Data callable class, one instance per actor. The worker travels inside the class (pickled
    by value), not as constructor arguments in the object store, which a restarted actor could lose."""

    class ShardActor:
        def __init__(self) -> None:
            worker.setup(threads)
            self.worker = worker

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
            results = [self.worker(int(shard)) for shard in batch["shard"]]
            return {"shard": [r.shard for r in results], "samples": [r.samples for r in results],
                    "failed": [r.failed for r in results], "error": [r.error for r in results]}

    return ShardActor


def run_shards(shards: Sequence[int], worker: ShardWorker, options: RayOptions = RayOptions(),
               progress: Callable[[ShardResult], None] | None = None) -> list[ShardResult]:
    """Run ``worker`` over ``shards`` on Ray Data with ``options.num_workers`` actors; results stream back
    in completion order (``progress`` is called with each).

    Raises:
        ClipdexError: Ray is not installed, or the cluster cannot be reached.
    """
    if not shards:
        return []
    _connect(options)
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.INFO if verbose() else logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = verbose()  # clipdex draws one bar over the shards
    context.execution_options.preserve_order = False
    threads = max(1, int(options.worker_cpus()))
    dataset = ray.data.from_items([{"shard": int(s)} for s in shards], override_num_blocks=len(shards))
    mapped = dataset.map_batches(
        _actor_class(worker, threads), batch_size=1, compute=ray.data.ActorPoolStrategy(size=options.num_workers),
        num_cpus=options.worker_cpus(), num_gpus=options.gpus_per_worker or None)
    # Ray Data's actor pools restart a dead actor and retry its task (max_restarts and max_task_retries
    # default to -1 there), so a killed worker's shard is done again by its replacement
    results = []
    for row in mapped.iter_rows():
        result = ShardResult(int(row["shard"]), int(row["samples"]), int(row["failed"]), str(row["error"]))
        results.append(result)
        if progress:
            progress(result)
    return results


def engine_options(engine: str, address: str | None = None, num_workers: int = 1,
                   gpus_per_worker: float = 0.0) -> RayOptions | None:
    """The RayOptions for engine ``ray``, None for ``local`` (the ``--engine`` flags of curate and embed).

    Raises:
        UsageError: an unknown engine, or Ray-only options with the local engine.
    """
    if engine not in ("local", "ray"):
        raise UsageError(f"unknown engine {engine!r}: use local or ray")
    if engine == "local":
        if address or num_workers != 1 or gpus_per_worker:
            raise UsageError("--address, --num-workers and --gpus-per-worker need --engine ray")
        return None
    return RayOptions(address=address, num_workers=num_workers, gpus_per_worker=gpus_per_worker)


def ray_runner(options: RayOptions = RayOptions()) -> ShardRunner:
    """A shard runner for the pipelines' ``runner=`` argument: the shards go to Ray actors."""

    def run(shards: Sequence[int], worker: ShardWorker, record: Callable[[ShardResult], None]) -> None:
        run_shards(shards, worker, options, record)

    return run


def _connect(options: RayOptions) -> None:
    try:
        import ray
    except ImportError as e:
        raise ClipdexError("the Ray engine needs Ray: pip install 'clipdex[ray]'") from e
    if not ray.is_initialized():
        level = logging.INFO if verbose() else logging.ERROR
        if not verbose():  # Ray's C++ side logs actor internals to stderr at error level; its files keep them
            os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        try:
            with _stderr_silenced(not verbose()):  # start-up notices (token auth, the log level just set)
                if options.address:
                    ray.init(address=options.address, logging_level=level, log_to_driver=verbose())
                else:
                    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=level,
                             log_to_driver=verbose())
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ClipdexError(f"cannot start or reach Ray at {options.address or 'this machine'}: "
                               f"{str(e).splitlines()[0]}") from e


@contextlib.contextmanager
def _stderr_silenced(silence: bool) -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null for the block: Ray's C++ core writes there directly."""
    if not silence:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
