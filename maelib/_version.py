"""The package version, in one place: ``maelib.__version__`` and the ``maelib_version`` of saved weights."""

__version__ = "0.1.0"
