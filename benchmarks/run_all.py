"""Run every benchmark and write benchmarks/RESULTS.md: the date, the machine, each one's table.

    python benchmarks/run_all.py [--data PATH] [--only NAME ...] [--timeout SECONDS]

Each ``benchmarks/*.py`` (except this file) runs as its own process with the same environment
(THP_MEM_ALLOC_ENABLE=1, PYTHONHASHSEED=0), one after another so they never compete for the
cores. ``--data`` is passed to the scripts that accept it. `make bench` calls this.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_lines() -> list[str]:
    lines = [f"- CPU: {cpu_model()}, {usable_cores()} usable cores ({os.cpu_count()} online)",
             f"- OS: {platform.platform()}", f"- Python {platform.python_version()}"]
    try:
        import torch

        lines.append(f"- torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as handle:
            total_kb = int(handle.readline().split()[1])
        lines.append(f"- memory: {total_kb / 2 ** 20:.1f} GiB")
    except (OSError, ValueError, IndexError):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        if commit:
            lines.append(f"- commit: {commit}")
    except (OSError, subprocess.SubprocessError):
        pass
    return lines


def accepts_data(script: Path) -> bool:
    """Whether a benchmark declares a ``--data`` option (read from its source, nothing is run)."""
    text = script.read_text(encoding="utf-8")
    return '"--data"' in text or "'--data'" in text


def run_benchmark(script: Path, data: str | None, timeout: float) -> dict:
    command = [sys.executable, str(script)]
    if data is not None and accepts_data(script):
        command += ["--data", data]
    environment = dict(os.environ, THP_MEM_ALLOC_ENABLE="1", PYTHONHASHSEED="0", PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    try:
        completed = subprocess.run(command, cwd=HERE.parent, env=environment, capture_output=True, text=True,
                                   timeout=timeout)
        status, stdout, stderr = completed.returncode, completed.stdout, completed.stderr
    except subprocess.TimeoutExpired as error:
        status = "timeout"
        stdout = error.stdout.decode() if isinstance(error.stdout, bytes) else (error.stdout or "")
        stderr = f"killed after {timeout:g} s"
    return {"name": script.stem, "command": " ".join(["python", f"benchmarks/{script.name}"] + command[2:]),
            "status": status, "seconds": time.perf_counter() - started, "stdout": stdout, "stderr": stderr}


def render(results: list[dict], started: datetime.datetime) -> str:
    lines = ["# Benchmark results", "",
             f"Written by `python benchmarks/run_all.py` on {started:%Y-%m-%d %H:%M} UTC; every figure in a "
             "table comes from one run of its script on this machine.", "", "## Machine", ""]
    lines += machine_lines()
    lines += ["", "| benchmark | status | wall time |", "|---|---|---|"]
    for result in results:
        status = "ok" if result["status"] == 0 else f"failed ({result['status']})"
        lines.append(f"| {result['name']} | {status} | {result['seconds']:.0f} s |")
    for result in results:
        lines += ["", f"## {result['name']}", "", f"`{result['command']}`", "", "```",
                  result["stdout"].rstrip() or "(no output)", "```"]
        if result["status"] != 0:
            tail = "\n".join(result["stderr"].rstrip().splitlines()[-20:])
            lines += ["", "stderr (last lines):", "", "```", tail, "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="training data passed to benchmarks that take --data")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per benchmark (default 3600)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the results (default RESULTS.md)")
    args = parser.parse_args()

    scripts = sorted(path for path in HERE.glob("*.py")
                     if path.resolve() != Path(__file__).resolve() and not path.name.startswith("_"))
    if args.only:
        unknown = set(args.only) - {path.stem for path in scripts}
        if unknown:
            parser.error(f"no benchmark named {', '.join(sorted(unknown))} (have: "
                         f"{', '.join(path.stem for path in scripts)})")
        scripts = [path for path in scripts if path.stem in args.only]
    started = datetime.datetime.now(datetime.timezone.utc)
    results = []
    for script in scripts:
        print(f"== {script.stem}", flush=True)
        result = run_benchmark(script, args.data, args.timeout)
        print(result["stdout"].rstrip(), flush=True)
        if result["status"] != 0:
            print(f"!! {script.stem} failed ({result['status']}):\n{result['stderr'].rstrip()[-2000:]}", flush=True)
        print(f"({result['seconds']:.0f} s)", flush=True)
        results.append(result)

    sys.path.insert(0, str(HERE.parent / "src"))
    from dancenet.atomic import atomic_file

    with atomic_file(args.out) as temporary:
        temporary.write_text(render(results, started), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0 if all(result["status"] == 0 for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
