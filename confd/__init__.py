"""confd for Python: render configuration files from key/value stores with Jinja2."""

__version__ = "0.1.0"
