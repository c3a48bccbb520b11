"""The one engine of hwgen's fan-outs (`hwgen sim` image shards, `hwgen study` units,
`hwgen faults` RTL runs): independent tasks on Dask distributed, or in this process.

Where the tasks run:

- `--scheduler ADDRESS` (else $HWGEN_SCHEDULER): on that Dask scheduler's workers, e.g.
  `tcp://HOST:8786` (`dask scheduler`, or a dask-jobqueue cluster's `scheduler_address`).
  Workers must see the same paths as the client (a shared file system) and have hwgen
  installed. A scheduler not reached within CONNECT_TIMEOUT seconds is one HwgenError.
- `--scheduler none`, or no scheduler and `--jobs 1` (the default): in this process, one
  task after the other; Dask is not imported.
- otherwise: a LocalCluster of `--jobs` worker processes (one thread each) bound to
  127.0.0.1, without a dashboard.

A task's result does not depend on where it runs, so every path gives the same report for
the same tasks (a sim's shards are `--jobs` ranges wherever they run). A worker that dies
mid-task (killed, out of memory) is replaced by its nanny and the scheduler runs the task
again elsewhere, up to Dask's `distributed.scheduler.allowed-failures` (3) times; an
exception raised by the task itself is not retried (hwgen's tasks are deterministic).
Outputs are written by the caller once every task is done, through hwgen.atomic.
"""

from __future__ import annotations

import logging
import os

from .errors import HwgenError

__all__ = ["Engine", "from_args", "ENV", "IN_PROCESS", "CONNECT_TIMEOUT"]

log = logging.getLogger("hwgen.engine")

ENV = "HWGEN_SCHEDULER"        # the scheduler's address when --scheduler is not given
IN_PROCESS = "none"            # --scheduler none: run the tasks in this process
CONNECT_TIMEOUT = 10           # seconds to reach a scheduler before giving up


def from_args(args, progress: bool = True) -> "Engine":
    """The Engine of a command's parsed --scheduler and --jobs: without a scheduler (option
    or $HWGEN_SCHEDULER) and without --jobs, this process."""
    scheduler = getattr(args, "scheduler", None) or os.environ.get(ENV) or None
    jobs = getattr(args, "jobs", None)
    return Engine(scheduler, 1 if jobs is None and scheduler is None else jobs, progress)


class Engine:
    """A context manager over where tasks run (see the module docstring).

    Parameters
    ----------
    scheduler : str or None
        A Dask scheduler's address, IN_PROCESS, or None ($HWGEN_SCHEDULER, else local).
    workers : int or None
        Worker processes of the local cluster (None: one per core; 1: in this process).
        With a scheduler, the number of parts a caller splits its work into (None: the
        scheduler's workers when connected).
    progress : bool
        Show one tqdm bar over the tasks of each `map`.
    """

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 progress: bool = True):
        if scheduler is None:
            scheduler = os.environ.get(ENV) or None
        if workers is not None and workers < 1:
            raise HwgenError(f"--jobs must be >= 1, not {workers}")
        self.address = scheduler if scheduler != IN_PROCESS else None
        self.in_process = scheduler == IN_PROCESS or (scheduler is None and workers == 1)
        self.workers = workers
        self.progress = progress
        self.client = self.cluster = None

    def __enter__(self) -> "Engine":
        if self.in_process:
            return self
        from distributed import Client, LocalCluster
        if logging.getLogger("distributed").level == logging.NOTSET:
            logging.getLogger("distributed").setLevel(logging.WARNING)   # not hwgen's INFO
        if self.address is None:
            n = self.workers or os.cpu_count() or 1
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                        host="127.0.0.1", dashboard_address=None,
                                        silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
            self.workers = n
            return self
        try:
            self.client = Client(self.address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as e:
            raise HwgenError(f"cannot reach the Dask scheduler {self.address!r} within "
                             f"{CONNECT_TIMEOUT} s ({type(e).__name__})") from None
        if self.workers is None:
            self.workers = max(1, len(self.client.scheduler_info()["workers"]))
        return self

    def __exit__(self, *exc) -> None:
        dlog = logging.getLogger("distributed")
        level = dlog.level
        dlog.setLevel(logging.CRITICAL)     # closing comms is logged as errors: not ours
        try:
            if self.client is not None:
                self.client.close()
            if self.cluster is not None:
                self.cluster.close()
        finally:
            dlog.setLevel(level)
            self.client = self.cluster = None

    @property
    def parts(self) -> int:
        """How many parts to split divisible work into: the worker count (1 when unknown)."""
        return self.workers or 1

    def map(self, fn, tasks, desc: str, unit: str = "task") -> list:
        """fn(task) for every task, as independent tasks; the results in task order.

        One tqdm bar over the tasks as they finish. `fn` and the tasks must pickle
        (cloudpickle: module functions, closures over plain data). An exception of a task
        cancels the others and is raised here; a task that kills its workers more often than
        the scheduler allows is one HwgenError."""
        from tqdm import tqdm
        tasks = list(tasks)
        bar = tqdm(total=len(tasks), desc=desc, unit=unit, dynamic_ncols=True,
                   disable=not self.progress or (self.client is None and len(tasks) < 2))
        try:
            if self.client is None:
                out = []
                for t in tasks:
                    out.append(fn(t))
                    bar.update(1)
                return out
            return self._map_dask(fn, tasks, bar, desc)
        finally:
            bar.close()

    def _map_dask(self, fn, tasks, bar, desc) -> list:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker
        futures = [self.client.submit(fn, t, pure=False) for t in tasks]
        index = {f.key: i for i, f in enumerate(futures)}
        out = [None] * len(tasks)
        try:
            for f in as_completed(futures):
                try:
                    out[index[f.key]] = f.result()
                except KilledWorker as e:
                    raise HwgenError(f"task {index[f.key]} ({desc}): its worker died "
                                     f"{e.allowed_failures + 1} times; see the workers' "
                                     f"logs") from None
                bar.update(1)
        except BaseException:
            self.client.cancel(futures)
            raise
        return out
