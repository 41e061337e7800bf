"""``python -m exporter_tools``: the same commands as the ``exporter-tools`` console script."""

from exporter_tools.cli import main

raise SystemExit(main())
