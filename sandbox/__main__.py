"""python -m mailsandbox -> the mailsandbox command."""

import sys

from mailsandbox.cli import main

sys.exit(main())
