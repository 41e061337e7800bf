"""``python -m handler.bench [--quick] [--runs N]``: run the benchmarks and write docs/benchmarks.md."""

from handler.bench.run import main

raise SystemExit(main())
