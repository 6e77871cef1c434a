"""``python -m nlptune``; also ``accelerate launch -m nlptune`` and ``torchrun -m nlptune``."""

import sys

from nlptune.cli import main

sys.exit(main())
