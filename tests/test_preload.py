"""The preload server (ramit/preload.py) and the `ramit` command's client side (ramit/launch.py), with a
real server process, real forks and real `ramit` commands: a job run through the server must be the
job a fresh process would have run (same files bit for bit, same exit codes and messages), signals
must reach it, and anything that does not answer must fall back to an ordinary run."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "train"))
from train_helpers import ROOT, child_env, make_sr_data, train_cmd, write_recipe  # noqa: E402

CLIENT = [sys.executable, "-m", "ramit.launch"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("preload")
    path, log = str(d / "s.sock"), d / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ramit.preload", path], cwd=ROOT, env=env,
                                stdout=out, stderr=out)
    deadline = time.time() + 120
    while not os.path.exists(path):
        assert proc.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.2)
    yield {"proc": proc, "address": f"{socket.gethostname()}:{path}", "path": path, "log": log}
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def sr_data(tmp_path_factory):
    return make_sr_data(tmp_path_factory)


def _launched(cmd: list[str]) -> list[str]:
    """`python -m ramit.cli train ...` (train_helpers) as the `ramit` command runs it."""
    assert cmd[:3] == [sys.executable, "-m", "ramit.cli"]
    return [*CLIENT, *cmd[3:]]


def _env(tmp_path: Path, preload: str | None) -> dict:
    env = child_env(tmp_path)
    env.pop("RAMIT_PRELOAD", None)
    if preload is not None:
        env["RAMIT_PRELOAD"] = preload
    return env


def _jobs(server) -> list[tuple[int, str]]:
    return [(int(p), a) for p, a in re.findall(r"job (\d+) started: ramit (.*)", server["log"].read_text())]


def _ended(server, pid: int) -> str | None:
    m = re.search(rf"job {pid} ended: exit (-?\d+)", server["log"].read_text())
    return m.group(1) if m else None


def _wait_for(cond, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead; the server reaps its children within its 1 s select timeout
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def test_a_job_through_the_server_writes_what_a_fresh_process_writes(server, tmp_path):
    # relative --out: the job must run in the client's working directory, not the server's
    cmd = [*CLIENT, "profile", "--model", "RAMiT-1", "--task", "sr", "--scale", "2", "--size", "16x24", "--no-latency",
           "--out", "p.json"]
    results = {}
    for mode, preload in (("forked", server["address"]), ("fresh", "off")):
        cwd = tmp_path / mode
        cwd.mkdir()
        before = len(_jobs(server))
        r = subprocess.run(cmd, cwd=cwd, env=_env(tmp_path, preload), capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert "MACs" in r.stdout and "wrote p.json" in r.stdout  # the job's stdout reached the client's
        results[mode] = json.loads((cwd / "p.json").read_text())
        assert len(_jobs(server)) == before + (mode == "forked")
    assert results["forked"] == results["fresh"]
    pid, argv = _jobs(server)[-1]
    assert argv.startswith("profile --model RAMiT-1") and _ended(server, pid) == "0"


def test_exit_code_and_error_message_come_back(server, tmp_path):
    for preload in (server["address"], "off"):
        before = len(_jobs(server))
        # an environment larger than one socket message (a long PATH, a module system's variables)
        env = {**_env(tmp_path, preload), **{f"RAMIT_TEST_BIG{i}": "x" * 10_000 for i in range(30)}}
        r = subprocess.run([*CLIENT, "train", "--model", "RAMiT", "--task", "sr"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, (preload, r.stderr)
        assert "error: missing --recipe, --train-data, --out" in r.stderr, r.stderr
        assert len(_jobs(server)) == before + (preload != "off")


def test_training_through_the_server_is_bit_identical_to_a_fresh_process(server, sr_data, tmp_path):
    recipe = write_recipe(tmp_path / "tiny.yaml")
    out = {}
    for mode, preload in (("forked", server["address"]), ("fresh", "off")):
        out[mode] = tmp_path / mode
        r = subprocess.run(_launched(train_cmd(recipe, sr_data, out[mode])),
                           cwd=ROOT, env=_env(tmp_path, preload), capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
    assert "train --model RAMiT" in _jobs(server)[-1][1]
    for f in ("model.safetensors", "history.csv", "val.csv"):
        a, b = (out[m] / f for m in ("forked", "fresh"))
        if f == "history.csv":  # its it_s column is a speed
            a, b = ([row.rsplit(",", 1)[0] for row in p.read_text().splitlines()] for p in (a, b))
            assert a == b
        else:
            assert a.read_bytes() == b.read_bytes(), f
    summaries = [json.loads((out[m] / "summary.json").read_text()) for m in ("forked", "fresh")]
    assert summaries[0]["weights_sha256"] == summaries[1]["weights_sha256"]


def _long_training(server, sr_data, tmp_path) -> tuple[subprocess.Popen, int]:
    recipe = write_recipe(tmp_path / "long.yaml", epochs=400, milestones=[300], val_every=None, ckpt_every=1000)
    cmd = _launched(train_cmd(recipe, sr_data, tmp_path / "run"))
    before = len(_jobs(server))
    client = subprocess.Popen(cmd, cwd=ROOT, env=_env(tmp_path, server["address"]), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    _wait_for(lambda: len(_jobs(server)) > before, what="the job to start in the server")
    pid = _jobs(server)[-1][0]
    _wait_for(lambda: (tmp_path / "run" / "recipe.yaml").exists(), what="training to begin")
    return client, pid


def test_sigterm_to_the_command_stops_its_job(server, sr_data, tmp_path):
    # what Snakemake does to a running job on Ctrl-C or a failure elsewhere
    client, pid = _long_training(server, sr_data, tmp_path)
    client.send_signal(signal.SIGTERM)
    assert client.wait(60) == -signal.SIGTERM  # the client dies the way its job did
    _wait_for(lambda: not _alive(pid), 30, "the job to end")
    assert _ended(server, pid) == str(-signal.SIGTERM)


def test_a_killed_command_takes_its_job_with_it(server, sr_data, tmp_path):
    client, pid = _long_training(server, sr_data, tmp_path)
    client.kill()  # SIGKILL: nothing can be forwarded; the job notices its client's socket close
    client.wait(30)
    _wait_for(lambda: not _alive(pid), 30, "the orphaned job to end")


@pytest.mark.parametrize("preload", ["off", "elsewhere:/tmp/x.sock", "HOST:{missing}", "HOST:{stale}"])
def test_anything_that_does_not_answer_runs_the_command_here(server, tmp_path, preload):
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))  # a socket file nobody listens on: what a crashed server leaves behind
    s.close()
    value = preload.replace("HOST", socket.gethostname()).format(missing=tmp_path / "none.sock", stale=stale)
    before = len(_jobs(server))
    r = subprocess.run([*CLIENT, "train", "--model", "RAMiT", "--task", "sr"], cwd=tmp_path,
                       env=_env(tmp_path, value), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "error: missing --recipe" in r.stderr, r.stderr
    assert len(_jobs(server)) == before


def test_the_server_stops_on_sigterm_after_its_running_job(tmp_path, sr_data):
    path, log = str(tmp_path / "s.sock"), tmp_path / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ramit.preload", path], cwd=ROOT, env=env, stdout=out, stderr=out)
    _wait_for(lambda: os.path.exists(path), 120, "the server")
    srv = {"log": log, "address": f"{socket.gethostname()}:{path}"}
    recipe = write_recipe(tmp_path / "tiny.yaml")
    client = subprocess.Popen(_launched(train_cmd(recipe, sr_data, tmp_path / "run")), cwd=ROOT,
                              env=_env(tmp_path, srv["address"]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(lambda: _jobs(srv), 60, "the job")
    proc.terminate()
    _wait_for(lambda: not os.path.exists(path), 30, "the socket to go")  # no new jobs from now on
    assert proc.poll() is None  # ... but the running one is still served
    _, err = client.communicate(timeout=600)
    assert client.returncode == 0, err.decode()[-2000:]
    assert proc.wait(30) == 0 and "exiting" in log.read_text()
    assert (tmp_path / "run" / "model.safetensors").exists()
