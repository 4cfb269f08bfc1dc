"""Entry point of the frozen build: the same as the ``lesionviewer`` console script."""

import multiprocessing
import sys

from lesionviewer.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a child process of a frozen program runs its job only
    sys.exit(main())
