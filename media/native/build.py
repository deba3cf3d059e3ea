"""Builds ``media.native._fastpath``: the fan-out loop in C (``fastpath.c``, its interface ``fastpath.h``).

``pip install .`` and ``pip install -e .`` build it (setup.py hands this module's ``ffi`` to
setuptools through cffi's ``cffi_modules``); ``python -m media.native.build`` builds it again in
place, as ``make`` does when the C changes. Without a C compiler the install still succeeds and the
relay runs the same loop in Python (``media.egress.outbound``), at about 1.3-1.5x the server CPU
per forwarded packet (make bench, N=100); nothing else changes.
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
MODULE = "media.native._fastpath"
# The file name setuptools gives the module (cffi builds against the stable ABI), so an editable
# install and ``python -m media.native.build`` write the same file and never shadow each other.
TARGET = HERE / "_fastpath.abi3.so"


def make_ffi(optional: bool) -> FFI:
    """The module's cffi builder; ``optional``: a failed compile is a warning, not an error."""
    ffi = FFI()
    ffi.cdef((HERE / "fastpath.h").read_text())
    ffi.set_source(MODULE, (HERE / "fastpath.c").read_text(), include_dirs=[str(HERE)],
                   extra_compile_args=["-O2"], optional=optional)
    return ffi


# For setup.py: an install without a C compiler skips the module (the Python loop forwards).
ffi = make_ffi(optional=True)


def build(verbose: bool = False) -> str:
    """Compiles the module next to this file; raises when it cannot (no compiler, C errors)."""
    return make_ffi(optional=False).compile(tmpdir=str(HERE.parents[1] / "build" / "fastpath"),
                                            target=str(TARGET), verbose=verbose)


if __name__ == "__main__":
    print(build())
