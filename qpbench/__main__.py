"""``python -m qpbench`` is the same as the ``qpbench`` command."""

import sys

from qpbench.cli import main

sys.exit(main())
