"""``python -m mailwright``: the same as the ``mailwright`` command."""

import sys

from mailwright.cli.main import main

sys.exit(main())
