"""Where a rerun's server time goes, per kind of interaction: py-spy samples of the Streamlit process.

One student (a `load_client.Session`) performs each kind of interaction of bench_load.py a few times while py-spy
samples the server (non-blocking, so the server runs undisturbed); every sample is put in one category by the frames
on its stack. The server's CPU seconds per interaction are measured beside it.

    pip install py-spy   # requirements-dev.txt
    python benchmarks/profile_load.py [--repeats 6]   # prints and writes benchmarks/results/load_profile.md
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_load import KINDS, MOVES, PAGES, nudge, one_process  # noqa: E402
from benchmarks.load_client import Session  # noqa: E402

# first match wins, tested against the whole stack (outermost frame first)
CATEGORIES = [
    ("Streamlit: chart to JSON and protobuf", ("streamlit/elements/plotly_chart.py",)),
    ("figure building (lvm_core.plots, plotly)", ("lvm_core/plots/", "plotly/", "_plotly_utils/")),
    ("lvm_core compute (torch, numpy, scikit-learn)", ("lvm_core/",)),
    # py-spy names a page script's frames by file name alone (views/ is on the path while a page runs)
    ("page code (views/, ui/)", ("(home.py", "(mixtures.py", "(deep_lvm.py", "(estimating.py", "(elbo.py", "(ui/")),
    ("Streamlit runtime (script thread)", ("ScriptRunner",)),
    ("server event loop (WebSocket, messages)", ("",)),
]


def categorise(stack: str) -> str:
    frames = stack.split(";")
    # a page's own frames only count when no library frame is below them
    for name, needles in CATEGORIES[:3]:
        if any(any(n in f for n in needles) for f in frames):
            return name
    if "ScriptRunner" in stack:
        leaf = frames[-1]
        return CATEGORIES[3][0] if any(n in leaf for n in CATEGORIES[3][1]) else CATEGORIES[4][0]
    return CATEGORIES[5][0]


def profile(url: str, pid: int, repeats: int, seed: int, out_dir: Path) -> dict[str, dict]:
    server = psutil.Process(pid)
    rng = random.Random(seed)
    result: dict[str, dict] = {}

    def cpu() -> float:
        t = server.cpu_times()
        return t.user + t.system

    async def main() -> None:
        session = Session(url)
        await session.open(PAGES[0])
        for page in PAGES:
            await session.switch_page(page)
            for kind, keys in MOVES[page].items():
                path = out_dir / f"{kind.replace(' ', '_')}.txt"
                spy = subprocess.Popen(["py-spy", "record", "-p", str(pid), "-r", "200", "--nonblocking", "-f", "raw",
                                        "-o", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                await asyncio.sleep(1.5)  # attached
                cpus, seconds = [], []
                for _ in range(repeats):
                    for key in keys:
                        before = cpu()
                        if kind.endswith("button"):
                            run = await session.click(key)
                        else:
                            run = await session.set_value(key, nudge(session.widgets[key], rng))
                        cpus.append(cpu() - before)
                        seconds.append(run.seconds)
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
                result[kind] = {"cpu": cpus, "seconds": seconds, "samples": read_samples(path)}
        await session.close()

    asyncio.run(main())
    return result


# Leaf frames of a thread waiting, not working: py-spy cannot tell idle threads apart when it does not pause the
# process, so they are dropped here.
IDLE = ("EpollSelector.select", "Condition.wait", "Event.wait", "Thread._wait_for_tstate_lock")


def read_samples(path: Path) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if stack.split(";")[-1].startswith(IDLE):
                continue
            if "ScriptRunner" in stack or "_run_module_as_main" in stack:  # script threads and the event loop
                counts[categorise(stack)] += int(n)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not shutil.which("py-spy"):
        sys.exit("py-spy not found: pip install py-spy")
    cores = os.cpu_count() or 1
    if cores > 1:
        os.sched_setaffinity(0, {cores - 1})
    started = datetime.datetime.now()
    load = os.getloadavg()[0]
    out_dir = Path(tempfile.mkdtemp(prefix="profile-load-"))
    with one_process(0 if cores > 1 else None, out_dir) as (url, pids):
        time.sleep(1)
        result = profile(url, pids[0], args.repeats, args.seed, out_dir)
    names = [name for name, _ in CATEGORIES]
    lines = [
        "# Load: where a rerun's server time goes",
        "",
        f"Measured {started:%Y-%m-%d %H:%M}, {cores} cores, load average {load:.1f} -> {os.getloadavg()[0]:.1f} "
        f"(`python benchmarks/profile_load.py`). One student alone performs each kind of interaction of "
        f"bench_load.py {args.repeats} times per widget; py-spy samples the server at 200 Hz without pausing it. CPU "
        "is the server's CPU seconds per interaction (median), which other work on the machine does not inflate "
        "the way it inflates latency. Shares: percent of the samples taken in script threads and the event loop.",
        "",
        "| interaction | CPU (s) | latency alone (s) | " + " | ".join(names) + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for kind in KINDS:
        if kind not in result:
            continue
        r = result[kind]
        total = sum(r["samples"].values()) or 1
        shares = " | ".join(f"{100 * r['samples'][n] / total:.0f}%" for n in names)
        lines.append(f"| {kind} | {statistics.median(r['cpu']):.3f} | {statistics.median(r['seconds']):.3f} | "
                     f"{shares} |")
    lines.append("")
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / "load_profile.md"
    out.write_text(text)
    print(f"written to {out}; raw py-spy stacks in {out_dir}")


if __name__ == "__main__":
    main()
