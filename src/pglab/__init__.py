"""pglab: build, prove and tear down PostgreSQL high-availability labs."""

__version__ = "0.1.0"
