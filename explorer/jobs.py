"""Edit jobs started from the explorer, run outside the Streamlit script.

A job is two commands run one after the other by a small driver process
(`python -m explorer.jobs run JOB_FOLDER`): the edit (`python -m ingest edit ...`) and the
placement of its new samples in the current embedding (`python -m analysis place ...`).
Both are argument lists built here from validated values only (ids that exist in the
lake, bounded N, known layers): nothing from the browser is a path, a flag or code, and
no shell ever runs.

State lives in a per-lake job folder outside the lake (under the system temp dir, keyed by
the lake's resolved path; `DMD2VIZ_JOBS_DIR` moves it), one sub-folder per job with its
`status.json` and `output.log`, so any rerun of any browser session reads the same
progress, and a job outlives the rerun (and the server) that started it.

One job at a time per lake: the driver holds `active.lock` (an flock handed to it by the
process that started it, so there is no window between the check and the start) for its
whole life; the OS releases it when the driver ends, however it ends. A second request
while one runs is refused with a message naming the running job (not queued: a queue
would run edits the researcher may no longer want once the first lands). The lake's own
writer lock stays the real guard: a request while any other writer holds the lake is
refused, naming the holder, and a job that meets a lock anyway fails with the writer's
one-line message.

Nothing here imports Streamlit: `explorer/jobs_panel.py` is the page side.
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lake.layout import T2I_GROUP, parse_key, split_t2i_layer
from lake.store import LOCK_FILE

JOBS_DIR_ENV = "DMD2VIZ_JOBS_DIR"
REPO = Path(__file__).resolve().parents[1]

# The edit operations as the CLI names them (`python -m ingest edit <operation>`).
OPERATIONS = ("regenerate", "variations", "class-swap", "interpolate", "neighbours", "from-real")
MAX_N = 64  # the bound on samples per job
MAX_PARENTS = 64
MAX_SEED = 2**31 - 1
MAX_SIGMA = 80.0  # the generator's largest noise level
RUNNING, DONE, FAILED = "running", "done", "failed"
KEEP_JOBS = 20  # older job folders are removed when a new job starts
_ACTIVE_LOCK = "active.lock"
_STATUS, _OUTPUT = "status.json", "output.log"
_LAYER_MAP = re.compile(r"(\d+)x(\d+)")


class JobRefused(ValueError):
    """A job request that is not started; the message is one line for the page."""


@dataclass(frozen=True)
class LakeFacts:
    """What a request is checked against: what the lake holds (read once per lake commit)."""

    lake: Path
    sample_exists: Callable[[Sequence[str]], list[bool]]  # per id: is it a row of `samples`?
    source_of: Callable[[Sequence[str]], list[str]]  # per id: its source ('real'/'generated'; '' when absent)
    layers: tuple[str, ...]  # layers with generation means or probes (canonical names)
    channels: dict[str, int] = field(default_factory=dict)  # layer -> channel count, where known
    keys: tuple[str, ...] = ()  # analysis keys with a stored PCA (placement needs one)


@dataclass(frozen=True)
class JobRequest:
    """One edit as the explorer asks for it; every field is checked by `build_commands`."""

    operation: str
    parents: tuple[str, ...]
    key: str  # the current embedding's key: probe and place the new samples there
    n: int = 8
    seed: int = 0
    class_id: int | None = None
    layer: str = ""
    mask: str = ""  # '0'/'1' row-major over the layer's map; '' = everywhere
    channels: tuple[int, ...] = ()  # () = all
    sigma: float | None = None


@dataclass(frozen=True)
class JobCommand:
    """One step of a job: a name for the page and the argument list it runs."""

    name: str
    argv: tuple[str, ...]


def layer_map(layer: str) -> tuple[int, int] | None:
    """The spatial size a layer's name states (`enc.8x8_block2` -> (8, 8)), else None."""
    found = _LAYER_MAP.search(layer)
    return (int(found.group(1)), int(found.group(2))) if found else None


def t2i_refusal(parents: Sequence[str], key: str) -> str | None:
    """Why an edit cannot run on these samples or this key because they belong to a text-to-image model (None: they do not).

    The edits (`ingest edit`) rerun the ImageNet generator from a sample's seed and class;
    a text-to-image sample (id ``t2i/<name>/...``) or key (layer ``<name>.<module>``) has neither.
    """
    t2i = next((p for p in parents if p.startswith(f"{T2I_GROUP}/")), None)
    if t2i is not None:
        return f"{t2i} is a text-to-image sample; edits rerun the ImageNet generator, which did not make it"
    try:
        layer = parse_key(key).layer
    except ValueError:
        return None
    if split_t2i_layer(layer) is not None:
        return f"{key} is a text-to-image model's key; edits probe and place with the ImageNet generator's layers"
    return None


def build_commands(request: JobRequest, facts: LakeFacts, python: str = sys.executable) -> list[JobCommand]:
    """The argument lists of a job (the edit, then the placement), or JobRefused naming the problem.

    Pure apart from the lookups in `facts`: what comes from the page is only ever a value
    checked against the lake (a sample id that exists, a known layer, numbers in range).
    """
    op = request.operation
    if op not in OPERATIONS:
        raise JobRefused(f"unknown operation {op!r}; expected one of {', '.join(OPERATIONS)}")
    parents = tuple(dict.fromkeys(request.parents))
    if not parents:
        raise JobRefused(f"{op}: select a sample first")
    if len(parents) > MAX_PARENTS:
        raise JobRefused(f"{op}: at most {MAX_PARENTS} samples, not {len(parents)}")
    why = t2i_refusal(parents, request.key)
    if why is not None:
        raise JobRefused(f"{op}: {why}")
    missing = [p for p, ok in zip(parents, facts.sample_exists(parents)) if not ok]
    if missing:
        raise JobRefused(f"{op}: no sample {missing[0]!r} in the lake")
    sources = facts.source_of(parents)
    if op == "from-real":
        if len(parents) != 1 or sources[0] != "real":
            raise JobRefused("from-real: select exactly one real sample")
    elif op in ("neighbours", "variations"):
        pass  # any samples: a blend recomputes their outputs at the layer; variations of a real one take its class
    elif any(s != "generated" for s in sources):
        raise JobRefused(f"{op}: needs generated samples (a real image has no seed to reuse)")
    if op == "interpolate" and len(parents) != 2:
        raise JobRefused(f"interpolate: select exactly two generated samples (the selection and one manual neighbour), not {len(parents)}")
    if op in ("regenerate", "variations", "class-swap") and len(parents) != 1:
        raise JobRefused(f"{op}: works on one sample, not {len(parents)}")
    if op == "neighbours" and len(parents) < 2:
        raise JobRefused("neighbours: select a sample and at least one manual neighbour to blend")
    if op == "neighbours" and sources[0] != "generated":
        raise JobRefused("neighbours: the selected sample must be a generated one (its noise and class start the pass)")
    args = ["--lake", str(facts.lake), "--from", ",".join(parents)]
    if op in ("variations", "interpolate"):
        low = 2 if op == "interpolate" else 1  # interpolation counts both ends
        if not (isinstance(request.n, int) and low <= request.n <= MAX_N):
            raise JobRefused(f"{op}: N must be between {low} and {MAX_N}, not {request.n}")
        args += ["--n", str(request.n)]
    if op == "variations":
        if not (isinstance(request.seed, int) and 0 <= request.seed <= MAX_SEED):
            raise JobRefused(f"{op}: the seed must be between 0 and {MAX_SEED}, not {request.seed}")
        args += ["--seed", str(request.seed)]
    if op == "class-swap":
        if request.class_id is None or not 0 <= int(request.class_id) < 1000:
            raise JobRefused(f"class-swap: the class must be an ImageNet class 0..999, not {request.class_id}")
        args += ["--class", str(int(request.class_id))]
    if op == "neighbours":
        args += _layer_args(request, facts)
    # from-real probes its sample at sigma; a neighbour blend probes its real samples there for their maps.
    if op == "from-real" or (op == "neighbours" and "real" in sources):
        sigma = request.sigma
        if sigma is None or not math.isfinite(sigma) or not 0 < sigma <= MAX_SIGMA:
            raise JobRefused(f"{op}: sigma must be in (0, {MAX_SIGMA:g}], not {sigma}")
        args += ["--sigma", repr(float(sigma))]
    commands = []
    if op == "regenerate":
        commands.append(JobCommand("regenerate", (python, "-m", "ingest", "edit", op, *args)))
        return commands  # writes no sample: nothing to place
    if request.key not in facts.keys:
        raise JobRefused(f"{op}: the current embedding's key {request.key!r} has no stored PCA to place new samples in")
    commands.append(JobCommand(op, (python, "-m", "ingest", "edit", op, *args, "--probe", request.key)))
    commands.append(JobCommand("place", (python, "-m", "analysis", "place", "--lake", str(facts.lake), "--key", request.key)))
    return commands


def _layer_args(request: JobRequest, facts: LakeFacts) -> list[str]:
    if request.layer not in facts.layers:
        raise JobRefused(f"neighbours: unknown layer {request.layer!r}; the lake has {', '.join(facts.layers) or 'none'}")
    args = ["--layer", request.layer]
    if request.mask:
        size = layer_map(request.layer)
        cells = size[0] * size[1] if size else None
        if cells is None or len(request.mask) != cells or set(request.mask) - {"0", "1"}:
            raise JobRefused(f"neighbours: the mask must be {cells or 'one per map cell'} characters of 0/1 for {request.layer}")
        if "1" not in request.mask:
            raise JobRefused("neighbours: the mask selects no cell; tick at least one (or none for everywhere)")
        if "0" in request.mask:  # all ones is everywhere: the same edit, the same ids
            args += ["--mask", request.mask]
    if request.channels:
        limit = facts.channels.get(request.layer)
        bad = [c for c in request.channels if c < 0 or (limit is not None and c >= limit)]
        if bad:
            raise JobRefused(f"neighbours: channel {bad[0]} is not a channel of {request.layer} (0..{(limit or 1) - 1})")
        args += ["--channels", ",".join(str(c) for c in sorted(set(request.channels)))]
    return args


def parse_channels(text: str) -> tuple[int, ...]:
    """'0,5,9' or '0-3,7' -> (0, 5, 9) / (0, 1, 2, 3, 7); JobRefused (one line) otherwise."""
    found: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            start, end = int(low), int(high) if dash else int(low)
        except ValueError:
            raise JobRefused(f"channels: {part!r} is not a channel number or a range like 0-3") from None
        if start < 0 or end < start or end - start > 4096:
            raise JobRefused(f"channels: {part!r} is not a valid range")
        found.extend(range(start, end + 1))
    return tuple(dict.fromkeys(found))


# --------------------------------------------------------------------------- job state on disk


@dataclass(frozen=True)
class JobStatus:
    """A job as its folder records it; what the page shows."""

    job_id: str
    operation: str
    parents: tuple[str, ...]
    key: str
    commands: tuple[JobCommand, ...]
    state: str  # running, done, failed
    step: int  # index of the command running (or last run)
    started: float
    finished: float | None = None
    message: str = ""  # a failed job's one-line error, or a finished job's last output line
    pid: int | None = None  # the driver's process id

    @property
    def finished_ok(self) -> bool:
        return self.state == DONE

    def step_text(self) -> str:
        if not self.commands:
            return ""
        step = min(self.step, len(self.commands) - 1)
        return f"step {step + 1} of {len(self.commands)}: {self.commands[step].name}"


def jobs_dir(lake: Path | str) -> Path:
    """The lake's job folder: outside the lake (it never holds job state), keyed by its resolved path."""
    root = Path(os.environ.get(JOBS_DIR_ENV) or Path(tempfile.gettempdir()) / "dmd2viz-jobs")
    resolved = str(Path(lake).expanduser().resolve())
    return root / hashlib.sha256(resolved.encode()).hexdigest()[:16]


def _write_status(folder: Path, status: JobStatus) -> None:
    """Replace status.json atomically: a reader never sees half a file."""
    data = asdict(status)
    tmp = folder / f".{_STATUS}.{os.getpid()}"
    tmp.write_text(json.dumps(data))
    os.replace(tmp, folder / _STATUS)


def read_status(folder: Path) -> JobStatus | None:
    """The job recorded in `folder` (None when it has no readable status)."""
    try:
        data = json.loads((folder / _STATUS).read_text())
        data["parents"] = tuple(data["parents"])
        data["commands"] = tuple(JobCommand(c["name"], tuple(c["argv"])) for c in data["commands"])
        return JobStatus(**data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def list_jobs(lake: Path | str, limit: int = 5) -> list[JobStatus]:
    """The lake's most recent jobs, newest first; a 'running' job whose driver is gone reads as failed."""
    root = jobs_dir(lake)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True)[:limit]:
        status = read_status(folder)
        if status is None:
            continue
        if status.state == RUNNING and not _driver_alive(root):
            status = _replace(status, state=FAILED, message="the job's process ended without finishing (killed?)")
        found.append(status)
    return found


def running_job(lake: Path | str) -> JobStatus | None:
    """The job running on this lake now, if any."""
    return next((j for j in list_jobs(lake, limit=1) if j.state == RUNNING), None)


def job_output(lake: Path | str, job_id: str, max_chars: int = 4000) -> str:
    """The tail of a job's combined output."""
    return _tail(jobs_dir(lake) / job_id / _OUTPUT, max_chars)


def _tail(path: Path, max_chars: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - max_chars))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def last_line(text: str) -> str:
    """The last non-empty line of some output (a CLI's one-line error or result)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _driver_alive(root: Path) -> bool:
    """Whether some driver holds the lake's active lock."""
    try:
        fd = os.open(root / _ACTIVE_LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we may just have taken
    return False


def lake_writer(lake: Path | str) -> str | None:
    """Who holds the lake's writer lock now ('pid 123'), else None. Reads only: creates nothing in the lake."""
    try:
        fd = os.open(Path(lake) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None  # no lock file: nobody has ever written, nobody writes now
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", errors="replace").strip()
        return holder or "another process"
    finally:
        os.close(fd)
    return None


def start_job(lake: Path | str, request: JobRequest, commands: Sequence[JobCommand], python: str = sys.executable) -> JobStatus:
    """Start a job's driver in the background and return its first status; JobRefused when one runs or the lake is locked.

    The active lock is taken here and handed to the driver (the same open file), so two
    requests can never both start; the driver keeps it until it exits.
    """
    root = jobs_dir(lake)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / _ACTIVE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not _try_lock(fd, lake):
            current = running_job(lake)
            what = f"{current.operation} of {', '.join(current.parents)} ({current.step_text()})" if current else "another job"
            raise JobRefused(f"a job is already running on this lake: {what}; wait for it to finish")
        holder = lake_writer(lake)
        if holder is not None:
            raise JobRefused(f"the lake is being written by {holder}; try again when that job has finished")
        _prune(root)
        # Sorted by name = sorted by start time (list_jobs): the nanoseconds come from the same
        # clock reading as the seconds, so two jobs started within one second keep their order.
        now = time.time_ns()
        job_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now // 10**9)) + f"-{now % 10**9:09d}-{os.getpid()}"
        folder = root / job_id
        folder.mkdir()
        status = JobStatus(job_id, request.operation, tuple(request.parents), request.key, tuple(commands), RUNNING, 0, time.time())
        _write_status(folder, status)
        proc = subprocess.Popen(
            [python, "-m", "explorer.jobs", "run", str(folder), "--lock-fd", str(fd)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(fd,),
            start_new_session=True,  # survives the rerun, the session and the server; a Ctrl-C of the server does not reach it
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return _replace(status, pid=proc.pid)
    finally:
        os.close(fd)  # the driver holds the lock through its own copy of the descriptor


def _try_lock(fd: int, lake: Path | str, grace: float = 2.0) -> bool:
    """Take the active lock; while the last job has recorded its end but its driver is still exiting, wait for it."""
    deadline = time.monotonic() + grace
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            latest = list_jobs(lake, limit=1)
            if (latest and latest[0].state == RUNNING) or time.monotonic() > deadline:
                return False
            time.sleep(0.02)


def _prune(root: Path) -> None:
    folders = sorted((p for p in root.iterdir() if p.is_dir()), reverse=True)
    for old in folders[KEEP_JOBS - 1 :]:
        for item in old.iterdir():
            item.unlink(missing_ok=True)
        old.rmdir()


# --------------------------------------------------------------------------- the driver process


def cancel_job(lake: Path | str, job_id: str) -> bool:
    """Stop the lake's running job `job_id` (its driver and the command it runs); False when it is not running.

    The driver leads its own process group, so the signal reaches the running command too;
    a writer stopped midway leaves the lake as its rollback leaves it, and the same edit can
    be started again.
    """
    job = running_job(lake)
    if job is None or job.job_id != job_id or job.pid is None:
        return False
    try:
        os.killpg(job.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


class _Stopped(Exception):
    pass


def _stop(signum: int, frame: Any) -> None:
    raise _Stopped()


def drive(folder: Path) -> int:
    """Run a job's commands in order (the driver's body); the status file follows every step."""
    status = read_status(folder)
    if status is None:
        return 2
    status = _replace(status, pid=os.getpid())
    _write_status(folder, status)
    signal.signal(signal.SIGTERM, _stop)
    try:
        return _drive(folder, status)
    except _Stopped:  # subprocess.run has killed and reaped the running command on the way out
        current = read_status(folder) or status
        _write_status(folder, _replace(current, state=FAILED, finished=time.time(), message="stopped from the explorer"))
        return 143


def _drive(folder: Path, status: JobStatus) -> int:
    results: list[str] = []
    with open(folder / _OUTPUT, "ab") as log:
        for index, command in enumerate(status.commands):
            status = _replace(status, step=index)
            _write_status(folder, status)
            log.write(f"$ {' '.join(command.argv[1:])}\n".encode())
            log.flush()
            start = log.tell()
            code = subprocess.run(list(command.argv), cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT).returncode
            output = _read_from(folder / _OUTPUT, start)
            if code != 0:
                _write_status(folder, _replace(status, state=FAILED, finished=time.time(),
                                               message=f"{command.name} failed (exit {code}): {last_line(output) or 'no output'}"))
                return 1
            results.append(summary_line(output))
    _write_status(folder, _replace(status, state=DONE, finished=time.time(), message=" · ".join(r for r in results if r)))
    return 0


# The line each of our CLIs ends a successful run with: the edit's report, placement's
# "wrote ...", regenerate's verdict. Their output ends with progress bars or tables.
_SUMMARY = re.compile(r"^(ingest edit [\w-]+: |wrote |regenerate \S+: )")


def summary_line(output: str) -> str:
    """The line that says what a command did (the last summary-looking one), else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    found = [line for line in lines if _SUMMARY.match(line)]
    return (found or lines or [""])[-1]


def _read_from(path: Path, offset: int, max_chars: int = 20_000) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(offset, os.path.getsize(path) - max_chars))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _replace(status: JobStatus, **changes: Any) -> JobStatus:
    return JobStatus(**{**asdict(status), "commands": status.commands, "parents": status.parents, **changes})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m explorer.jobs", description="The explorer's job driver (started by the explorer, not by hand).")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the commands recorded in a job folder's status.json, in order")
    run.add_argument("folder", type=Path, help="the job folder (made by the explorer under the lake's job folder)")
    run.add_argument("--lock-fd", type=int, default=None, help="descriptor of the lake's active-job lock, held until exit")
    args = parser.parse_args(argv)
    return drive(args.folder)


if __name__ == "__main__":
    sys.exit(main())
