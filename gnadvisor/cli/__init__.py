"""The ``gnadvisor`` command line: thin commands over the public API (see ``gnadvisor --help``)."""
