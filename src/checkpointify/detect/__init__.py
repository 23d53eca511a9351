"""LibCST detection: which loops collect results and save them only at the end.

Runs in the worker processes only (the main process never imports LibCST at module level).
:mod:`.matcher` finds the sites and plans their fixes, helped by :mod:`.flow` (sinks and
the values derived from an accumulator), :mod:`.work` (is the loop body real work?),
:mod:`.external` (database commits and queue acks), :mod:`.hazards` (why a fix may resume
differently), :mod:`.suppression` (``# checkpointify: ignore``), :mod:`.analysis` (one
file's metadata) and :mod:`.cstutil` (tree helpers). Every word list they use lives in
:mod:`checkpointify.catalogue`, shared with :mod:`checkpointify.prefilter`.
"""
