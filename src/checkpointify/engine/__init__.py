"""Runs over trees: discovery and shards (:mod:`.discovery`), the content-hash cache
(:mod:`.cache`), isolated workers (:mod:`.pool`), the resumable ``fix`` journal
(:mod:`.journal`), the progress bar (:mod:`.progress`), the run itself (:mod:`.pipeline`)
and its assembly from flags and configuration (:mod:`.session`).

Never imports LibCST at module level: a run whose results all come from the cache, or are
decided by the prefilter, loads no LibCST (a ruff rule, TID253, enforces it).
"""
