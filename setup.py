"""The compiled core (c2ws/_speedups.c) is optional: without a C compiler the build goes
on without it and c2ws runs its pure-Python twins (c2ws/speedups.py), only slower.
Everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("c2ws._speedups", ["c2ws/_speedups.c"], optional=True)])
