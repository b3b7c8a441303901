"""The registry's lineage API: where a version came from and what it feeds.

``registry.lineage`` owns the graph (its tables, refs and walks); this module is
what ``ModelRegistry`` offers on top of it: a version's graph, declaring nodes and
edges (audited), and impact questions such as which models or deployments descend
from a data or feature-set version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from registry import lineage, names, queries, schema
from registry.errors import InvalidInput, NotFound
from registry.limits import DEFAULT_LIMITS, InputLimits
from registry.ops.common import check_metadata, locate
from registry.records import ModelVersion
from registry.schema import versions_t
from registry.store import Store, Tx
from registry.versions import SemVer, split_model_ref

v = versions_t.c


def get_lineage(store: Store, name: str, version: str | SemVer) -> lineage.LineageGraph:
    names.model_name(name)
    number = SemVer.parse(version)
    with store.read() as conn:
        locate(conn, name, number)
        return lineage.graph_for(conn, f"{name}-{number}")


def add_lineage_node(
    store: Store,
    ref: str,
    *,
    attrs: Mapping[str, Any] | None,
    actor: str | None,
    default_actor: str,
    limits: InputLimits = DEFAULT_LIMITS,
) -> lineage.Node:
    kind, key = lineage.parse_ref(ref)
    who = names.actor(actor) if actor else default_actor
    extra = check_metadata(attrs, limits, "lineage attributes")

    def op(tx: Tx) -> lineage.Node:
        lineage.ensure_node(
            tx.conn, kind, key, tx.now, version=_node_version(kind, key), attrs=extra
        )
        tx.audit(actor=who, action="lineage_node", target=ref, after={"attrs": extra})
        found = lineage.find_node(tx.conn, kind, key)
        assert found is not None
        return found

    return store.write(op)


def add_lineage_edge(
    store: Store,
    src: str,
    dst: str,
    relation: str,
    *,
    actor: str | None,
    default_actor: str,
) -> None:
    src_kind, src_key = lineage.parse_ref(src)
    dst_kind, dst_key = lineage.parse_ref(dst)
    who = names.actor(actor) if actor else default_actor

    def op(tx: Tx) -> None:
        a = lineage.find_node(tx.conn, src_kind, src_key)
        b = lineage.find_node(tx.conn, dst_kind, dst_key)
        for ref, node in ((src, a), (dst, b)):
            if node is None:
                raise NotFound(f"no lineage node {ref!r}; declare it with add_lineage_node")
        assert a is not None
        assert b is not None
        if lineage.add_edge(tx.conn, a.id, b.id, relation, tx.now):
            tx.audit(
                actor=who,
                action="lineage_edge",
                target=f"{src} -> {dst}",
                after={"relation": relation},
            )

    store.write(op)


def models_using_data(store: Store, data_version: str) -> list[ModelVersion]:
    return _models_downstream(store, "data", data_version)


def models_using_feature_set(store: Store, feature_set_version: str) -> list[ModelVersion]:
    return _models_downstream(store, "feature_set", feature_set_version)


def models_using_feature(store: Store, feature: str) -> list[ModelVersion]:
    """Versions whose stored feature list contains ``feature``: a SQL prefilter, then exact."""
    if not isinstance(feature, str) or not feature:
        raise InvalidInput(f"invalid feature name {feature!r}")
    query = (
        sa.select(*queries.VERSION_COLUMNS)
        .select_from(queries.FROM_VERSIONS)
        .where(v.features.is_not(None))
        .order_by(schema.models_t.c.name, *queries.NEWEST_FIRST)
    )
    encoded = json.dumps(feature)  # how the name appears inside the stored JSON text
    if encoded.isascii():
        # A cheap prefilter; the exact test is the Python one below.
        query = query.where(
            sa.cast(v.features, sa.Text).like(f"%{queries.like_escape(encoded)}%", escape="\\")
        )
    with store.read() as conn:
        found = [queries.version_from_row(r) for r in conn.execute(query)]
    return [mv for mv in found if mv.features and feature in mv.features]


def deployed_downstream_of(store: Store, ref: str) -> list[lineage.Node]:
    with store.read() as conn:
        _, below = lineage.downstream(conn, ref)
    return [n for n in below if n.kind == "deployment"]


def _models_downstream(store: Store, kind: str, version: str) -> list[ModelVersion]:
    with store.read() as conn:
        refs: set[str] = set()
        for node in lineage.nodes_of_kind_version(conn, kind, version):
            _, below = lineage.downstream(conn, node.ref)
            refs |= {n.key for n in below if n.kind == "model_version"}
        out = []
        for ref in sorted(refs):
            model, number = split_model_ref(ref.split("@", 1)[0])
            try:
                out.append(queries.find_version(conn, model, version=number))
            except NotFound:
                continue  # a node for a version in another environment
        return out


def _node_version(kind: str, key: str) -> str | None:
    if kind in ("data", "feature_set"):
        return key.rsplit(":", 1)[-1]
    return None
