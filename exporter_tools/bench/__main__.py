"""``exporter-tools bench [--quick] [--runs N]``: run the benchmarks and write docs/benchmarks.md."""

from exporter_tools.bench.run import main

raise SystemExit(main())
