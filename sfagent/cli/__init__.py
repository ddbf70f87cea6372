"""The `sfagent` command: run, chat with, and inspect tool-calling agents from a terminal.

`main` and `EXIT_CODES` live in `sfagent.cli.app`; the private modules load a target file
(`_load`), build and run its agent (`_commands`), show a run (`_render`) and turn errors
into one line and an exit code (`_report`).
"""

from sfagent.cli.app import EXIT_CODES, main

__all__ = ["EXIT_CODES", "main"]
