"""``python -m mkcc_model.data``: the ``mkcc-data`` command line."""

from .cli import main

raise SystemExit(main())
