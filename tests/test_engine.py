"""hwgen.engine: `hwgen sim` on a real Dask scheduler and two workers (started as
`dask scheduler` / `dask worker` processes on 127.0.0.1) gives the in-process report; a
worker killed mid-task is replaced and its task re-run, with the same report; an
unreachable scheduler is one line and exit 2, with nothing written; the simulator is
built once per machine, not once per task."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest

from hwgen.cli import main
from hwgen.compiler import compile_model
from hwgen.engine import Engine
from hwgen.errors import HwgenError
from hwgen.model.train import DEFAULTS
from hwgen.sim import regression, runner
from support import random_model, require_simulator

cloudpickle.register_pickle_by_value(sys.modules[__name__])   # tasks defined here
DASK = Path(sys.executable).parent / "dask"
TIMING = {"sim_wall_s", "sim_cpu_s", "process_wall_s", "sim_samples_per_s",
          "sim_samples_per_cpu_s", "per_process_samples_per_s"}


def _untimed(rep: dict) -> dict:
    out = {k: v for k, v in rep.items() if k not in TIMING}
    if "shards" in out:
        out["shards"] = [{k: v for k, v in s.items() if k not in TIMING} for s in out["shards"]]
    return out


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    d = tmp_path_factory.mktemp("engine")
    compile_model(random_model(d / "model.pt", DEFAULTS["digits"].arch), d / "out", check_images=8)
    return d / "out"


def _spawn(args, log):
    return subprocess.Popen([str(DASK), *args], stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """tcp://127.0.0.1:PORT of a `dask scheduler` with two `dask worker`s (each with its
    nanny, which restarts a worker that dies); all stopped at the end."""
    d = tmp_path_factory.mktemp("dask")
    procs = []
    try:
        slog = open(d / "scheduler.log", "w+")
        procs.append(_spawn(["scheduler", "--host", "127.0.0.1", "--port", "0",
                             "--no-dashboard", "--no-show"], slog))
        address = None
        while address is None and procs[0].poll() is None:
            m = re.search(r"Scheduler at:\s+(tcp://127\.0\.0\.1:\d+)", (d / "scheduler.log").read_text())
            address = m.group(1) if m else None
            time.sleep(0.1)
        assert address, (d / "scheduler.log").read_text()
        for i in range(2):
            procs.append(_spawn(["worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                                 "--no-dashboard", "--name", f"w{i}"],
                                open(d / f"worker{i}.log", "w")))
        from distributed import Client
        with Client(address, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def _sim(design, out, *extra):
    return main(["sim", str(design), "--simulator", "verilator", "--images", "5",
                 "--samples", "2", "--seed", "3", "--jobs", "2", "--json", str(out), *extra])


def test_sim_on_a_scheduler_equals_in_process(design, scheduler, tmp_path):
    require_simulator("verilator")
    assert _sim(design, tmp_path / "local.json", "--scheduler", "none") == 0
    assert _sim(design, tmp_path / "dask.json", "--scheduler", scheduler) == 0
    local, dask = (json.loads((tmp_path / f).read_text()) for f in ("local.json", "dask.json"))
    assert [s["image_range"] for s in dask["shards"]] == [[0, 2], [2, 5]]
    assert _untimed(dask) == _untimed(local)
    # the comparison sees a changed draw: another seed differs outside the timing fields
    assert _sim(design, tmp_path / "s4.json", "--scheduler", "none", "--seed", "4") == 0
    assert _untimed(json.loads((tmp_path / "s4.json").read_text())) != _untimed(local)
    # and the environment variable names the scheduler as --scheduler does
    os.environ["HWGEN_SCHEDULER"] = scheduler
    try:
        assert _sim(design, tmp_path / "env.json") == 0
    finally:
        del os.environ["HWGEN_SCHEDULER"]
    assert _untimed(json.loads((tmp_path / "env.json").read_text())) == _untimed(local)


def _dies_once(task, marker, run=regression._run_part):
    """The sim task, but the first attempt kills its own worker process."""
    if not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)
    return run(task)


def test_a_killed_worker_is_replaced_and_the_task_rerun(design, scheduler, tmp_path,
                                                        monkeypatch):
    require_simulator("verilator")
    assert _sim(design, tmp_path / "local.json", "--scheduler", "none") == 0
    marker = tmp_path / "killed"
    monkeypatch.setattr(regression, "_run_part",
                        lambda task, m=str(marker): _dies_once(task, m))
    assert _sim(design, tmp_path / "dask.json", "--scheduler", scheduler) == 0
    assert marker.is_file()          # a worker did die mid-task
    local, dask = (json.loads((tmp_path / f).read_text()) for f in ("local.json", "dask.json"))
    assert _untimed(dask) == _untimed(local)


def test_unreachable_scheduler_is_one_line_exit_2_nothing_written(design, tmp_path, capsys):
    import socket
    with socket.socket() as s:          # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "r.json"
    assert _sim(design, out, "--scheduler", f"tcp://127.0.0.1:{port}") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the Dask scheduler" in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def _build_stamp(outdir, root):
    from distributed import get_worker
    bdir = runner.build(outdir, "verilator", root)
    st = (bdir / "hwgen-build.json").stat()
    return get_worker().name, st.st_ino, st.st_mtime_ns


def test_one_build_per_machine_not_per_task(design, scheduler, tmp_path):
    require_simulator("verilator")
    runner.ensure_verilator_on_path()
    root = tmp_path / "builds"           # empty: the first task builds
    with Engine(scheduler, progress=False) as eng:
        seen = eng.map(lambda _: _build_stamp(design, root), range(4), desc="build")
        names = [name for name, *_ in seen]
        assert max(names.count(n) for n in names) >= 2      # a worker ran two tasks
        # four tasks, one build: every task found the same stamp, written once
        assert len({tuple(s[1:]) for s in seen}) == 1, seen
        # a rebuild would show: remove the stamp, and the next task writes a new one
        (next(root.glob("verilator-*")) / "hwgen-build.json").unlink()
        again = eng.map(lambda _: _build_stamp(design, root), range(1), desc="build")
        assert tuple(again[0][1:]) != tuple(seen[0][1:])


def test_in_process_map_keeps_order_and_local_cluster_agrees():
    with Engine("none", progress=False) as eng:
        assert eng.client is None and eng.map(lambda x: x * x, [3, 1, 2], desc="sq") == [9, 1, 4]
    with pytest.raises(HwgenError, match="--jobs must be >= 1"):
        Engine(workers=0)


def _faults_untimed(rep: dict) -> dict:
    rep = dict(rep, golden=None)
    rep["rtl"] = {k: v for k, v in rep["rtl"].items()
                  if k not in ("wall_s", "build_s", "faults_per_min")}
    rep["rtl"]["runs"] = [{k: v for k, v in r.items() if k != "sim_s"}
                          for r in rep["rtl"]["runs"]]
    return rep


def test_fault_campaign_on_a_scheduler_equals_in_process(scheduler, tmp_path):
    require_simulator("verilator")
    compile_model(random_model(tmp_path / "model.pt", "c4,p2,f10"), tmp_path / "out",
                  check_images=0)
    reps = {}
    for where in ("none", scheduler):
        out = tmp_path / f"f-{len(reps)}.json"
        assert main(["faults", str(tmp_path / "out"), "--faults", "6", "--held", "16",
                     "--test-images", "2", "--samples", "2", "--rtl", "3", "--batch", "2",
                     "--no-progress",
                     "--scheduler", where, "--json", str(out)]) == 0
        reps[where] = json.loads(out.read_text())
    assert reps[scheduler]["rtl"]["faults"] == 3 and reps[scheduler]["rtl"]["batches"] == 2
    assert _faults_untimed(reps[scheduler]) == _faults_untimed(reps["none"])
