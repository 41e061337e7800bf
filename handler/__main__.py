"""``python -m handler``: the command line (see ``python -m handler --help``)."""

from handler.cli import main

raise SystemExit(main())
