"""The planted bugs of tests/faulty.py, for the negative controls of T1 and T6.

They are faulty implementations of a run's parts and live with the tests, so these
checks need the source tree: imported as `tests.faulty` when the repository root is
on sys.path (`python -m proofs`, `python -m pytest`), or as `faulty` when pytest has
put tests/ there itself.
"""

from __future__ import annotations

try:
    from tests.faulty import Fault, planted
except ModuleNotFoundError:  # pragma: no cover - depends on how pytest was started
    try:
        from faulty import Fault, planted  # type: ignore[no-redef,import-not-found]
    except ModuleNotFoundError as e:
        raise AssertionError(
            "the planted-fault checks need tests/faulty.py from the source tree"
        ) from e

__all__ = ["Fault", "planted"]
