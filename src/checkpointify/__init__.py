"""checkpointify: turn collect-then-save-at-end loops into checkpointed, resumable loops.

This module only carries the version, so that ``checkpointify.runtime`` (imported by
rewritten programs) stays light: importing it never pulls in libcst, click or rich.
"""

__version__ = "0.1.0"
