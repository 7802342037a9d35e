"""Forwarding fan-out: how many copies one message becomes, and how deep it forwards.

Forwarders and auto-cc addresses form a graph over our own addresses (every tenant's: a
destination may be another tenant's forwarder). A message to one of them is copied once
per destination, and again at each destination that forwards too, so chained
multi-destination forwarders multiply copies. Two caps bound that (``forward_max_copies``,
``forward_max_depth``): the directory refuses a change that makes some message exceed
them, and local delivery enforces them on what is in the database when mail arrives.

Copies are counted as delivery makes them: a copy per destination per forwarder, along
every chain that does not come back to an address already on it (such a copy is made,
then bounced as a loop, so it counts, but nothing beyond it does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.config import Settings
from mailward.core.errors import InvalidInput
from mailward.db.models import Address, AddressKind

__all__ = [
    "Expansion",
    "ForwardLimits",
    "Graph",
    "check",
    "check_forwarding",
    "expand",
    "load_affected",
    "load_graph",
    "split",
]

Graph = Mapping[str, tuple[str, ...]]
"""A local forwarder or auto-cc address → its destinations (other addresses are leaves)."""

FORWARDING = (AddressKind.FORWARDER, AddressKind.AUTOCC)
BATCH = 500  # addresses per IN (...) query
LIKE_BATCH = 50  # LIKE conditions per query when looking for who forwards to an address
WHOLE_GRAPH_FROM = 200  # more changed addresses than this: read every forwarder at once
COUNT_BEYOND = 10  # errors count copies up to this many times the cap
SHOWN_CHARS = 300  # most characters of a chain description in an error


@dataclass(frozen=True, slots=True)
class ForwardLimits:
    max_copies: int = 50
    max_depth: int = 5

    @classmethod
    def of(cls, settings: Settings) -> ForwardLimits:
        return cls(settings.forward_max_copies, settings.forward_max_depth)


def split(destinations: str | None) -> tuple[str, ...]:
    """The stored comma-joined destinations as a tuple (lower-cased, blanks dropped)."""
    return tuple(d.strip().lower() for d in (destinations or "").split(",") if d.strip())


@dataclass(slots=True)
class Expansion:
    """What one message to ``root`` becomes: ``copies`` made (all levels), the most
    forwarders one copy passes through (``depth``, along ``deepest``), the forwarders
    met (``edges``); ``complete`` is false when counting stopped at ``stop_after``."""

    root: str
    copies: int = 0
    depth: int = 0
    deepest: tuple[str, ...] = ()
    edges: dict[str, tuple[str, ...]] = field(default_factory=dict)
    complete: bool = True


def expand(graph: Graph, root: str, *, stop_after: int, max_depth: int,
           exclude: Iterable[str] = ()) -> Expansion:
    """Walk every chain from ``root`` as delivery would (no address twice on a chain,
    none of ``exclude``: delivery bounces those as loops); stop counting past
    ``stop_after`` copies and descending past ``max_depth`` forwarders."""
    result = Expansion(root)
    if root not in graph:
        return result
    skip = frozenset(exclude)
    stack: list[tuple[str, tuple[str, ...]]] = [(root, (root,))]
    while stack:
        node, path = stack.pop()
        if len(path) > result.depth:
            result.depth, result.deepest = len(path), path
        if len(path) > max_depth:
            continue  # already too deep: reported by depth, no need to go on
        targets = graph[node]
        result.edges.setdefault(node, targets)
        for target in targets:
            result.copies += 1
            if result.copies > stop_after:
                result.complete = False
                return result
            if target in graph and target not in path and target not in skip:
                stack.append((target, (*path, target)))
    return result


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 5] + " ..."


def describe(expansion: Expansion, limits: ForwardLimits) -> str | None:
    """Why ``expansion`` breaks a cap (naming the chain), or ``None``."""
    if expansion.depth > limits.max_depth:
        chain = " → ".join(expansion.deepest[: limits.max_depth + 1])
        return _shown(f"{chain} → ... exceeds the forwarding depth {limits.max_depth} "
                      "(forwarders one message may pass through)")
    if expansion.copies > limits.max_copies:
        more = "" if expansion.complete else "more than "
        edges = "; ".join(f"{node} → {','.join(targets)}"
                          for node, targets in expansion.edges.items())
        return _shown(f"{expansion.root} fans out to {more}"
                      f"{expansion.copies - (0 if expansion.complete else 1)} copies "
                      f"(limit {limits.max_copies}): {edges}")
    return None


def check(graph: Graph, roots: Iterable[str], limits: ForwardLimits) -> str | None:
    """The first cap a message to one of ``roots`` would break, described; or ``None``."""
    count_to = limits.max_copies * COUNT_BEYOND  # enough to say how far over the cap it is
    for root in sorted(set(roots)):
        expansion = expand(graph, root, stop_after=count_to, max_depth=limits.max_depth)
        reason = describe(expansion, limits)
        if reason:
            return reason
    return None


# -- reading the graph -----------------------------------------------------------------------


def _forwarders() -> Select[str, str | None]:
    """Every forwarding address with its destinations."""
    return select(Address.email, Address.destinations).where(
        Address.kind.in_(FORWARDING), Address.destinations.is_not(None))


async def load_graph(session: AsyncSession, starts: Iterable[str], *, levels: int,
                     graph: dict[str, tuple[str, ...]] | None = None
                     ) -> dict[str, tuple[str, ...]]:
    """The forwarders reachable from ``starts`` within ``levels`` hops (into ``graph``)."""
    graph = {} if graph is None else graph
    expanded: set[str] = set()
    frontier = set(starts)
    for _ in range(levels + 1):
        frontier -= expanded
        if not frontier:
            break
        expanded |= frontier
        unknown = sorted(frontier - graph.keys())
        for i in range(0, len(unknown), BATCH):
            rows = await session.execute(
                _forwarders().where(Address.email.in_(unknown[i : i + BATCH])))
            graph.update((email, split(dests)) for email, dests in rows)
        frontier = {t for node in frontier for t in graph.get(node, ())}
    return graph


async def _forwarding_to(session: AsyncSession, targets: set[str]
                         ) -> dict[str, tuple[str, ...]]:
    """The forwarders that have one of ``targets`` among their destinations."""
    found: dict[str, tuple[str, ...]] = {}
    wanted = sorted(targets)
    for i in range(0, len(wanted), LIKE_BATCH):
        batch = wanted[i : i + LIKE_BATCH]
        likes = [Address.destinations.like(
            "%" + t.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",
            escape="\\") for t in batch]
        for email, dests in await session.execute(_forwarders().where(or_(*likes))):
            parsed = split(dests)
            if targets.intersection(parsed):
                found[email] = parsed
    return found


async def load_affected(session: AsyncSession, changed: Iterable[str], limits: ForwardLimits
                        ) -> tuple[dict[str, tuple[str, ...]], set[str]]:
    """The graph around ``changed`` addresses and the roots whose messages the change can
    affect: the changed addresses and every forwarder that reaches one of them."""
    changed = set(changed)
    levels = limits.max_depth + 1
    if len(changed) > WHOLE_GRAPH_FROM:
        graph: dict[str, tuple[str, ...]] = {
            email: split(dests) for email, dests in await session.execute(_forwarders())}
        parents: dict[str, set[str]] = {}
        for node, targets in graph.items():
            for target in targets:
                parents.setdefault(target, set()).add(node)
        roots, frontier = set(changed), set(changed)
        for _ in range(levels):
            frontier = {p for n in frontier for p in parents.get(n, ())} - roots
            roots |= frontier
        return graph, roots
    graph = {}
    roots, frontier = set(changed), set(changed)
    for _ in range(levels):
        if not frontier:
            break
        above = await _forwarding_to(session, frontier)
        graph.update(above)
        frontier = set(above) - roots
        roots |= frontier
    await load_graph(session, roots, levels=levels, graph=graph)
    return graph, roots


async def check_forwarding(session: AsyncSession, changed: Iterable[str],
                           limits: ForwardLimits) -> None:
    """Refuse (``InvalidInput``, naming the chain) the forwarding changes made in
    ``session`` when they let a message to some address exceed the copy or depth cap."""
    graph, roots = await load_affected(session, changed, limits)
    reason = check(graph, roots, limits)
    if reason:
        raise InvalidInput(f"forwarding refused: {reason}")
