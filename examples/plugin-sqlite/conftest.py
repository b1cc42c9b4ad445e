"""pytest imports this file first, which puts this directory on sys.path: the tests import
`confd_database_sqlite` from the source tree, as after `pip install -e .`."""
