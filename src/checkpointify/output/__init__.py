"""Renderers of results: text (:mod:`.report`), json, github, junit and statistics
(:mod:`.formats`), SARIF with per-finding fixes (:mod:`.sarif`) and unified diffs
(:mod:`.diffs`). Pure functions of :class:`checkpointify.types.FileResult`; the one
exception, :func:`.sarif.single_fixes`, computes each finding's own fix on demand."""
