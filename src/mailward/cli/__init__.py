"""The ``mailward`` command line: Typer + Rich over the directory services.

``app`` is the Typer application, ``main()`` the console-script entry point.
"""

from mailward.cli.app import app, main

__all__ = ["app", "main"]
