"""Load benchmark: a class of simulated students against the app, without a browser per student.

Each student is a `load_client.Session` speaking Streamlit's WebSocket protocol: it opens a page, moves that page's
sliders with a think time between moves, then goes on to the next page through the sidebar navigation, round all
five pages. Measured per interaction: seconds from the BackMsg sent to script_finished (the server's rerun plus a
loopback round trip); over the measurement window: reruns per second, the server's CPU time and peak RSS, and what
other work on the machine used meanwhile.

Scenarios, each on a fresh server (warmed by one visit to every page first):
- one student alone: the server's CPU time for every kind of interaction;
- one Streamlit process pinned to one core, the generator on another: 10, 30 and 100 students, then more sizes
  between the largest that met the target and the smallest that missed it (the class size one process holds);
- the same students while one more trains a deep LVM over and over, at that class size and at 30 (the others'
  latency, as a ratio);
- through nginx (scripts/serve_class.sh): 1 process against one per core, 30 and 100 students;
- 5 Chromium sessions moving sliders, server and browsers pinned to different cores (browser-side latency).

    python benchmarks/bench_load.py             # everything, ~45 minutes; prints and writes benchmarks/results/load.md
    python benchmarks/bench_load.py --quick     # short windows: a smoke run of every scenario
    python benchmarks/bench_load.py --priority  # ahead of other work on a shared machine (root)
    python benchmarks/bench_load.py --report-from /tmp/bench-load-.../results.json   # the report again, no run
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.load_client import Session  # noqa: E402

THINK_S = (2.0, 8.0)  # seconds a student looks at the result before the next move (uniform)
MOVES_PER_PAGE = 5
PAGES = ("", "mixtures", "deep-lvm", "estimating", "elbo")
# what a student moves on each page, by kind ("button" kinds are clicks); each key is equally likely on its page
MOVES = {
    "": {"home slider": ["home_pi", "home_n"]},
    "mixtures": {"mixture slider": ["mx_K", "mx_seed", "mx_speed", "mx_gen_n"]},
    "deep-lvm": {"deep-LVM z slider": ["dl_z1"],
                 "deep-LVM theta slider": ["dl_theta_seed", "dl_seed_noise", "dl_A1", "dl_c1"]},
    "estimating": {"estimator slider": ["est_qloc_0", "est_qlsc_0", "est_k", "est_R", "est_box"]},
    "elbo": {"ELBO slider": ["elbo_loc1", "elbo_ls1", "elbo_lr", "elbo_speed"], "ELBO Step button": ["elbo_step"]},
}
KINDS = ["estimator slider", "mixture slider", "home slider", "deep-LVM z slider", "deep-LVM theta slider",
         "ELBO slider", "ELBO Step button", "page switch"]
TARGET_KINDS = ("estimator slider", "mixture slider")
TARGET_P95_S = 1.0
TRAINING_TARGET_RATIO = 2.0
SETTLE_S = 5.0  # seconds between the last student's first page and the window's start
TIMEOUT_S = 600.0  # a rerun slower than this counts as a failed student (an overloaded server is still measured)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PRIORITY_NICE = -10  # --priority: the generator and everything it starts run at this niceness, ahead of other work
SERVER_ARGS = ["--server.headless", "true", "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]


# ------------------------------------------------------------------------------------------------- the students


def page_moves(page: str) -> list[tuple[str, str]]:
    """(widget key, kind) of every move a student may make on the page"""
    return [(key, kind) for kind, keys in MOVES[page].items() for key in keys]


def nudge(widget, rng: random.Random):
    """a new value near the slider's current one, as a drag or a few arrow keys give: 1 to 5% of its range away"""
    proto = widget.proto
    if proto.options:  # a select slider: a neighbouring option
        options = list(proto.options)
        i = options.index(widget.state.string_array_value.data[0])
        j = i + rng.choice((-1, 1)) * rng.randint(1, 2)
        j = j if 0 <= j < len(options) else 2 * i - j  # reflect at the ends
        return options[min(max(j, 0), len(options) - 1)]
    n = round((proto.max - proto.min) / proto.step)
    i = round((widget.state.double_array_value.data[0] - proto.min) / proto.step)
    j = i + rng.choice((-1, 1)) * rng.randint(1, max(1, n // 20))
    j = min(max(j if 0 <= j <= n else 2 * i - j, 0), n)
    value = proto.min + j * proto.step
    return int(round(value)) if proto.data_type == type(proto).INT else round(value, 10)


@dataclass
class Log:
    """interactions of one scenario (one dict each), the scenario's clock and its measurement window"""

    t0: float = field(default_factory=time.perf_counter)
    rows: list[dict] = field(default_factory=list)
    window: tuple[float, float] = (math.inf, math.inf)  # set once every student has opened a page
    opened: int = 0  # students whose first page has arrived

    def clock(self) -> float:
        return time.perf_counter() - self.t0

    def over(self) -> bool:
        return self.clock() >= self.window[1]

    def add(self, student: int, page: str, kind: str, key: str, start: float, run=None, error: str = "") -> None:
        if run is not None and not error:
            broken = run.find("alert", lambda el: "could not be drawn" in el.body)
            error = run.exception or (broken[0].body[:120] if broken else "")
            if run.status not in ("full", "fragment"):
                error = error or f"run ended: {run.status}"
        self.rows.append({"student": student, "page": page, "kind": kind, "key": key, "start": start,
                          "seconds": run.seconds if run is not None else float("nan"),
                          "bytes": run.received_bytes if run is not None else 0, "error": error})


async def student(i: int, url: str, log: Log, seed: int) -> None:
    """one student: open a page, move its sliders MOVES_PER_PAGE times, go to the next page, until the window ends"""
    rng = random.Random(seed * 100_003 + i)
    pages = PAGES[i % len(PAGES):] + PAGES[: i % len(PAGES)]
    session = Session(url)
    page = pages[0]
    try:
        start = log.clock()
        try:
            log.add(i, page, "page open", "", start, await session.open(page, timeout=TIMEOUT_S))
        finally:
            log.opened += 1
        for visit in range(1, 10**6):
            for _ in range(MOVES_PER_PAGE):
                await asyncio.sleep(rng.uniform(*THINK_S))
                if log.over():
                    return
                key, kind = rng.choice(page_moves(page))
                if key not in session.widgets:
                    log.add(i, page, kind, key, log.clock(), error=f"widget {key} not on the page")
                    continue
                start = log.clock()
                if kind.endswith("button"):
                    run = await session.click(key, timeout=TIMEOUT_S)
                else:
                    run = await session.set_value(key, nudge(session.widgets[key], rng), timeout=TIMEOUT_S)
                log.add(i, page, kind, key, start, run)
            await asyncio.sleep(rng.uniform(*THINK_S))
            if log.over():
                return
            page = pages[visit % len(pages)]
            start = log.clock()
            log.add(i, page, "page switch", page, start, await session.switch_page(page, timeout=TIMEOUT_S))
    except Exception as exc:  # noqa: BLE001 - a failed student is a result (counted as an error), not a crash
        log.add(i, page, "failure", "", log.clock(), error=f"{type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(Exception):
            await session.close()


async def trainer(url: str, log: Log) -> None:
    """one student on the deep-LVM page pressing Train again as soon as each training run has finished"""
    session = Session(url)
    try:
        await session.open("deep-lvm", timeout=TIMEOUT_S)
        while log.clock() < log.window[0]:
            await asyncio.sleep(0.1)
        while not log.over():
            start = log.clock()
            run = await session.click("dl_train", timeout=TIMEOUT_S)
            log.add(-1, "deep-lvm", "training run", "dl_train", start, run)
    finally:
        await session.close()


async def loop_lag(samples: list[float], stop: asyncio.Event) -> None:
    """how late the generator's event loop wakes: a busy generator would add this to every latency"""
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(0.05)
        samples.append(time.perf_counter() - t - 0.05)


# ------------------------------------------------------------------------------------------------ servers


def free_ports(n: int) -> int:
    """the first of n consecutive free local ports"""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n < 65000 and all(_port_free(base + i) for i in range(n)):
            return base


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def prioritise(pid: int) -> None:
    """With --priority: put a process (and its session's other processes) ahead of other work on the machine. Linux
    schedules sessions as groups (autogroup) and weighs the groups by the group's niceness, not the processes'."""
    os.setpriority(os.PRIO_PROCESS, pid, PRIORITY_NICE)
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(PRIORITY_NICE))


def wait_healthy(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.5)
    raise RuntimeError(f"no server at {url}")


async def warm(url: str) -> None:
    """one visit to every page: the first run imports torch and plotly and fills the shared caches"""
    session = Session(url)
    await session.open(PAGES[0], timeout=TIMEOUT_S)
    for page in PAGES[1:]:
        await session.switch_page(page, timeout=TIMEOUT_S)
    await session.close()


@contextlib.contextmanager
def one_process(core: int | None, log_dir: Path, priority: bool = False):
    """`streamlit run app.py` on a free port, pinned to `core` (taskset); yields (url, [pid])"""
    port = free_ports(1)
    pin = ["taskset", "-c", str(core)] if core is not None else []
    command = [*pin, sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), *SERVER_ARGS]
    with open(log_dir / f"streamlit-{port}.log", "w") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    if priority:
        prioritise(process.pid)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        asyncio.run(warm(url))
        yield url, [process.pid]
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def behind_nginx(n: int, log_dir: Path, priority: bool = False):
    """scripts/serve_class.sh n (processes pinned one per core) on free ports; yields (nginx url, streamlit pids,
    [nginx master pid])"""
    port, base = free_ports(1), free_ports(n)
    run_dir = log_dir / f"class-{n}-{port}"
    env = dict(os.environ, PORT=str(port), HOST="127.0.0.1", BASE_PORT=str(base), PIN="1", RUN_DIR=str(run_dir),
               PYTHON=sys.executable)
    script = str(ROOT / "scripts" / "serve_class.sh")
    subprocess.run([script, str(n)], env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        for i in range(n):
            asyncio.run(warm(f"http://127.0.0.1:{base + i}"))
        pids = [int((run_dir / f"streamlit-{base + i}.pid").read_text()) for i in range(n)]
        helpers = [int((run_dir / "nginx.pid").read_text())]
        for pid in pids + helpers if priority else []:
            prioritise(pid)
        yield f"http://127.0.0.1:{port}", pids, helpers
    finally:
        subprocess.run([script, "stop"], env=env, check=False, stdout=subprocess.DEVNULL)


@dataclass
class Usage:
    """what the servers used during a window, and what the rest of the machine did meanwhile (seconds, bytes)"""

    seconds: float
    cpu_s: float  # the Streamlit processes' CPU time
    wait_s: float  # their threads' time ready to run but waiting for a CPU
    hwm: int  # the largest process's peak resident set (VmHWM)
    others_cpu_s: float  # CPU time of everything else on the machine (not servers, nginx, generator, browsers)
    helpers_cpu_s: float  # nginx

    def waiting_share(self) -> float:
        """of the time the server's threads wanted a CPU, the share they waited for one"""
        return self.wait_s / (self.wait_s + self.cpu_s) if self.wait_s + self.cpu_s else 0.0


class Monitor:
    """the server processes between start() and stop(): CPU time, peak RSS (the sum, sampled every 0.2 s, and each
    process's own high-water mark), and how long their threads waited for a CPU that other work held"""

    def __init__(self, pids: list[int], helpers: list[int] = ()):
        self.processes = [psutil.Process(pid) for pid in pids]
        self.helpers = [psutil.Process(pid) for pid in helpers]  # nginx: ours, but not a Streamlit server
        self.peak_rss = 0
        self._waits: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def cpu(self) -> float:
        return sum(p.cpu_times().user + p.cpu_times().system for p in self.processes)

    def helpers_cpu(self) -> float:
        total = 0.0
        for p in self.helpers:
            with contextlib.suppress(psutil.Error):
                total += sum(c.cpu_times().user + c.cpu_times().system for c in [p, *p.children()])
        return total

    def run_delays(self) -> dict[int, float]:
        """seconds each thread has spent runnable but waiting for a CPU (/proc/<pid>/task/<tid>/schedstat)"""
        out = {}
        for process in self.processes:
            for stat in Path(f"/proc/{process.pid}/task").glob("*/schedstat"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    out[int(stat.parent.name)] = int(stat.read_text().split()[1]) / 1e9
        return out

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            with contextlib.suppress(psutil.Error):
                self.peak_rss = max(self.peak_rss, sum(p.memory_info().rss for p in self.processes))
            # a script thread may end between samples: its last 0.2 s of waiting are missed
            self._waits.update(self.run_delays())

    def start(self) -> None:
        self.cpu0, self.own0, self.busy0, self.t0 = self.cpu(), _own_cpu(), _machine_busy(), time.perf_counter()
        self.helpers0 = self.helpers_cpu()
        self._waits0 = self.run_delays()
        self._thread.start()

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.cpu_s, self.own_cpu_s = self.cpu() - self.cpu0, _own_cpu() - self.own0
        self.helpers_cpu_s = self.helpers_cpu() - self.helpers0
        # what the rest of the machine did meanwhile: busy CPU time of all cores minus the servers, nginx and the
        # generator with everything it started (browsers)
        self.others_cpu_s = max(0.0, _machine_busy() - self.busy0 - self.cpu_s - self.own_cpu_s - self.helpers_cpu_s)
        self._stop.set()
        self._thread.join()
        self._waits.update(self.run_delays())
        # threads started in the window begin at zero
        self.wait_s = sum(v - self._waits0.get(tid, 0.0) for tid, v in self._waits.items())
        # VmHWM: each process's own peak resident set since it started (the kernel's count, nothing missed between
        # samples)
        self.usage = Usage(self.seconds, self.cpu_s, self.wait_s, max(_vm_hwm(p.pid) for p in self.processes),
                           self.others_cpu_s, self.helpers_cpu_s)


def _own_cpu() -> float:
    """CPU seconds of this process and of everything it started that is not a monitored server"""
    t = psutil.Process().cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "streamlit" not in " ".join(child.cmdline()):
                c = child.cpu_times()
                total += c.user + c.system
    return total


def _machine_busy() -> float:
    """busy CPU seconds of all cores since boot (/proc/stat: everything but idle and iowait)"""
    fields = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------------------------------------- one scenario


@dataclass
class Result:
    name: str
    students: int
    processes: int
    rows: list[dict]
    window: tuple[float, float]
    usage: Usage
    lag: list[float]
    load: tuple[float, float]

    def measured(self, kind: str | None = None, trainer: bool = False) -> list[dict]:
        """the rows of interactions that started inside the window (the trainer's only if asked)"""
        lo, hi = self.window
        return [r for r in self.rows if lo <= r["start"] < hi and (r["student"] < 0) == trainer
                and (kind is None or r["kind"] == kind)]

    def seconds(self, kind: str) -> list[float]:
        return [r["seconds"] for r in self.measured(kind) if not r["error"]]

    def errors(self) -> list[dict]:
        return [r for r in self.rows if r["error"]]

    def reruns_per_s(self) -> float:
        return len([r for r in self.measured() if not r["error"]]) / (self.window[1] - self.window[0])


def run_scenario(name: str, url: str, pids: list[int], students: int, ramp: float, window: float, seed: int,
                 processes: int = 1, with_trainer: bool = False, helpers: list[int] = ()) -> Result:
    """Students open their first page spread over `ramp` seconds. The window starts when all of them have it (the
    opening burst is reported on its own) and the interactions that start in the next `window` seconds count."""
    load_before = os.getloadavg()[0]
    log, lag = Log(), []
    monitor = Monitor(pids, helpers)

    async def main() -> None:
        stop = asyncio.Event()
        lag_task = asyncio.create_task(loop_lag(lag, stop))

        async def later(i: int) -> None:
            await asyncio.sleep(ramp * i / students)
            await student(i, url, log, seed)

        async def measure() -> None:
            await asyncio.sleep(ramp)
            while log.opened < students:
                await asyncio.sleep(0.1)
            start = log.clock() + SETTLE_S
            log.window = (start, start + window)
            await asyncio.sleep(SETTLE_S)
            monitor.start()
            await asyncio.sleep(window)
            monitor.stop()

        tasks = [later(i) for i in range(students)] + [measure()]
        if with_trainer:
            tasks.append(trainer(url, log))
        await asyncio.gather(*tasks)
        stop.set()
        await lag_task

    print(f"  {name}: {students} students, {processes} process(es), window {window:.0f} s ...", flush=True)
    asyncio.run(main())
    result = Result(name, students, processes, log.rows, log.window, monitor.usage, lag,
                    (load_before, os.getloadavg()[0]))
    target = " / ".join(f"{k} p95 {_q(result.seconds(k), 95):.2f} s" for k in TARGET_KINDS)
    usage = result.usage
    print(f"    {result.reruns_per_s():.1f} reruns/s, {target}, server CPU {100 * usage.cpu_s / window:.0f}% "
          f"of a core (waiting for a CPU {100 * usage.waiting_share():.0f}% of its runnable time), "
          f"{len(result.errors())} errors; other work kept {usage.others_cpu_s / window:.1f} cores busy",
          flush=True)
    return result


def _q(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def meets_target(result: Result) -> bool:
    return all(_q(result.seconds(k), 95) < TARGET_P95_S for k in TARGET_KINDS) and not result.errors()


# ------------------------------------------------------------------------------------------------ solo costs


def solo_costs(url: str, pid: int, repeats: int, seed: int) -> dict[str, dict[str, list[float]]]:
    """one student alone, every kind of interaction `repeats` times: latency and the server's CPU seconds for each.
    CPU time does not grow when other work shares the machine, so these costs hold where latencies do not."""
    server = psutil.Process(pid)
    rng = random.Random(seed)
    out: dict[str, dict[str, list[float]]] = {}

    def cpu() -> float:
        t = server.cpu_times()
        return t.user + t.system

    async def main() -> None:
        session = Session(url)
        await session.open(PAGES[0])
        for page in PAGES:
            before = cpu()
            run = await session.switch_page(page)
            out.setdefault("page switch", {"seconds": [], "cpu": []})
            out["page switch"]["seconds"].append(run.seconds)
            out["page switch"]["cpu"].append(cpu() - before)
            for key, kind in page_moves(page):
                for _ in range(repeats):
                    before = cpu()
                    if kind.endswith("button"):
                        run = await session.click(key)
                    else:
                        run = await session.set_value(key, nudge(session.widgets[key], rng))
                    used = cpu() - before
                    out.setdefault(kind, {"seconds": [], "cpu": []})
                    out[kind]["seconds"].append(run.seconds)
                    out[kind]["cpu"].append(used)
        await session.close()

    print(f"  solo costs: every interaction {repeats} times, one student ...", flush=True)
    asyncio.run(main())
    return out


# ------------------------------------------------------------------------------------------ browser sessions

# Record the app's script state changes from now on (the app root marks running / notRunning); watch the root that
# is there now, as the frontend may draw a new one (a reconnect)
_WATCH_STATE = """() => {
  window.__states = [];
  const app = document.querySelector('[data-testid="stApp"]');
  if (window.__watched === app) return;
  window.__watched = app;
  new MutationObserver(() => window.__states.push([app.getAttribute('data-test-script-state'), performance.now()]))
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
_DONE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
BROWSER_SLIDERS = {"estimating": "location μ1", "mixtures": "Components K"}
BROWSER_MOVE_TIMEOUT_S = 120.0  # a key press that started no rerun by then is counted as such, and the tab goes on


def _children_cpu() -> dict[int, float]:
    """CPU seconds of every process this one started (Chromium's processes, under Playwright's driver)"""
    out = {}
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            t = child.cpu_times()
            out[child.pid] = t.user + t.system
    return out


def run_browser_scenario(url: str, pids: list[int], n: int, ramp: float, window: float, seed: int) -> dict:
    """n Chromium tabs (one browser, a context each) moving a slider by the keyboard: browser-side seconds from the
    key press until the page reports its script finished. The window starts once every tab has drawn its page."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout
    from playwright.async_api import async_playwright

    monitor, log = Monitor(pids), Log()
    load_before = os.getloadavg()[0]
    cpu: dict[str, dict[int, float]] = {}

    async def tab(browser, i: int) -> None:
        rng = random.Random(seed * 7 + i)
        page_name = "estimating" if i % 2 == 0 else "mixtures"
        context = await browser.new_context(viewport={"width": 1400, "height": 900})
        page = await context.new_page()
        page.set_default_timeout(600_000)  # under load the page answers late: never give up on it first
        await asyncio.sleep(ramp * i / n)
        slider = page.get_by_role("slider", name=BROWSER_SLIDERS[page_name])
        try:
            await page.goto(f"{url}/{page_name}")
            await slider.wait_for()  # the page has drawn its widgets ...
            await page.wait_for_selector(_DONE)  # ... and its script has finished
        finally:
            log.opened += 1
        while True:
            await asyncio.sleep(rng.uniform(*THINK_S))
            if log.over():
                break
            await page.evaluate(_WATCH_STATE)
            # a key that changes the value: at either end of the range the other key (no change, no rerun)
            now, low, high = await slider.evaluate("e => [Number(e.value), Number(e.min), Number(e.max)]")
            key = rng.choice(("ArrowRight", "ArrowLeft"))
            key = "ArrowLeft" if now >= high else "ArrowRight" if now <= low else key
            start, started = await page.evaluate("() => performance.now()"), log.clock()
            row = {"student": i, "kind": f"{page_name} slider (browser)", "start": started, "error": ""}
            try:
                await slider.press(key, timeout=BROWSER_MOVE_TIMEOUT_S * 1000)
                await page.wait_for_function("() => window.__states.some(s => s[0] === 'notRunning')",
                                             timeout=BROWSER_MOVE_TIMEOUT_S * 1000)
            except PlaywrightTimeout:
                log.rows.append({**row, "seconds": math.nan, "error": f"no rerun within {BROWSER_MOVE_TIMEOUT_S:g} s"})
                continue
            end = await page.evaluate("() => window.__states.filter(s => s[0] === 'notRunning').pop()[1]")
            log.rows.append({**row, "seconds": (end - start) / 1000})
        await context.close()

    async def measure() -> None:
        while log.opened < n:
            await asyncio.sleep(0.1)
        start = log.clock() + SETTLE_S
        log.window = (start, start + window)
        await asyncio.sleep(SETTLE_S)
        monitor.start()
        cpu["start"] = _children_cpu()
        await asyncio.sleep(window)
        cpu["end"] = _children_cpu()
        monitor.stop()

    async def main() -> None:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            await asyncio.gather(measure(), *(tab(browser, i) for i in range(n)))
            await browser.close()

    print(f"  browsers: {n} Chromium sessions, window {window:.0f} s ...", flush=True)
    asyncio.run(main())
    rows = [r for r in log.rows if log.window[0] <= r["start"] < log.window[1]]
    browser_cpu = sum(v - cpu["start"].get(pid, 0.0) for pid, v in cpu["end"].items())
    usage = monitor.usage
    return {"rows": rows, "server_cpu_pct": 100 * usage.cpu_s / usage.seconds,
            "server_waiting": usage.waiting_share(), "browser_cpu_pct": 100 * browser_cpu / usage.seconds,
            "load": (load_before, os.getloadavg()[0]), "n": n, "window": window,
            "others": usage.others_cpu_s / usage.seconds}


# ------------------------------------------------------------------------------------------------- the report


def meanwhile(usage: Usage, load: tuple[float, float]) -> str:
    """what other work did on the machine during the window: the cores it kept busy, and the load average"""
    return f"{usage.others_cpu_s / usage.seconds:.1f}; {load[0]:.1f} -> {load[1]:.1f}"


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} / {_q(values, 95):.2f}"


def saturation(costs: dict[str, dict[str, list[float]]]) -> tuple[float, float]:
    """(mean server CPU seconds per interaction of the student mix, students that keep one core fully busy)

    A student visits the pages in turn: on each, MOVES_PER_PAGE moves (each widget of the page equally likely), then
    a page switch, each after a think time; so one core saturates at mean think time / mean CPU per interaction."""
    weights: dict[str, float] = collections.Counter()
    for page in PAGES:
        moves = page_moves(page)
        for _, kind in moves:
            weights[kind] += MOVES_PER_PAGE / len(moves)
        weights["page switch"] += 1
    mean_cpu = sum(w * statistics.mean(costs[k]["cpu"]) for k, w in weights.items()) / sum(weights.values())
    return mean_cpu, statistics.mean(THINK_S) / mean_cpu


def report(single: list[Result], training: list[tuple[Result, Result]], nginx: list[Result], browser: dict | None,
           args, costs: dict | None = None, failed: list[str] = ()) -> str:
    """the markdown of benchmarks/results/load.md; `args` holds the run's settings (ramp, window, priority, ...)"""
    cores = os.cpu_count()
    lines = [
        "# Load: a class against the app",
        "",
        f"Measured {args.started} on {platform.machine()}, {cores} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, Python {platform.python_version()} "
        f"(`python benchmarks/bench_load.py{' ' + args.command if args.command else ''}`). "
        "Load averages (1 min) before and after each scenario are in its row: other work shares this machine; "
        + (f"the generator, the servers and the browsers ran at niceness {PRIORITY_NICE} (processes and their session "
           "groups, `--priority`), ahead of it."
           if args.priority else "everything ran at normal priority beside it."),
        "",
        "Each simulated student is a WebSocket client speaking Streamlit's own protocol (`benchmarks/load_client.py`):"
        f" it opens a page, moves that page's sliders {MOVES_PER_PAGE} times with a think time drawn uniformly from "
        f"{THINK_S[0]:g}-{THINK_S[1]:g} s, then goes to the next page through the navigation, round all five pages "
        "(students start on different pages). A move is 1-5% of the slider's range from where it is, so most "
        "values are new and the page recomputes. Latency: seconds from the widget change sent to `script_finished` "
        f"received (the rerun plus a loopback round trip). Students open their first page over {args.ramp:g} s; "
        f"{SETTLE_S:g} s after the last of them has it, the figures count the interactions that start in the next "
        f"{args.window:g} s, on a fresh server warmed by one visit to every page. Cells: median / p95 in seconds.",
        "",
        *[f"**Not measured: {failure}**\n" for failure in failed],
    ]
    if costs:
        mean_cpu, students = saturation(costs)
        lines += [
            "## What each interaction costs the server",
            "",
            f"One student alone, every kind of interaction {args.cost_repeats} times per widget. "
            "CPU is the server's CPU seconds per interaction: other work on the machine stretches latency but hardly "
            "CPU time, so this table holds on a shared machine.",
            "",
            "| interaction | server CPU, mean (s) | latency alone, median (s) |",
            "|---|---:|---:|",
            *[f"| {k} | {statistics.mean(costs[k]['cpu']):.3f} | {statistics.median(costs[k]['seconds']):.3f} |"
              for k in KINDS if k in costs],
            "",
            f"The student mix above costs **{mean_cpu:.3f} s of server CPU per interaction**; with a think time of "
            f"{statistics.mean(THINK_S):g} s on average, **{students:.0f} students keep one core fully busy**. A "
            "process uses about one core (Python runs one script thread at a time; torch runs on one thread), so "
            "latency grows steeply well before that: the measured class size below is the one to plan with.",
            "",
        ]
    if single:
        lines += [
            f"## One process, one core (server pinned to core 0, the generator to core {cores - 1})",
            "",
            "| what | " + " | ".join(f"{r.students} students" for r in single) + " |",
            "|---|" + "---:|" * len(single),
        ]
        for kind in KINDS:
            lines.append(f"| {kind} | " + " | ".join(cell(r.seconds(kind)) for r in single) + " |")
        lines.append(f"| page open (all students within {args.ramp:g} s, before the window) | " + " | ".join(
            cell([x["seconds"] for x in r.rows if x["kind"] == "page open" and not x["error"]]) for r in single)
            + " |")
        lines += [
            "",
            "| students | reruns/s | server CPU (% of one core) | server threads waiting for a CPU "
            "| server peak RSS (MiB) | generator loop lag p95 (ms) | errors | target met "
            "| other work (cores busy); load average |",
            "|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for r in single:
            lines.append(
                f"| {r.students} | {r.reruns_per_s():.1f} | {100 * r.usage.cpu_s / r.usage.seconds:.0f} | "
                f"{100 * r.usage.waiting_share():.0f}% | {r.usage.hwm / 2**20:.0f} | {1000 * _q(r.lag, 95):.0f} | "
                f"{len(r.errors())} | "
                f"{'yes' if meets_target(r) else 'no'} | {meanwhile(r.usage, r.load)} |")
        held = [r.students for r in single if meets_target(r)]
        missed = [r.students for r in single if not meets_target(r)]
        lines += [
            "",
            "Threads waiting for a CPU: of the time the server's threads were ready to run, the share they waited for "
            "the core, behind other work or behind the server's own concurrent reruns (from the kernel's schedstat).",
            "",
            f"**Class size one process holds: {max(held) if held else 'fewer than ' + str(min(missed))} students**, "
            f"defined as the largest class measured whose estimator and mixture sliders both keep p95 under "
            f"{TARGET_P95_S:g} s with no errors"
            + (f" (the smallest that missed: {min(m for m in missed if not held or m > max(held))})"
               if [m for m in missed if not held or m > max(held)] else "")
            + ". Peak RSS is the kernel's high-water mark (VmHWM) of the process.",
            "",
        ]
        errors = [e for r in single for e in r.errors()]
        if errors:
            seen = sorted({f"{e['kind']} {e['key']}: {e['error']}" for e in errors})
            lines += ["Errors seen: " + "; ".join(seen[:8]), ""]
    if training:
        lines += [
            "## One student trains a deep LVM while the others work",
            "",
            "The extra student presses Train on the deep-LVM page (the page's defaults: two moons, IWAE-8, 6,000 "
            "steps, then the exact held-out log-likelihood of 300 points; the session's thread runs them at nice +10) "
            "and presses it again as soon as a run finishes, for the whole "
            "window. The others replay exactly the same moves as without the trainer (same seeds). Cells: the "
            "others' median / p95 without and with training, and the ratio of medians.",
            "",
            "| others' latency | " + " | ".join(f"{b.students} students: without | with | ratio" for b, _ in training)
            + " |",
            "|---|" + "---:|---:|---:|" * len(training),
        ]
        pairs = [([x for k in KINDS for x in b.seconds(k)], [x for k in KINDS for x in t.seconds(k)])
                 for b, t in training]
        for kind in KINDS:
            if all(b.seconds(kind) and t.seconds(kind) for b, t in training):
                lines.append(f"| {kind} | " + " | ".join(
                    f"{cell(b.seconds(kind))} | {cell(t.seconds(kind))} | "
                    f"{statistics.median(t.seconds(kind)) / statistics.median(b.seconds(kind)):.2f}x"
                    for b, t in training) + " |")
        lines.append("| **all interactions** | " + " | ".join(
            f"{cell(a)} | {cell(b)} | **{statistics.median(b) / statistics.median(a):.2f}x**" for a, b in pairs) + " |")
        lines.append("")
        for (base, busy), (a, b) in zip(training, pairs, strict=True):
            runs = [r["seconds"] for r in busy.rows if r["kind"] == "training run" and not r["error"]]
            ratio = statistics.median(b) / statistics.median(a)
            lines.append(
                f"- {base.students} students: training raises the others' median latency {ratio:.2f}x (target: under "
                f"{TRAINING_TARGET_RATIO:g}x, **{'met' if ratio < TRAINING_TARGET_RATIO else 'missed'}**); "
                f"{len(runs)} training runs of {cell(runs)} s; server CPU "
                f"{100 * base.usage.cpu_s / base.usage.seconds:.0f}% -> "
                f"{100 * busy.usage.cpu_s / busy.usage.seconds:.0f}% of a core; other work kept "
                f"{base.usage.others_cpu_s / base.usage.seconds:.1f} and "
                f"{busy.usage.others_cpu_s / busy.usage.seconds:.1f} cores busy.")
        lines.append("")
    if nginx:
        lines += [
            f"## Several processes behind nginx (`scripts/serve_class.sh N`, process i pinned to core i mod {cores})",
            "",
            "| processes | students | estimator sliders | mixture sliders | all interactions | reruns/s | servers' CPU "
            "(% of one core) | nginx CPU (%) | peak RSS per process (MiB) | errors | other work (cores busy); load "
            "average |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in nginx:
            every = [x for k in KINDS for x in r.seconds(k)]
            lines.append(
                f"| {r.processes} | {r.students} | {cell(r.seconds('estimator slider'))} | "
                f"{cell(r.seconds('mixture slider'))} | {cell(every)} | {r.reruns_per_s():.1f} | "
                f"{100 * r.usage.cpu_s / r.usage.seconds:.0f} | "
                f"{100 * r.usage.helpers_cpu_s / r.usage.seconds:.0f} | {r.usage.hwm / 2**20:.0f} | "
                f"{len(r.errors())} | {meanwhile(r.usage, r.load)} |")
        lines += [
            "",
            f"On this {cores}-core machine the generator shares a core with the last process, so N = {cores} is a "
            "lower bound on what N processes give where each has a core of its own.",
            "",
        ]
    if browser:
        lines += [
            f"## {browser['n']} Chromium sessions (browser side)",
            "",
            f"Server pinned to core 0, Chromium (one browser, a context per session) to core {cores - 1}. Each "
            "session moves one slider by the keyboard (estimating: q's location, a fragment rerun; mixtures: K, a "
            "full rerun) with the same think times; seconds from the key press until the page reports its script "
            f"finished. Server CPU {browser['server_cpu_pct']:.0f}% of a core (waiting for a CPU "
            f"{100 * browser['server_waiting']:.0f}% of its runnable time), Chromium {browser['browser_cpu_pct']:.0f}% "
            f"of a core; other work kept {browser['others']:.1f} cores busy, load average "
            f"{browser['load'][0]:.1f} -> {browser['load'][1]:.1f}.",
            "",
            "| slider | moves | median / p95 (s) | moves without a rerun |",
            "|---|---:|---:|---:|",
        ]
        for kind in sorted({r["kind"] for r in browser["rows"]}):
            values = [r["seconds"] for r in browser["rows"] if r["kind"] == kind and not r["error"]]
            failed = [r for r in browser["rows"] if r["kind"] == kind and r["error"]]
            lines.append(f"| {kind} | {len(values)} | {cell(values)} | {len(failed)} |")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- main


def save(measured: dict, path: Path) -> None:
    """every figure so far, as JSON: the report can be written again from it (--report-from), even after a crash"""

    def plain(value):
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value

    out = {key: [plain(v) for v in value] if isinstance(value, list) else plain(value)
           for key, value in measured.items()}
    path.write_text(json.dumps(out))


def load(path: Path) -> dict:
    """the figures save() wrote, as Results again"""
    measured = json.loads(path.read_text())

    def result(d: dict) -> Result:
        return Result(**{**d, "usage": Usage(**d["usage"]), "window": tuple(d["window"]), "load": tuple(d["load"])})

    measured["single"] = [result(d) for d in measured["single"]]
    measured["training"] = [(result(b), result(t)) for b, t in measured["training"]]
    measured["nginx"] = [result(d) for d in measured["nginx"]]
    return measured


def write_report(measured: dict, out: Path) -> None:
    text = report(measured["single"], measured["training"], measured["nginx"], measured["browser"],
                  argparse.Namespace(**measured["settings"]), measured["costs"], measured["failed"])
    print()
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", default="10,30,100", help="class sizes for one process (default 10,30,100)")
    parser.add_argument("--window", type=float, default=90.0, help="seconds measured per scenario")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which students open their first page")
    parser.add_argument("--processes", type=int, default=os.cpu_count(), help="N for the nginx comparison")
    parser.add_argument("--nginx-students", default="30,100", help="class sizes for the nginx comparison")
    parser.add_argument("--no-search", action="store_true", help="do not refine the class size between sizes")
    parser.add_argument("--skip", default="", help="comma list of: costs, single, training, nginx, browser")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="20 s windows, 5 s ramp, no search (a smoke run)")
    parser.add_argument("--priority", action="store_true",
                        help=f"run server, nginx and generator at niceness {PRIORITY_NICE} (root): on a machine "
                             "shared with other work, measures the app rather than the neighbours")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "load.md"))
    parser.add_argument("--report-from", help="write the report again from a run's results.json, measuring nothing")
    args = parser.parse_args()
    if args.report_from:
        write_report(load(Path(args.report_from)), Path(args.out))
        return
    args.cost_repeats = 5
    if args.quick:
        args.window, args.ramp, args.no_search, args.cost_repeats = 20.0, 5.0, True, 2
    skip = set(filter(None, args.skip.split(",")))
    cores = os.cpu_count() or 1
    server_core = 0 if cores > 1 else None
    if cores > 1:  # the generator (and the browsers it starts) on the last core, the server on core 0
        os.sched_setaffinity(0, {cores - 1})
    if args.priority:  # the generator and the browsers it starts; each server is prioritised as it starts
        prioritise(os.getpid())
    log_dir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    results_json = log_dir / "results.json"
    settings = {"ramp": args.ramp, "window": args.window, "priority": args.priority, "seed": args.seed,
                "cost_repeats": args.cost_repeats, "command": " ".join(sys.argv[1:]),
                "started": f"{datetime.datetime.now():%Y-%m-%d %H:%M}"}
    measured = {"settings": settings, "costs": None, "single": [], "training": [], "nginx": [], "browser": None,
                "failed": []}

    def scenario(n: int, with_trainer: bool = False) -> Result:
        with one_process(server_core, log_dir, args.priority) as (url, pids):
            name = "one process + trainer" if with_trainer else "one process"
            result = run_scenario(name, url, pids, n, args.ramp, args.window, args.seed, with_trainer=with_trainer)
        return result

    def costs() -> None:
        with one_process(server_core, log_dir, args.priority) as (url, pids):
            measured["costs"] = solo_costs(url, pids[0], args.cost_repeats, args.seed)

    def single() -> None:
        results = measured["single"]
        for n in [int(s) for s in args.students.split(",")]:
            results.append(scenario(n))
            save(measured, results_json)
        while not args.no_search:  # refine: halve the gap between the largest size met and the smallest missed
            held = [r.students for r in results if meets_target(r)]
            missed = [r.students for r in results if not meets_target(r) and (not held or r.students > max(held))]
            if not held or not missed or min(missed) - max(held) <= 10:
                break
            results.append(scenario(int(round((max(held) + min(missed)) / 2, -1))))
            results.sort(key=lambda r: r.students)
            save(measured, results_json)

    def training() -> None:  # at the class size one process holds, and at the target's 30 students
        held = [r.students for r in measured["single"] if meets_target(r)]
        for n in sorted({max(held) if held else 10, 30}):
            base = next((r for r in measured["single"] if r.students == n), None) or scenario(n)
            measured["training"].append((base, scenario(n, with_trainer=True)))
            save(measured, results_json)

    def nginx() -> None:
        for students in (int(s) for s in args.nginx_students.split(",")):
            for n in sorted({1, args.processes}):
                with behind_nginx(n, log_dir, args.priority) as (url, pids, helpers):
                    measured["nginx"].append(run_scenario("behind nginx", url, pids, students, args.ramp,
                                                          args.window, args.seed, processes=n, helpers=helpers))
                save(measured, results_json)

    def browser() -> None:
        with one_process(server_core, log_dir, args.priority) as (url, pids):
            measured["browser"] = run_browser_scenario(url, pids, 5, args.ramp, args.window, args.seed)

    groups = {"costs": costs, "single": single, "training": training, "nginx": nginx, "browser": browser}
    available = {"nginx": bool(shutil.which("nginx")) or Path("/usr/sbin/nginx").exists(),
                 "browser": Path(CHROMIUM).exists()}
    for name, measure in groups.items():
        if name in skip or not available.get(name, True):
            continue
        try:
            measure()
        except Exception as exc:  # noqa: BLE001 - one broken scenario must not lose the others' figures
            print(f"  {name} failed: {type(exc).__name__}: {exc}", flush=True)
            measured["failed"].append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
        save(measured, results_json)
    write_report(measured, Path(args.out))
    print(f"figures in {results_json} (--report-from), server logs in {log_dir}")


if __name__ == "__main__":
    main()
