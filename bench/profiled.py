"""Run a module as `__main__` with cProfile switched by signals: SIGUSR1 starts it, SIGUSR2 stops it and
writes the statistics to OUT (pstats format). Used by bench/count.py to profile only a measured segment.

    python -m bench.profiled OUT MODULE [args...]
"""

from __future__ import annotations

import cProfile
import runpy
import signal
import sys


def main() -> None:
    out, module = sys.argv[1], sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    profile = cProfile.Profile()

    def start(signum: int, frame: object) -> None:
        profile.enable()

    def stop(signum: int, frame: object) -> None:
        profile.disable()
        profile.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
