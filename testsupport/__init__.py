"""Helpers shared by the unit tests (`tests/`) and the real-server tests (`integration/`).

Both import from here, never from each other: pytest fixtures (`fixtures`, loaded by the
top-level conftest.py) and small plugin programs (`plugins`).
"""
