"""Name numba's compiled functions for ``perf``: writes /tmp/perf-PID.map.

perf cannot name JIT code, so a profile of the numba kernels shows bare
addresses. Call :func:`write_perf_map` in the profiled process after the
kernels have run once, then attach perf to it:

    NUMBA_CACHE_DIR=$(mktemp -d) python my_run.py &      # prints its pid, then works
    perf record -p PID sleep 10 && perf report --no-children --sort symbol

Compiled code must come from this process (a fresh ``NUMBA_CACHE_DIR``):
functions loaded from numba's on-disk cache carry no LLVM module to name.
Sizes are the gaps between consecutive function addresses.

To see which instructions of a kernel are hot, :func:`dump_code` writes the
machine code of the named functions; match perf's sample addresses to it:

    perf script -F ip -i perf.data > ips.txt       # one sampled address per line
    objdump -D -b binary -mi386:x86-64 --adjust-vma=0xADDRESS FOLDER/ADDRESS.bin
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


def dump_code(folder: str, contains: str = "_ZN7spiking", map_path: str | None = None) -> int:
    """Write the machine code of each function of this process's perf map (written
    first by :func:`write_perf_map`) whose name contains ``contains`` to
    ``folder/ADDRESS.bin`` (hex address); each read stops at the end of the mapped
    region it starts in. Returns how many were written."""
    import ctypes
    from pathlib import Path

    regions = []
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            regions.append((lo, hi))
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(map_path or f"/tmp/perf-{os.getpid()}.map") as f:
        for line in f:
            address, size, name = line.split(maxsplit=2)
            if contains not in name:
                continue
            start = int(address, 16)
            end = next((hi for lo, hi in regions if lo <= start < hi), start)
            size = min(int(size, 16), end - start)
            if size > 0:
                (out / f"{address}.bin").write_bytes(ctypes.string_at(start, size))
                written += 1
    return written
