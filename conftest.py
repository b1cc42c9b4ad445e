"""Fixtures every test folder uses (confdirs, the confd command, captured logs)."""

pytest_plugins = ["testsupport.fixtures"]
