"""The study as an explicit ordered list of steps plus one config (STYLE practice 3, after
FINN's `build_dataflow.py`): each step is timed, logged and cached.

Caching. A step's result is JSON, kept in OUTDIR/cache/<step>.json with the key it was made
under: the sha256 of the step's name and version, the values of the config fields it
reads, the hashes of the results of the steps it reads, and a fingerprint of the hwgen
sources it depends on. A later run re-uses the result when the key matches and every file
the result names (its artifacts: model.pt files, compiled designs) still has the hash it
was recorded with. Inside a step, each unit of work (one model's training, evaluation,
compilation or RTL regression) is cached the same way in OUTDIR/cache/units/, so changing
one field (say, adding a seed) redoes only the units it touches, and an interrupted study
resumes where it stopped. A step's units that are not cached run as independent tasks of
the context's hwgen.engine.Engine (a local Dask cluster or a scheduler's workers: the same
results and the same cache as in one process); their records are written here, as each
is done.

Timings and cache hits are kept apart from the results (results.json "run"), so the same
config gives the same results apart from that field.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..atomic import sha256_file, write_text
from ..errors import HwgenError
from .config import StudyConfig

__all__ = ["Step", "Context", "run_study", "sha256_json", "sha256_file", "source_fingerprint"]

log = logging.getLogger("hwgen.study")

CACHE_FORMAT = "hwgen-study-cache"
PACKAGE = Path(__file__).resolve().parents[1]      # the hwgen package directory


def sha256_json(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, allow_nan=False).encode()).hexdigest()


def source_fingerprint(parts: tuple[str, ...]) -> str:
    """sha256 over the .py sources under the hwgen package paths `parts` ("" = all of
    hwgen): a change of the code a step runs invalidates its cache."""
    h = hashlib.sha256()
    for part in parts:
        base = PACKAGE / part if part else PACKAGE
        files = [base] if base.is_file() else sorted(base.rglob("*.py"))
        for f in files:
            h.update(f.relative_to(PACKAGE).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Step:
    """One step of the study.

    name: the step's name (and its cache file's); run: the function, ctx -> JSON-ready
    result; reads: the StudyConfig fields it reads; inputs: the earlier steps whose
    results it reads; code: hwgen source paths whose change invalidates it ("" = all);
    cache: False for a step that must always run (the report, which shows this run's
    timings); version: bump to invalidate old caches when the result's layout changes.
    """
    name: str
    run: Callable[["Context"], dict]
    reads: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    code: tuple[str, ...] = ("",)
    cache: bool = True
    version: int = 1


@dataclass
class Context:
    """What a step sees: the config, the output directory, the earlier steps' results,
    the command that started the study, and a per-unit cache."""
    cfg: StudyConfig
    outdir: Path
    command: str
    progress: bool = True
    results: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    step: Step | None = None
    _code: str = ""
    engine: object = None       # a hwgen.engine.Engine, or None: this process

    def __getstate__(self) -> dict:
        # what a unit's closure carries to a worker: no engine, no progress bars there
        return dict(self.__dict__, engine=None, progress=False)

    def path(self, rel: str) -> Path:
        return self.outdir / rel

    def _unit_record(self, name: str, inputs: dict) -> tuple[str, Path, dict | None]:
        key = sha256_json({"step": self.step.name, "version": self.step.version,
                           "code": self._code, "unit": name, "inputs": inputs})
        f = self.outdir / "cache" / "units" / self.step.name / f"{name}.json"
        return key, f, _load_record(f, key, self.outdir)

    def unit(self, name: str, inputs: dict, fn: Callable[[], tuple[dict, list[str], dict]]) -> dict:
        """Run (or re-use) one unit of the current step. `inputs` is everything the unit's
        result depends on (JSON-ready); fn() -> (result, artifact paths relative to the
        output directory, timing figures). Returns the result."""
        return self.units([(name, inputs, fn)])[name]

    def units(self, items, desc: str | None = None) -> dict:
        """`unit` for each (name, inputs, fn) of `items`; {name: result} in their order.
        The units that are not cached run as tasks of `engine` (one bar over them)."""
        t = self.timings.setdefault(self.step.name, {}).setdefault("units", {})
        out, todo = {}, []
        for name, inputs, fn in items:
            key, f, rec = self._unit_record(name, inputs)
            if rec is not None:
                t[name] = dict(rec.get("timing", {}), cached=True)
                log.info("%s %s: cached", self.step.name, name)
                out[name] = rec["result"]
            else:
                out[name] = None
                todo.append((name, key, f, fn))
        if todo:
            from ..engine import Engine
            eng = self.engine or Engine("none", progress=self.progress)
            done = eng.map(_timed, [fn for *_, fn in todo], desc=f"study {desc or self.step.name}",
                           unit="unit")
            for (name, key, f, _), (result, artifacts, timing) in zip(todo, done):
                _save_record(f, key, self.step.name, result, artifacts, self.outdir, timing)
                t[name] = dict(timing, cached=False)
                out[name] = result
        return out


def _timed(fn) -> tuple[dict, list[str], dict]:
    """A unit's fn() -> (result, artifacts, timing with its seconds): the task."""
    t0 = time.perf_counter()
    result, artifacts, timing = fn()
    return result, artifacts, dict(timing, seconds=time.perf_counter() - t0)


def _load_record(f: Path, key: str, outdir: Path) -> dict | None:
    """A cache record if it exists, has `key` and all its artifacts are unchanged."""
    if not f.is_file():
        return None
    try:
        rec = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(rec, dict) or rec.get("format") != CACHE_FORMAT or rec.get("key") != key:
        return None
    for rel, sha in rec.get("artifacts", {}).items():
        p = outdir / rel
        if not p.is_file() or sha256_file(p) != sha:
            log.info("cache %s: %s changed or missing, recomputing", f.name, rel)
            return None
    return rec


def _artifact_files(outdir: Path, rels: list[str]) -> dict:
    out = {}
    for rel in rels:
        p = outdir / rel
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for q in files:
            out[q.relative_to(outdir).as_posix()] = sha256_file(q)
    return out


def _save_record(f: Path, key: str, step: str, result: dict, artifacts: list[str],
                 outdir: Path, timing: dict) -> None:
    rec = {"format": CACHE_FORMAT, "version": 1, "step": step, "key": key, "result": result,
           "artifacts": _artifact_files(outdir, artifacts), "timing": timing}
    write_text(f, json.dumps(rec, sort_keys=True, indent=1, allow_nan=False) + "\n")


def run_study(cfg: StudyConfig, steps, command: str, progress: bool = True,
              engine=None) -> Context:
    """Run `steps` in order on `cfg` (validated), caching each; return the context (its
    `results` and `timings` per step). The units of a step run as tasks of `engine` (a
    hwgen.engine.Engine; None: in this process)."""
    outdir = Path(cfg.output_dir)
    if outdir.exists() and not outdir.is_dir():
        raise HwgenError(f"{outdir}: exists and is not a directory")
    if engine is not None and engine.client is not None:
        outdir = outdir.resolve()       # the workers' current directory may differ
    ctx = Context(cfg=cfg, outdir=outdir, command=command, progress=progress, engine=engine)
    t_all = time.perf_counter()
    for k, step in enumerate(steps, start=1):
        ctx.step = step
        ctx._code = source_fingerprint(step.code)
        key = sha256_json({
            "step": step.name, "version": step.version, "code": ctx._code,
            "config": {f: getattr(cfg, f) for f in step.reads},
            "inputs": {i: sha256_json(ctx.results[i]) for i in step.inputs}})
        f = outdir / "cache" / f"{step.name}.json"
        t0 = time.perf_counter()
        rec = _load_record(f, key, outdir) if step.cache else None
        tim = ctx.timings.setdefault(step.name, {})
        if rec is not None:
            ctx.results[step.name] = rec["result"]
            tim.update(seconds=time.perf_counter() - t0, cached=True)
            log.info("step %d/%d %s: cached (%s)", k, len(steps), step.name, f)
            continue
        log.info("step %d/%d %s ...", k, len(steps), step.name)
        tim["cached"] = False         # seen by a step that reports timings (the report)
        result, artifacts = step.run(ctx)
        ctx.results[step.name] = result
        tim["seconds"] = time.perf_counter() - t0
        if step.cache:
            _save_record(f, key, step.name, result, artifacts, outdir,
                         {"seconds": tim["seconds"]})
        log.info("step %d/%d %s: done in %.1f s", k, len(steps), step.name, tim["seconds"])
    ctx.timings["total_seconds"] = time.perf_counter() - t_all
    return ctx
