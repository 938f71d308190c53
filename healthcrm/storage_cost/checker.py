"""The lifecycle rule checker: rules that cost this clinic more than they save, with the figures.

(Interface placeholder while the lifecycle work is under way; the lifecycle helper replaces the body.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleWarning:
    rule_id: str  # the lifecycle rule it is about
    title: str  # one line: what costs more than it saves
    detail: str  # the figures, in words a clinic admin can act on
    monthly_cost_change: float  # USD a month the rule adds (positive) for this clinic's objects


def check_rules(tenant_id: int) -> list[RuleWarning]:
    """The warnings for one clinic's actual objects."""
    return []
