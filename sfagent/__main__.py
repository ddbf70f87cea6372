"""``python -m sfagent``: the `sfagent` command."""

from sfagent.cli import main

raise SystemExit(main())
