"""``python -m checkpointify``: the same entry point as the console script."""

from checkpointify.cli import entry_point

if __name__ == "__main__":
    entry_point()
