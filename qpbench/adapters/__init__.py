"""Solver adapters: one module per solver behind :class:`qpbench.adapters.base.Adapter`.

Look adapters up by name through :mod:`qpbench.adapters.registry`; solver packages are imported
lazily inside the adapters, so importing this package never needs any solver installed.
"""
