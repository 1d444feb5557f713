"""Emulated services. Each one is a class of actions named exactly as the real API's."""
