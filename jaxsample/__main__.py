"""Allow ``python -m jaxsample``."""

from jaxsample.cli import main

raise SystemExit(main())
