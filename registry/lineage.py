"""Lineage: typed nodes (data, feature set, experiment, model version, deployment)
and the edges between them, answering "what trained this?" and "what does
changing X affect?".

Registration records edges from the seed's metadata keys
(``training_data_version``, ``feature_engineering_version``, ``experiment``,
``parent_model``); promotion records deployment nodes. Edges never form a cycle:
adding one that would is refused with the path it would close.

Nodes are identified by kind and key, so two versions naming the same experiment
share its node: if that experiment was fed by two feature sets, both are upstream
of both versions. Name experiment runs uniquely to keep impact queries precise.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from registry.errors import InvalidInput, NotFound
from registry.schema import edges_t, nodes_t
from registry.versions import split_model_ref

METADATA_KEYS = frozenset(
    {"training_data_version", "feature_engineering_version", "experiment", "parent_model"}
)
KINDS = ("data", "feature_set", "experiment", "model_version", "deployment")
# How each kind is written in refs and trees ("data:v2024-01", as the seed shows).
PREFIX = {
    "data": "data",
    "feature_set": "feature-engineering",
    "experiment": "experiment",
    "model_version": "model",
    "deployment": "deployment",
}
_FROM_PREFIX = (
    {v: k for k, v in PREFIX.items()} | {k: k for k in KINDS} | {"feature": "feature_set"}
)


@dataclass(frozen=True, slots=True)
class Node:
    id: int
    kind: str
    key: str
    version: str | None
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """Unique reference: ``kind-prefix:key``."""
        return f"{PREFIX[self.kind]}:{self.key}"

    @property
    def label(self) -> str:
        """What trees show: deployments show their stage, as the seed does."""
        if self.kind == "deployment":
            return f"deployment:{self.attrs.get('stage', self.key)}"
        return self.ref

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "kind": self.kind,
            "key": self.key,
            "version": self.version,
            "attrs": dict(self.attrs),
        }


@dataclass(frozen=True, slots=True)
class Edge:
    src: str
    dst: str
    relation: str


@dataclass(frozen=True)
class LineageGraph:
    """A subgraph around one model version: its ancestors and its deployments."""

    focus: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def _children(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {n.ref: [] for n in self.nodes}
        for e in self.edges:
            out[e.src].append(e.dst)
        labels = {n.ref: n.label for n in self.nodes}
        for refs in out.values():
            refs.sort(key=lambda r: labels[r])
        return out

    def roots(self) -> list[Node]:
        has_parent = {e.dst for e in self.edges}
        return sorted((n for n in self.nodes if n.ref not in has_parent), key=lambda n: n.label)

    def tree(self) -> str:
        """The seed's tree: roots first, each child on ``└─>`` below its parent."""
        children = self._children()
        labels = {n.ref: n.label for n in self.nodes}
        lines: list[str] = []

        def walk(ref: str, prefix: str, last: bool, top: bool) -> None:
            if top:
                lines.append(labels[ref])
                child_prefix = ""
            else:
                lines.append(f"{prefix}{'└─> ' if last else '├─> '}{labels[ref]}")
                child_prefix = prefix + ("    " if last else "│   ")
            kids = children[ref]
            for i, kid in enumerate(kids):
                walk(kid, child_prefix, i == len(kids) - 1, False)

        for root in self.roots():
            walk(root.ref, "", True, True)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "focus": self.focus,
            "nodes": [n.to_dict() for n in sorted(self.nodes, key=lambda n: n.ref)],
            "edges": [
                {"from": e.src, "to": e.dst, "relation": e.relation}
                for e in sorted(self.edges, key=lambda e: (e.src, e.dst))
            ],
        }

    def to_dot(self) -> str:
        lines = ["digraph lineage {", "  rankdir=TB;"]
        for n in sorted(self.nodes, key=lambda n: n.ref):
            shape = "box" if n.kind == "model_version" else "ellipse"
            lines.append(f"  {json.dumps(n.ref)} [label={json.dumps(n.label)}, shape={shape}];")
        for e in sorted(self.edges, key=lambda e: (e.src, e.dst)):
            lines.append(
                f"  {json.dumps(e.src)} -> {json.dumps(e.dst)} [label={json.dumps(e.relation)}];"
            )
        lines.append("}")
        return "\n".join(lines)

    def to_mermaid(self) -> str:
        ids = {n.ref: f"n{i}" for i, n in enumerate(sorted(self.nodes, key=lambda n: n.ref))}
        lines = ["graph TD"]
        for n in sorted(self.nodes, key=lambda n: n.ref):
            lines.append(f'  {ids[n.ref]}["{n.label}"]')
        for e in sorted(self.edges, key=lambda e: (e.src, e.dst)):
            lines.append(f"  {ids[e.src]} -->|{e.relation}| {ids[e.dst]}")
        return "\n".join(lines)


def parse_ref(ref: str) -> tuple[str, str]:
    """``"data:v2024-01"`` -> ``("data", "v2024-01")``."""
    prefix, sep, key = ref.partition(":") if isinstance(ref, str) else ("", "", "")
    kind = _FROM_PREFIX.get(prefix)
    if not sep or kind is None or not key or len(key) > 300:
        raise InvalidInput(
            f"invalid lineage reference {ref!r}: expected KIND:KEY with KIND one of "
            f"{', '.join(sorted(set(PREFIX.values())))}"
        )
    return kind, key


def _row_node(row: Any) -> Node:
    return Node(int(row.id), row.kind, row.key, row.version, row.attrs or {})


def find_node(conn: sa.Connection, kind: str, key: str) -> Node | None:
    row = conn.execute(
        sa.select(nodes_t).where(nodes_t.c.kind == kind, nodes_t.c.key == key)
    ).first()
    return _row_node(row) if row else None


# Every deployment record runs these; built once (building one costs more than running it).
_NODE_ID = sa.select(nodes_t.c.id).where(
    nodes_t.c.kind == sa.bindparam("kind"), nodes_t.c.key == sa.bindparam("key")
)
_EDGE = sa.select(edges_t.c.relation).where(
    edges_t.c.src_id == sa.bindparam("src"), edges_t.c.dst_id == sa.bindparam("dst")
)


def ensure_node(
    conn: sa.Connection,
    kind: str,
    key: str,
    now: datetime,
    *,
    version: str | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> int:
    found = conn.execute(_NODE_ID, {"kind": kind, "key": key}).scalar()
    if found is not None:
        return int(found)
    result = conn.execute(
        nodes_t.insert().values(
            kind=kind, key=key, version=version, attrs=dict(attrs or {}), created_at=now
        )
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def _reachable(conn: sa.Connection, start: int, goal: int) -> list[int] | None:
    """A path start -> ... -> goal along edges, or None."""
    previous: dict[int, int | None] = {start: None}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        if here == goal:
            path = [here]
            while previous[path[-1]] is not None:
                path.append(previous[path[-1]])  # type: ignore[arg-type]
            return path[::-1]
        for (nxt,) in conn.execute(sa.select(edges_t.c.dst_id).where(edges_t.c.src_id == here)):
            if nxt not in previous:
                previous[nxt] = here
                queue.append(nxt)
    return None


def add_edge(conn: sa.Connection, src: int, dst: int, relation: str, now: datetime) -> bool:
    """Insert ``src -> dst``; False if it exists. Refuses self-loops and cycles."""
    if src == dst:
        raise InvalidInput("a lineage edge cannot point at its own source")
    exists = conn.execute(_EDGE, {"src": src, "dst": dst}).first()
    if exists:
        return False
    back = _reachable(conn, dst, src)
    if back is not None:
        refs = [_ref_of(conn, n) for n in back]
        raise InvalidInput(
            f"lineage edge {refs[-1]} -> {refs[0]} would create a cycle: "
            + " -> ".join([*refs, refs[0]])
        )
    conn.execute(edges_t.insert().values(src_id=src, dst_id=dst, relation=relation, created_at=now))
    return True


def _ref_of(conn: sa.Connection, node_id: int) -> str:
    row = conn.execute(sa.select(nodes_t).where(nodes_t.c.id == node_id)).one()
    return _row_node(row).ref


def record_registration(
    conn: sa.Connection,
    *,
    name: str,
    ref: str,
    version: str,
    meta: Mapping[str, Any],
    now: datetime,
) -> list[str]:
    """Edges from the seed's lineage metadata; returns the upstream refs recorded."""
    chain: list[tuple[str, str, str | None]] = []
    data = meta.get("training_data_version")
    if isinstance(data, str) and data:
        dataset = meta.get("training_data")
        key = f"{dataset}:{data}" if isinstance(dataset, str) and dataset else data
        chain.append(("data", key, data))
    features = meta.get("feature_engineering_version")
    if isinstance(features, str) and features:
        chain.append(("feature_set", features, features))
    experiment = meta.get("experiment")
    if isinstance(experiment, str) and experiment:
        chain.append(("experiment", experiment, None))
    parent = meta.get("parent_model")
    if not chain and not (isinstance(parent, str) and parent):
        return []
    model_id = ensure_node(conn, "model_version", ref, now, version=version, attrs={"model": name})
    ids = [ensure_node(conn, kind, key, now, version=v) for kind, key, v in chain]
    relations = {"feature_set": "feeds", "experiment": "feeds"}
    for (kind, _, _), src, dst in zip(chain[1:], ids, ids[1:], strict=False):
        add_edge(conn, src, dst, relations.get(kind, "feeds"), now)
    if ids:
        add_edge(conn, ids[-1], model_id, "produced", now)
    if isinstance(parent, str) and parent:
        try:  # "m-v1" and "m-v1.0.0" are one node: key by the canonical reference
            parent_name, parent_version = split_model_ref(parent)
            parent = f"{parent_name}-{parent_version}"
        except InvalidInput:
            pass  # not NAME-vX: keep the caller's label as the node key
        parent_id = ensure_node(conn, "model_version", parent, now)
        add_edge(conn, parent_id, model_id, "parent", now)
    return [f"{PREFIX[k]}:{key}" for k, key, _ in chain]


def record_deployment(
    conn: sa.Connection,
    *,
    name: str,
    ref: str,
    version: str,
    stage: str,
    environment: str | None,
    actor: str,
    now: datetime,
) -> None:
    """A deployment node per (version, stage), linked below the model version."""
    model_id = ensure_node(conn, "model_version", ref, now, version=version, attrs={"model": name})
    where = f"{environment}/{stage}" if environment else stage
    dep_id = ensure_node(
        conn,
        "deployment",
        f"{ref}@{where}",
        now,
        version=version,
        attrs={"stage": where, "model": name, "first_deployed_at": now.isoformat(), "actor": actor},
    )
    add_edge(conn, model_id, dep_id, "deployed", now)


def _neighbours(conn: sa.Connection, ids: Iterable[int], *, upstream: bool) -> list[Any]:
    ids = list(ids)
    if not ids:
        return []
    col, other = (
        (edges_t.c.dst_id, edges_t.c.src_id) if upstream else (edges_t.c.src_id, edges_t.c.dst_id)
    )
    return list(
        conn.execute(
            sa.select(
                edges_t.c.src_id, edges_t.c.dst_id, edges_t.c.relation, other.label("next")
            ).where(col.in_(ids))
        )
    )


def closure(conn: sa.Connection, start: int, *, upstream: bool) -> tuple[set[int], set[Any]]:
    """All nodes reachable from ``start`` one way, and the edges walked."""
    seen = {start}
    edges: set[Any] = set()
    frontier = [start]
    while frontier:
        rows = _neighbours(conn, frontier, upstream=upstream)
        frontier = []
        for row in rows:
            edges.add((row.src_id, row.dst_id, row.relation))
            if row.next not in seen:
                seen.add(row.next)
                frontier.append(row.next)
    return seen, edges


def graph_for(conn: sa.Connection, ref: str) -> LineageGraph:
    """Ancestors of a model version plus its deployments and copies to other
    environments (the seed's lineage view)."""
    node = find_node(conn, "model_version", ref)
    if node is None:
        return LineageGraph(
            focus=f"model:{ref}", nodes=(Node(0, "model_version", ref, None),), edges=()
        )
    up_nodes, up_edges = closure(conn, node.id, upstream=True)
    deployments = [
        row
        for row in _neighbours(conn, [node.id], upstream=False)
        if row.relation in ("deployed", "promoted_to")
    ]
    ids = up_nodes | {r.next for r in deployments}
    edges = up_edges | {(r.src_id, r.dst_id, r.relation) for r in deployments}
    return _graph(conn, f"model:{ref}", ids, edges)


def _graph(conn: sa.Connection, focus: str, ids: set[int], edges: set[Any]) -> LineageGraph:
    rows: Iterable[Any] = (
        conn.execute(sa.select(nodes_t).where(nodes_t.c.id.in_(ids))) if ids else []
    )
    nodes = {int(r.id): _row_node(r) for r in rows}
    return LineageGraph(
        focus=focus,
        nodes=tuple(sorted(nodes.values(), key=lambda n: n.ref)),
        edges=tuple(
            sorted(
                (
                    Edge(nodes[s].ref, nodes[d].ref, rel)
                    for s, d, rel in edges
                    if s in nodes and d in nodes
                ),
                key=lambda e: (e.src, e.dst),
            )
        ),
    )


def downstream(conn: sa.Connection, ref: str) -> tuple[Node, list[Node]]:
    """Everything derived from the node ``ref`` (``data:v2024-01`` etc.)."""
    kind, key = parse_ref(ref)
    node = find_node(conn, kind, key)
    if node is None:
        raise NotFound(f"no lineage node {ref!r}")
    ids, _ = closure(conn, node.id, upstream=False)
    ids.discard(node.id)
    rows: Iterable[Any] = (
        conn.execute(sa.select(nodes_t).where(nodes_t.c.id.in_(ids))) if ids else []
    )
    return node, sorted((_row_node(r) for r in rows), key=lambda n: n.ref)


def nodes_of_kind_version(conn: sa.Connection, kind: str, version: str) -> list[Node]:
    rows = conn.execute(
        sa.select(nodes_t).where(nodes_t.c.kind == kind, nodes_t.c.version == version)
    )
    return [_row_node(r) for r in rows]


def full_graph(conn: sa.Connection) -> dict[str, Any]:
    nodes = {int(r.id): _row_node(r) for r in conn.execute(sa.select(nodes_t))}
    edges = [
        {"from": nodes[r.src_id].ref, "to": nodes[r.dst_id].ref, "relation": r.relation}
        for r in conn.execute(sa.select(edges_t))
    ]
    return {
        "nodes": [n.to_dict() for n in sorted(nodes.values(), key=lambda n: n.ref)],
        "edges": sorted(edges, key=lambda e: (e["from"], e["to"])),
    }
