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

from benchmarks.bench_load import KINDS, MOVES, PAGES, PRIORITY_NICE, nudge, one_process, prioritise  # noqa: E402
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
                samples, entries = read_samples(path)
                result[kind] = {"cpu": cpus, "seconds": seconds, "samples": samples, "entries": entries}
        await session.close()

    asyncio.run(main())
    return result


# Leaf frames of a thread waiting, not working: py-spy cannot tell idle threads apart when it does not pause the
# process, so they are dropped here.
IDLE = ("EpollSelector.select", "Condition.wait", "Event.wait", "Thread._wait_for_tstate_lock")


def read_samples(path: Path) -> tuple[collections.Counter, collections.Counter]:
    """(busy samples per category, busy samples per entry point into lvm_core: the outermost lvm_core frame, e.g. a
    figure builder or a computation the page called; "style_figure" counts the shared figure styling on its own)"""
    counts: collections.Counter = collections.Counter()
    entries: collections.Counter = collections.Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            frames = stack.split(";")
            if frames[-1].startswith(IDLE) or not ("ScriptRunner" in stack or "_run_module_as_main" in stack):
                continue  # waiting, or not a script thread or the event loop
            counts[categorise(stack)] += int(n)
            core = [f for f in frames if "lvm_core/" in f]
            if core:
                entries[core[0].split(" (")[0] + " (" + core[0].split("(")[-1].split(":")[0] + ")"] += int(n)
            if any(f.startswith("style_figure ") for f in frames):
                entries["of which style_figure (lvm_core/plots/__init__.py)"] += int(n)
    return counts, entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--priority", action="store_true",
                        help=f"server and profiler at niceness {PRIORITY_NICE} (root), as bench_load.py --priority")
    args = parser.parse_args()
    if not shutil.which("py-spy"):
        sys.exit("py-spy not found: pip install py-spy")
    cores = os.cpu_count() or 1
    if cores > 1:
        os.sched_setaffinity(0, {cores - 1})
    if args.priority:
        prioritise(os.getpid())
    started = datetime.datetime.now()
    load = os.getloadavg()[0]
    out_dir = Path(tempfile.mkdtemp(prefix="profile-load-"))
    with one_process(0 if cores > 1 else None, out_dir, args.priority) as (url, pids):
        time.sleep(1)
        result = profile(url, pids[0], args.repeats, args.seed, out_dir)
    names = [name for name, _ in CATEGORIES]
    lines = [
        "# Load: where a rerun's server time goes",
        "",
        f"Measured {started:%Y-%m-%d %H:%M}, {cores} cores, load average {load:.1f} -> {os.getloadavg()[0]:.1f} "
        f"(`python benchmarks/profile_load.py{' --priority' if args.priority else ''}`). One student alone performs "
        f"each kind of interaction of bench_load.py {args.repeats} times per widget; py-spy samples the server at "
        "200 Hz without pausing it. CPU is the server's CPU seconds per interaction (median), which other work on the "
        "machine does not inflate the way it inflates latency. Shares: percent of the busy samples (waits dropped) "
        "in script threads and the event loop.",
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
    lines += [
        "",
        "Where the page calls into `lvm_core` (the outermost `lvm_core` frame of each busy sample; shares of all busy "
        "samples, the four largest; `style_figure` is the shared styling every figure builder calls):",
        "",
        "| interaction | largest entry points into lvm_core |",
        "|---|---|",
    ]
    for kind in KINDS:
        if kind in result:
            r = result[kind]
            total = sum(r["samples"].values()) or 1
            top = [f"{name} {100 * n / total:.0f}%" for name, n in r["entries"].most_common(4)]
            lines.append(f"| {kind} | {'; '.join(top)} |")
    lines.append("")
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / "load_profile.md"
    out.write_text(text)
    print(f"written to {out}; raw py-spy stacks in {out_dir}")


if __name__ == "__main__":
    main()
