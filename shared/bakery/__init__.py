"""Bakery: the library every function ships with (domain, events, cloud adapters, config, errors, logs)."""

__version__ = "0.1.0"
