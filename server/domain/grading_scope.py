"""Parts of the province -> district -> commune tree that a grader or a supervision team covers.

A scope is a set of points: a root point and everything below it. Roll-ups group by district, so
the tree also answers which district (and province) a point belongs to.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from server.db.models import ConnectionPoint


class PointTree:
    """A conference's points, indexed once for subtree and ancestor questions."""

    def __init__(self, points: Iterable[ConnectionPoint]) -> None:
        self.points = {p.id: p for p in points}
        self.children: dict[str, list[str]] = defaultdict(list)
        for p in self.points.values():
            if p.parent_id in self.points:
                self.children[p.parent_id].append(p.id)

    def subtree(self, root_id: str) -> set[str]:
        """``root_id`` and every point below it; empty for an unknown point."""
        if root_id not in self.points:
            return set()
        found, stack = set(), [root_id]
        while stack:
            current = stack.pop()
            if current not in found:
                found.add(current)
                stack.extend(self.children.get(current, ()))
        return found

    def covering(self, root_ids: Iterable[str]) -> set[str]:
        """The union of the subtrees of ``root_ids``."""
        return set().union(*(self.subtree(r) for r in root_ids))

    def lineage(self, point_id: str | None) -> list[str]:
        """The point and its ancestors, nearest first (empty for no or an unknown point)."""
        found: list[str] = []
        while point_id in self.points and point_id not in found:
            found.append(point_id)
            point_id = self.points[point_id].parent_id
        return found

    def ancestor_at(self, point_id: str | None, level: str) -> ConnectionPoint | None:
        """The point itself or its nearest ancestor of ``level`` (None when there is none)."""
        return next((self.points[p] for p in self.lineage(point_id) if self.points[p].level == level), None)

    def name(self, point_id: str | None) -> str:
        point = self.points.get(point_id or "")
        return point.name if point else ""
