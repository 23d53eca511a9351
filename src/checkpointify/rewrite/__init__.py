"""Rewriting: apply the planned fixes (:mod:`.transformer`) and keep a rewrite only when it
compiles and a second pass changes nothing (:mod:`.verify`). Imports :mod:`checkpointify.detect`;
runs in the workers."""
