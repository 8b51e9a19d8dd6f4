"""`rlskit graph`: the example's hierarchy, SET ROLE paths, grants and view exposure."""

from __future__ import annotations

from rlskit import Model
from rlskit.examples.saas import build_model
from rlskit.graph import build_graph, to_dot, to_mermaid


def edges(model: Model) -> set[tuple[str, str, str]]:
    graph = build_graph(model)
    label = {n.id: n.label for n in graph.nodes}
    return {(label[e.source], e.label, label[e.target]) for e in graph.edges}


def test_the_example_graph():
    found = edges(build_model(role_prefix="dev_"))
    assert {("dev_member", "inherits", "dev_read_only"),
            ("dev_tenant_admin", "inherits", "dev_member"),
            ("dev_app_authenticator", "SET ROLE", "dev_runner"),
            ("dev_runner", "SELECT, UPDATE (status)", "public.flow (RLS, forced)"),
            ("dev_read_only", "SELECT (id, email, first_name, last_name)",
             "public.users (RLS, forced)"),
            ("dev_member", "SELECT", "public.member_directory (view)"),
            ("public.member_directory (view)", "reads", "public.users (RLS, forced)"),
            ("public.member_directory (view)", "reads", "public.membership (RLS, forced)"),
            } <= found
    assert not any(src == "dev_runner" and "membership" in dst for src, _, dst in found)


def test_mermaid_and_dot_are_deterministic_and_quoted():
    model = Model()
    model.role('say "hi"')
    model.table("notes", grants={'say "hi"': "SELECT"})
    mermaid = to_mermaid(build_graph(model))
    assert mermaid.splitlines() == [
        "flowchart LR",
        '    n0(["say #quot;hi#quot;"])',
        '    n1[("public.notes")]',
        '    n0 ==>|"SELECT"| n1',
    ]
    dot = to_dot(build_graph(model))
    assert 'n0 [label="say \\"hi\\"", shape=ellipse];' in dot
    assert to_dot(build_graph(model)) == dot and dot.endswith("}\n")
