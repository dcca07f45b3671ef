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
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lake.store import LOCK_FILE

from .job_commands import JobCommand, JobRefused, JobRequest

JOBS_DIR_ENV = "DMD2VIZ_JOBS_DIR"
REPO = Path(__file__).resolve().parents[1]
RUNNING, DONE, FAILED = "running", "done", "failed"
KEEP_JOBS = 20  # older job folders are removed when a new job starts
_ACTIVE_LOCK = "active.lock"
_STATUS, _OUTPUT = "status.json", "output.log"


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
