"""Run the pubsys CLI in this process, then report what the process read and its peak RSS.

Usage: python bench/_measured.py RESULT.json -- PUBSYS-ARGS...
`rchar` from /proc/self/io counts every byte read through read(2) and friends, page cache
included, so it shows whether each image was read once.
"""

import json
import resource
import sys
import time

from pubsys.cli import main


def read_io() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


if __name__ == "__main__":
    out, sep, *args = sys.argv[1:]
    assert sep == "--"
    before = read_io()
    t0 = time.perf_counter()
    rc = main(args)
    elapsed = time.perf_counter() - t0
    after = read_io()
    with open(out, "w") as f:
        json.dump({"rc": rc, "in_process_seconds": elapsed,
                   "rchar": after["rchar"] - before["rchar"],
                   "read_bytes": after["read_bytes"] - before["read_bytes"],
                   "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}, f)
    sys.exit(rc)
