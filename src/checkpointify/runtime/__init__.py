"""The checkpoint runtime that rewritten loops call (see :mod:`.checkpoint`).

A package from here on; this first step only moves the module, so that its history follows."""

from .checkpoint import *  # noqa: F403
from .checkpoint import FORMAT as FORMAT
from .checkpoint import __all__ as __all__
from .checkpoint import _apply as _apply
from .checkpoint import _describe as _describe
from .checkpoint import _sync_open_logs_at_exit as _sync_open_logs_at_exit
from .checkpoint import _Tracker as _Tracker
