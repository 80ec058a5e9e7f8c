"""`flask jobs run` as a real OS process of its own, forked from a warm interpreter.

Starting `python -m flask --app wsgi jobs run` costs a couple of seconds of imports before the run does anything,
and the kill trials start dozens of runs. A multiprocessing fork server imports the heavy modules once
(`tests.plans.jobs_warm`); each run is a fresh process forked from it that builds its own app from its own
environment (DATABASE_URL, PORTAL_*), opens its own database and HTTP connections, runs the same click command
(`flask --app wsgi jobs run [--as-of …]`) and exits with its own code; SIGKILL kills it like any other process.
`JobsProcess` answers like `subprocess.Popen` (pid, poll, send_signal, kill, communicate, returncode).
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile

_context = None


def _context_():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["tests.plans.jobs_warm"])
    return _context


def _child(args: list[str], env: dict, cwd: str, out_path: str, err_path: str) -> None:
    """In the forked process: the environment and working directory of the run, stdout/stderr to files, then the
    flask CLI exactly as `python -m flask …` runs it (it exits through SystemExit with the command's code)."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out_path), (2, err_path)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    sys.argv = ["flask", *args]
    from flask.cli import main

    main()


class JobsProcess:
    def __init__(self, args: list[str], env: dict, cwd: str):
        self.args = args
        self._dir = tempfile.mkdtemp(prefix="jobs-run-")
        self._out = os.path.join(self._dir, "stdout")
        self._err = os.path.join(self._dir, "stderr")
        for path in (self._out, self._err):  # there even when the run is killed before it opens them
            open(path, "w").close()
        self._proc = _context_().Process(target=_child, args=(args, env, str(cwd), self._out, self._err))
        self._proc.start()
        self.pid = self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.exitcode  # -9 after SIGKILL, like Popen

    def poll(self) -> int | None:
        return self._proc.exitcode

    def send_signal(self, sig: int) -> None:
        if self._proc.exitcode is None:  # a no-op once it has exited, like Popen
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self._proc.join(timeout)
        if self._proc.exitcode is None:
            raise subprocess.TimeoutExpired(["flask", *self.args], timeout)
        with open(self._out) as out, open(self._err) as err:
            result = out.read(), err.read()
        shutil.rmtree(self._dir, ignore_errors=True)
        return result
