"""Planted bugs for negative controls.

Tests switch these on to prove that the exactness and statistical tests catch
the real-world failure each one stands for. A run with an empty fault set is the
algorithm; nothing outside tests should set one.
"""

from __future__ import annotations

from enum import Enum


class Fault(Enum):
    ALWAYS_ACCEPT = "always_accept"  # accept every draft without the ratio test
    RESIDUAL_FROM_P = "residual_from_p"  # after a rejection sample p, not norm(max(0, p - q))
    Q_WRONG_TEMPERATURE = "q_wrong_temperature"  # verify with q at another temperature
    BONUS_OFF_BY_ONE = "bonus_off_by_one"  # the extra scored position uses the previous p
    UNVERIFIED_PREFIX = "unverified_prefix"  # keep tasks built on a rejected draft
    COMMIT_CANCELLED = "commit_cancelled"  # keep results of tasks cancelled by a rejection


NO_FAULTS: frozenset[Fault] = frozenset()
