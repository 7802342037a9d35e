"""Benchmark: how long a ``mailward`` command takes to answer, and which imports it pays for.

    .venv/bin/python bench/cli_startup.py [--runs 15] [--top 15]

In a fresh temporary data dir (``MAILWARD_DATA_DIR``, SQLite, made with ``mailward init``
and holding one account), runs ``mailward --help`` and ``mailward account list`` N times
each as the installed console script would (a new interpreter per run) and prints the
median and fastest wall time of each. Then runs the listing once under
``python -X importtime`` and prints the modules with the largest cumulative import time
(indented by nesting): what bounds the listing's start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS: dict[str, list[str]] = {
    "mailward --help": ["--help"],
    "mailward account list": ["account", "list"],
}


def mailward_argv() -> list[str]:
    """The console script next to this interpreter, else ``python -m mailward``."""
    script = Path(sys.executable).parent / "mailward"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "mailward"]


def run(args: list[str], env: dict[str, str], cwd: str) -> float:
    """Wall time of one run; a failing command aborts the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def import_times(env: dict[str, str], cwd: str) -> list[tuple[int, int, int, str]]:
    """``(cumulative µs, self µs, depth, module)`` of one ``account list`` run, largest
    cumulative first."""
    args = [sys.executable, "-X", "importtime", "-m", "mailward", "account", "list"]
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((int(cumulative), int(own), depth, name.strip()))
    return sorted(rows, reverse=True)


def package(module: str) -> str:
    """What a module's import time is charged to: its distribution, ``mailward.<pkg>``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "mailward" else parts[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per command")
    parser.add_argument("--top", type=int, default=15, help="import-time rows to print")
    opts = parser.parse_args()
    base = mailward_argv()
    with tempfile.TemporaryDirectory(prefix="mailward-cli-bench-") as tmp:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("MAILWARD_")}
        env["MAILWARD_DATA_DIR"] = str(Path(tmp) / "data")
        env["COLUMNS"] = "100"
        run([*base, "init"], env, tmp)
        run([*base, "account", "add", "bench"], env, tmp)
        print(f"{' '.join(base)}  ({opts.runs} runs each, {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.2f})")
        run([sys.executable, "-c", "pass"], env, tmp)  # warm the page cache
        bare = statistics.median(run([sys.executable, "-c", "pass"], env, tmp)
                                 for _ in range(opts.runs))
        print(f"{'python -c pass':<24} median {bare:6.3f} s")
        for label, args in COMMANDS.items():
            run([*base, *args], env, tmp)  # warm the page cache and bytecode
            times = [run([*base, *args], env, tmp) for _ in range(opts.runs)]
            print(f"{label:<24} median {statistics.median(times):6.3f} s   "
                  f"fastest {min(times):6.3f} s")
        rows = import_times(env, tmp)
        total = sum(own for _, own, _, _ in rows)
        print(f"\nimports of `mailward account list` (python -X importtime, which adds its "
              f"own overhead): {total / 1e6:.3f} s in all")
        by_package: dict[str, int] = {}
        for _, own, _, name in rows:
            by_package[package(name)] = by_package.get(package(name), 0) + own
        print("by package (own time of its modules):")
        ranked = sorted(by_package.items(), key=lambda item: item[1], reverse=True)
        for name, own in ranked[:opts.top]:
            print(f"  {own / 1e6:6.3f} s  {name}")
        print("largest cumulative (indented by nesting):")
        for cumulative, _, depth, name in rows[:opts.top]:
            print(f"  {cumulative / 1e6:6.3f} s  {'  ' * depth}{name}")


if __name__ == "__main__":
    main()
