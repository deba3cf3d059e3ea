"""Builds the relay's C fan-out loop with the package (media/native/build.py); pyproject.toml holds the rest."""

from setuptools import setup

setup(cffi_modules=["media/native/build.py:ffi"])
