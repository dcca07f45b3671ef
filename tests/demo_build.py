"""The CLI-built demo lake, made once per test run however many pytest-xdist workers need it.

`make demo-lake-steps` runs in the background, in its own process group, at nice 10: the
tests running meanwhile keep the CPU they had (kill -9 at a given row count, browsers) and
the build takes the cycles they leave idle. The first process to ask for it claims the
shared folder (an O_EXCL file) and starts it; every process, the claimant included, waits
for the build's process to end through a pidfd (no polling) and then reads its exit status
from the file the build's shell wrote.

The folder is shared by the run's processes: a plain session's basetemp, or under xdist the
controller's basetemp, whose `popen-gw<N>` subfolders are the workers' basetemps.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 2400  # seconds for the whole build, from its start


def shared_root(basetemp: Path, is_xdist_worker: bool) -> Path:
    """Where the run's one demo build lives."""
    return (basetemp.parent if is_xdist_worker else basetemp) / "cli_demo"


@dataclass(frozen=True)
class DemoLakeBuild:
    """`make demo-lake-steps` building under `root`: the lake `make demo` builds, made by our own CLI."""

    root: Path

    @property
    def lake(self) -> Path:
        return self.root / "demo_lake"

    @property
    def log(self) -> Path:
        return self.root / "build.log"

    def start_unless_started(self) -> None:
        """Start the build, unless a process of this run already has."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(self.root / "build.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        make = ["nice", "-n", "10", "make", "--no-print-directory", "-C", str(REPO), "demo-lake-steps",
                f"PY={sys.executable}", f"LAKE={self.lake}", f"DEMO_DATA={self.root / 'demo_data'}"]
        # The shell records make's status where every waiting process can read it. Output goes to a
        # file, not a pipe: nobody reads a pipe while tests run, and a full one would stall make.
        script = f'{subprocess.list2cmdline(make)} > "$1" 2>&1; echo $? > "$2.tmp" && mv "$2.tmp" "$2"'
        process = subprocess.Popen(["sh", "-c", script, "sh", str(self.log), str(self.root / "build.rc")],
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdin=subprocess.DEVNULL,
                                   start_new_session=True)  # its own group: stop() ends make's jobs too
        (self.root / "build.pid.tmp").write_text(f"{process.pid} {time.time()}")
        os.replace(self.root / "build.pid.tmp", self.root / "build.pid")

    def _pid_and_start(self) -> tuple[int, float]:
        pid, started = (self.root / "build.pid").read_text().split()
        return int(pid), float(started)

    def output(self, tail: int) -> str:
        return self.log.read_text(errors="replace")[-tail:] if self.log.exists() else "(no output yet)"

    def wait(self) -> Path:
        """The built lake, once make has finished; an AssertionError with make's output if it failed or ran too long."""
        self.start_unless_started()
        pid, started = self._pid_and_start()
        try:
            process = os.pidfd_open(pid)
        except ProcessLookupError:  # ended (and reaped) already
            process = None
        if process is not None:
            try:
                # Waited for now: back to normal priority where this user may raise it (root, or a raised
                # RLIMIT_NICE), so on a machine shared with other work it no longer yields to that work too.
                os.setpriority(os.PRIO_PGRP, pid, 0)
            except OSError:
                pass
            ended, _, _ = select.select([process], [], [], max(0.0, started + TIMEOUT - time.time()))
            os.close(process)
            if not ended:
                self.stop()
                raise AssertionError(f"building the demo lake took over {TIMEOUT} s:\n{self.output(4000)}")
        status = self.root / "build.rc"
        if not status.exists() or status.read_text().strip() != "0":
            code = status.read_text().strip() if status.exists() else "killed"
            raise AssertionError(f"building the demo lake failed ({code}):\n{self.output(6000)}")
        return self.lake

    def stop(self) -> None:
        """Kill the build's whole process group if it still runs (a run that ends before needing it)."""
        if not (self.root / "build.pid").exists() or (self.root / "build.rc").exists():
            return
        pid, _ = self._pid_and_start()
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
