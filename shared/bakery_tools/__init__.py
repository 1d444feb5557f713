"""Bakery's tooling: the `bakery` command, local runs, packaging and `bakery deploy`. Never shipped to FC.

It may import the deployed library (`bakery`) and the emulator (`localcloud`); neither imports it.
"""
