"""A worker process for tests and benchmarks: `python -m closeloop.followups.loop`.

Runs the same jobs as `closeloop worker` (every app's `worker_jobs`, no channel services)
and exits after `--idle-exit` seconds without work, printing one JSON line: items handled,
peak resident memory and the process's own CPU seconds (user + system). Crash tests SIGKILL
it mid-run and start another. With `CLOSELOOP_PROFILE=<path>` the run is profiled with
cProfile and the statistics written to `<path>.<pid>` (read them with `python -m pstats`).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import resource
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--idle-exit", type=float, default=3.0, help="exit after this many idle seconds")
    parser.add_argument("--idle-sleep", type=float, default=0.05)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "closeloop.settings")
    import django

    django.setup()
    profile_to = os.environ.get("CLOSELOOP_PROFILE", "")
    profiler = cProfile.Profile() if profile_to else None
    if profiler is not None:
        profiler.enable()
    handled, work_cpu = _loop(args.batch, args.idle_exit, args.idle_sleep)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(f"{profile_to}.{os.getpid()}")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"handled": handled, "peak_rss_mib": round(_peak_rss_kib(usage.ru_maxrss) / 1024, 1),
                      "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "work_cpu_s": round(work_cpu, 2)}),
          flush=True)
    return 0


def _peak_rss_kib(maxrss: int) -> int:
    """This process's own peak resident memory. Linux carries `ru_maxrss` over from the parent when the
    child was started by (v)fork and exec, so a worker started by a big process would report the parent's
    size; `VmHWM` belongs to the process's own address space."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return maxrss


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _loop(batch: int, idle_exit: float, idle_sleep: float) -> tuple[int, float]:
    """Run the jobs until idle; returns items handled and the CPU seconds spent from the first
    round that found work to the last one (start-up and the idle tail left out)."""
    from closeloop.worker import jobs, run_once, stop_helper

    jobs()  # import every job first: start-up, not work
    handled, idle_since, first, last = 0, time.monotonic(), None, 0.0
    try:
        while time.monotonic() - idle_since < idle_exit:
            before = _cpu()
            done = run_once(batch)
            handled += done
            if done:
                idle_since, first, last = time.monotonic(), before if first is None else first, _cpu()
            else:
                time.sleep(idle_sleep)
    finally:
        stop_helper()
    return handled, (last - first) if first is not None else 0.0


if __name__ == "__main__":
    sys.exit(main())
