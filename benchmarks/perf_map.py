"""Name numba's compiled functions for ``perf``: writes /tmp/perf-PID.map.

perf cannot name JIT code, so a profile of the numba kernels shows bare
addresses. Call :func:`write_perf_map` in the profiled process after the
kernels have run once, then attach perf to it:

    NUMBA_CACHE_DIR=$(mktemp -d) python my_run.py &      # prints its pid, then works
    perf record -p PID sleep 10 && perf report --no-children --sort symbol

Compiled code must come from this process (a fresh ``NUMBA_CACHE_DIR``):
functions loaded from numba's on-disk cache carry no LLVM module to name.
Sizes are the gaps between consecutive function addresses.
"""
from __future__ import annotations

import gc
import os


def write_perf_map(path: str | None = None) -> int:
    """Write the map for every compiled numba function; returns how many it named."""
    from numba.core.registry import CPUDispatcher

    names = {}
    for obj in gc.get_objects():
        if not isinstance(obj, CPUDispatcher):
            continue
        for result in obj.overloads.values():
            module = getattr(result.library, "_final_module", None)
            if module is None:
                continue
            for fn in module.functions:
                if fn.is_declaration:
                    continue
                address = result.library.get_pointer_to_function(fn.name)
                if address:
                    names[address] = fn.name
    addresses = sorted(names)
    with open(path or f"/tmp/perf-{os.getpid()}.map", "w") as f:
        for start, end in zip(addresses, addresses[1:] + addresses[-1:]):
            f.write(f"{start:x} {end - start or 4096:x} {names[start]}\n")   # last: 4 KiB
    return len(addresses)
