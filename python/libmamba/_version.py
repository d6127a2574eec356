"""The package's version: the libmamba release these bindings mirror.

pyproject.toml reads it from here, and the import checks that the library it
loads is of the same major.minor release (their structures and functions
then match mamba.h's)."""

__version__ = "0.2.0"
