"""Progress: a long command shows a spinner or bar on stderr when stderr is a terminal (a
pseudo-terminal here), and nothing under ``--json``, ``--quiet`` or when stderr is a pipe;
stdout is the command's output alone (``--json`` stays one valid document)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

from perfcost.solver.report import progress

COMMAND = (sys.executable, "-c", "from perfcost.solver.cli.main import main; main()")
CASE = "llama3-70b-h100-split"  # an open split: the solve takes about a second


def run(args: list[str], stderr_is_terminal: bool = True) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``perfcost ARGS`` with stderr on a pseudo-terminal
    (or a pipe)."""
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120"}
    if not stderr_is_terminal:
        done = subprocess.run([*COMMAND, *args], capture_output=True, text=True, env=env,
                              timeout=120, check=False)
        return done.returncode, done.stdout, done.stderr
    leader, follower = pty.openpty()
    process = subprocess.Popen([*COMMAND, *args], stdout=subprocess.PIPE, stderr=follower,
                               env=env)
    os.close(follower)
    err = b""
    while True:  # read until the command closes the terminal (else it could block on it)
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        err += chunk
    os.close(leader)
    out = process.stdout.read() if process.stdout else b""
    return process.wait(timeout=120), out.decode(), err.decode(errors="replace")


def test_solve_on_a_terminal_shows_a_spinner_with_elapsed_time() -> None:
    code, out, err = run(["solve", CASE])
    assert code == 0, err
    assert f"solving {CASE}" in err
    assert "0:00:0" in err  # the elapsed time
    assert "optimal" in out and "solving" not in out


def test_json_quiet_and_a_pipe_show_no_progress() -> None:
    code, out, err = run(["solve", CASE, "--json"])
    assert code == 0
    assert err == ""
    assert json.loads(out)["status"] == "optimal"
    code, out, err = run(["solve", CASE, "--quiet"])
    assert code == 0 and err == "" and "optimal" in out
    code, out, err = run(["solve", CASE], stderr_is_terminal=False)
    assert code == 0 and err == "" and "optimal" in out


def test_sweep_on_a_terminal_shows_a_bar_and_json_none() -> None:
    args = ["sweep", "llama3-70b-h100", "--vary", "cluster.gpus=256,512"]
    code, out, err = run(args)
    assert code == 0, err
    assert "sweep (this process)" in err and "2/2" in err
    code, out, err = run([*args, "--json"])
    assert code == 0 and err == ""
    assert len(json.loads(out)) == 2


def test_helpers_are_silent_off_a_terminal() -> None:
    """Under pytest stderr is captured (not a terminal): nothing is drawn, the helpers still
    yield working no-ops."""
    assert not progress.shown()
    assert not progress.shown(quiet=True)
    with progress.spinner("x") as stage:
        stage("y")
    with progress.bar("x", 3) as advance:
        advance(3)
