"""The frozen `ftrag` command-line executable's entry: `ftrag_desktop.cli.run`."""

import multiprocessing

if __name__ == "__main__":
    # `ftrag index` spawns parse workers, which re-run this executable: route them first.
    multiprocessing.freeze_support()
    from ftrag_desktop.cli import run

    run()
