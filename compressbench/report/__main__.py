"""``python -m compressbench.report DIR``: see :mod:`compressbench.report.cli`."""
import sys

from compressbench.report.cli import main

sys.exit(main())
