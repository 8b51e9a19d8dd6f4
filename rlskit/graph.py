"""The model as a diagram: the role hierarchy, which login roles may switch to which
roles, grants per table and view, and what each restricted view exposes — as Mermaid
(READMEs, review tools) or Graphviz DOT."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .model import Model
from .sqltext import Privilege, relations_read

__all__ = ["Edge", "Graph", "Node", "build_graph", "to_dot", "to_mermaid"]


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    kind: str  # "role", "login", "tenant table", "table", "view"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str
    kind: str  # "inherits", "switches", "grant", "reads"


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


def build_graph(model: Model) -> Graph:
    """Nodes and edges in model order (so the output is deterministic)."""
    model.validate()
    ids: dict[str, str] = {}
    nodes: list[Node] = []

    def node(key: str, label: str, kind: str) -> str:
        if key not in ids:
            ids[key] = f"n{len(ids)}"
            nodes.append(Node(ids[key], label, kind))
        return ids[key]

    edges: list[Edge] = []
    for role in model.roles.values():
        node(f"role {role.name}", model.role_name(role), "login" if role.login else "role")
    for role in model.roles.values():
        for parent in role.inherits:
            edges.append(Edge(ids[f"role {role.name}"],
                              ids[f"role {model.resolve_role(parent).name}"], "inherits",
                              "inherits"))
    for name in model.authenticators:
        for target in model.switchable(name):
            edges.append(Edge(ids[f"role {name}"], ids[f"role {target.name}"], "SET ROLE",
                              "switches"))
    for table in model.tables.values():
        kind = "tenant table" if table.tenant_column else "table"
        label = table.qualified + (" (RLS, forced)" if table.rls else "")
        relation_id = node(table.qualified, label, kind)
        for grantee, privileges in table.grants.items():
            edges.append(Edge(ids[f"role {model.resolve_role(grantee).name}"], relation_id,
                              ", ".join(_privilege(p) for p in privileges), "grant"))
    for view in model.views.values():
        name = f"{view.schema}.{view.name}"
        view_id = node(name, f"{name} (view)", "view")
        for grantee, privileges in view.grants.items():
            edges.append(Edge(ids[f"role {model.resolve_role(grantee).name}"], view_id,
                              ", ".join(_privilege(p) for p in privileges), "grant"))
        for relation in relations_read(view.query_sql, view.schema):
            edges.append(Edge(view_id, node(relation, relation, "table"), "reads", "reads"))
    return Graph(tuple(nodes), tuple(edges))


def _privilege(priv: Privilege) -> str:
    return f"{priv.name} ({', '.join(priv.columns)})" if priv.columns else priv.name


_MERMAID_SHAPES = {"role": ('(["', '"])'), "login": ('[/"', '"/]'),
                   "tenant table": ('[("', '")]'), "table": ('[("', '")]'),
                   "view": ('[["', '"]]')}
_MERMAID_ARROWS = {"inherits": "-->", "switches": "-.->", "grant": "==>", "reads": "-->"}


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(graph: Graph) -> str:
    """A ``flowchart LR``: stadium roles, slanted login roles, cylinder tables, boxed
    views; thick arrows are grants, dotted ones SET ROLE."""
    lines = ["flowchart LR"]
    for n in graph.nodes:
        left, right = _MERMAID_SHAPES[n.kind]
        lines.append(f"    {n.id}{left}{_mermaid_text(n.label)}{right}")
    for e in graph.edges:
        lines.append(f"    {e.source} {_MERMAID_ARROWS[e.kind]}|\"{_mermaid_text(e.label)}\"| "
                     f"{e.target}")
    return "\n".join(lines) + "\n"


_DOT_SHAPES = {"role": "ellipse", "login": "parallelogram", "tenant table": "cylinder",
               "table": "cylinder", "view": "box3d"}
_DOT_STYLES = {"inherits": "solid", "switches": "dashed", "grant": "bold", "reads": "dotted"}


def _dot_text(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a quoted DOT string: \" and \\ escaped


def to_dot(graph: Graph) -> str:
    """A Graphviz ``digraph`` with the same shapes and edge styles."""
    lines = ["digraph rlskit {", "    rankdir=LR;"]
    for n in graph.nodes:
        lines.append(f"    {n.id} [label={_dot_text(n.label)}, shape={_DOT_SHAPES[n.kind]}];")
    for e in graph.edges:
        lines.append(f"    {e.source} -> {e.target} [label={_dot_text(e.label)}, "
                     f"style={_DOT_STYLES[e.kind]}];")
    return "\n".join(lines + ["}"]) + "\n"
