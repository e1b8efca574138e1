"""scripts/serve_class.sh: Streamlit processes behind nginx, a session (WebSocket and uploads) kept on one process,
and a stop that leaves nothing running.

Needs nginx (the Debian package, installed by .ci/run): skipped without it, except in CI (CI=true), where that fails.
"""

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests

from benchmarks.load_client import Session
from tests.conftest import ROOT, plotly_array, run_async

pytestmark = pytest.mark.nginx

SCRIPT = ROOT / "scripts" / "serve_class.sh"
START_TIMEOUT = 300  # seconds for serve_class.sh to start the processes and nginx


def free_ports(n: int) -> int:
    """the first of n consecutive free local ports"""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n < 65000 and all(_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def require_nginx() -> None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        if os.environ.get("CI"):
            pytest.fail("CI is set but nginx is missing: install it (apt-get install -y nginx)")
        pytest.skip("nginx not found (apt-get install nginx)")


class Class:
    """a running `serve_class.sh n` on free ports, with its run folder under tmp"""

    def __init__(self, n: int, run_dir: Path):
        self.n, self.run_dir = n, run_dir
        self.port, self.base_port = free_ports(1), free_ports(n)
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, PORT=str(self.port), HOST="127.0.0.1", BASE_PORT=str(self.base_port),
                        RUN_DIR=str(run_dir), PYTHON=sys.executable)

    def script(self, *args: str, timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run([str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def start(self) -> "Class":
        done = self.script(str(self.n))
        assert done.returncode == 0, done.stderr + done.stdout
        return self

    def processes(self) -> list[psutil.Process]:
        """nginx's master and workers and every Streamlit process, from the pid files"""
        out = []
        for pid_file in self.run_dir.glob("*.pid"):
            process = psutil.Process(int(pid_file.read_text()))
            out += [process, *process.children(recursive=True)]
        return out

    def access_log(self) -> list[dict]:
        """nginx's access log: request, upstream (the Streamlit process that served it), sticky cookie"""
        pattern = re.compile(r'"(?P<request>[^"]*)" (?P<status>\d+) .*upstream=(?P<upstream>\S+) '
                             r"cookie=(?P<cookie>\S+)")
        return [m.groupdict() for line in (self.run_dir / "access.log").read_text().splitlines()
                if (m := pattern.search(line))]


@pytest.fixture(scope="module")
def class_of_two(tmp_path_factory):
    require_nginx()
    running = Class(2, tmp_path_factory.mktemp("class") / "run").start()
    yield running
    running.script("stop", timeout=120)


def points_csv(n: int) -> bytes:
    X = np.random.default_rng(0).normal(size=(n, 2))
    return ("a,b\n" + "".join(f"{x:.5f},{y:.5f}\n" for x, y in X)).encode()


async def _upload_on_mixtures(url: str):
    session = Session(url)
    opened = await session.open("mixtures")
    uploaded = await session.upload("mx_upload", "class_points.csv", points_csv(37))
    await session.close()
    return session, opened, uploaded


def test_a_csv_uploaded_through_nginx_is_used_by_the_mixtures_page(class_of_two):
    session, opened, uploaded = run_async(_upload_on_mixtures(class_of_two.url))
    assert opened.status == "full" and not opened.exception
    assert uploaded.status == "full" and not uploaded.exception
    captions = [el.body for el in uploaded.find("markdown") if el.body.startswith("Current data")]
    assert captions == [r"Current data: **class\_points**, 37 points (uploaded)."]  # the file name shown literally
    chart = json.loads(next(el.spec for el in uploaded.find("plotly_chart") if el.id.endswith("mx_chart_0")))
    data = next(t for t in chart["data"] if t.get("name", "").startswith("data"))
    assert len(plotly_array(data["x"])) == 37  # EM fits the uploaded points, not the preset's 500

    # the session's WebSocket and its upload reached the same Streamlit process (the cookie nginx set)
    cookie = session.http.cookies.get("lvm_backend")
    mine = [r for r in class_of_two.access_log() if r["cookie"] == cookie]
    stream = {r["upstream"] for r in mine if "/_stcore/stream" in r["request"]}
    upload = {r["upstream"] for r in mine if r["request"].startswith("PUT /_stcore/upload_file/")}
    assert len(stream) == 1 and upload == stream


def test_new_visitors_are_spread_over_both_processes(class_of_two):
    ports = set()
    for _ in range(30):  # each visitor gets a random cookie: 30 all on one process has probability 2 ** -29
        visitor = requests.Session()
        visitor.get(class_of_two.url + "/", timeout=30)
        cookie = visitor.cookies.get("lvm_backend")
        visitor.get(class_of_two.url + "/_stcore/health", timeout=30)
        ports |= {r["upstream"] for r in class_of_two.access_log() if r["cookie"] == cookie}
        if len(ports) == 2:
            break
    assert ports == {f"127.0.0.1:{class_of_two.base_port + i}" for i in range(2)}


def test_stop_ends_nginx_and_every_process_even_with_a_student_connected(tmp_path):
    require_nginx()
    running = Class(2, tmp_path / "run").start()
    connected, release = threading.Event(), threading.Event()

    async def hold_a_session():  # a student's WebSocket, open through nginx until the class has stopped
        session = Session(running.url)
        await session.open("")
        connected.set()
        await asyncio.to_thread(release.wait)
        await session.close()

    student = threading.Thread(target=asyncio.run, args=(hold_a_session(),))
    student.start()
    try:
        assert connected.wait(timeout=START_TIMEOUT)
        processes = running.processes()
        assert len([p for p in processes if "streamlit" in " ".join(p.cmdline())]) == 2
        assert any("nginx: worker" in " ".join(p.cmdline()) for p in processes)
        start = time.monotonic()
        done = running.script("stop", timeout=120)
        assert done.returncode == 0, done.stderr
        # TERM, then KILL after 15 s per process group: a stop that waited for the student's WebSocket (open for a day
        # under nginx's graceful shutdown) would hang here
        assert time.monotonic() - start < 60
        gone, alive = psutil.wait_procs(processes, timeout=5)
        assert alive == []
        assert not list(running.run_dir.glob("*.pid"))
        for port in (running.port, running.base_port, running.base_port + 1):
            with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
    finally:
        release.set()
        running.script("stop", timeout=120)
        student.join(timeout=60)


@pytest.mark.parametrize("n", ["0", "abc", "-3"])
def test_serve_class_refuses_a_bad_process_count(tmp_path, n):
    done = subprocess.run([str(SCRIPT), n], env=dict(os.environ, RUN_DIR=str(tmp_path)), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and "N must be a number of processes" in done.stderr
    assert not list(tmp_path.glob("*.pid"))
