"""The frozen GUI executable's entry: `ftrag_desktop.__main__.main` (spawned workers first)."""

import multiprocessing
import sys

if __name__ == "__main__":
    # A spawned parse worker or library process re-runs this executable: route it to its job
    # before anything heavy is imported.
    multiprocessing.freeze_support()
    from ftrag_desktop.__main__ import main

    sys.exit(main())
