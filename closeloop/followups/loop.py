"""A worker process for tests and benchmarks: `python -m closeloop.followups.loop`.

Runs the same jobs as `closeloop worker` (every app's `worker_jobs`, no channel services)
and exits after `--idle-exit` seconds without work, printing one JSON line: items handled
and peak resident memory. Crash tests SIGKILL it mid-run and start another.
"""

from __future__ import annotations

import argparse
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
    from closeloop.worker import run_once

    handled, idle_since = 0, time.monotonic()
    while time.monotonic() - idle_since < args.idle_exit:
        done = run_once(args.batch)
        handled += done
        if done:
            idle_since = time.monotonic()
        else:
            time.sleep(args.idle_sleep)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"handled": handled, "peak_rss_mib": round(peak_kib / 1024, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
