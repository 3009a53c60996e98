"""The rule condition as Painless, for the backends that evaluate it inside the cluster.

:func:`condition_core` mirrors :func:`logsight.alerts.rules.evaluate_response` line for line: it
reads the search response from a variable ``payload`` and leaves the groups that fire in
``fired`` (a list of maps: group, value, count). Each backend puts its own first line in front
(``def payload = ctx.payload;`` for Watcher, ``def payload = ctx.results[0];`` for OpenSearch
monitors), and the tests run it with ``params.payload`` through the Painless execute API.

Rule values are written into the source as literals (not ``params``) because OpenSearch trigger
conditions do not take script params.
"""

from __future__ import annotations

from logsight.alerts.rules import OPS, Rule


def _lit(value: str) -> str:
    """``value`` as a Painless string literal.

    Inside single quotes the Painless lexer knows only two escapes, ``\\'`` and ``\\\\``;
    every other character, newlines and non-ASCII included, is taken as it stands (so JSON
    escapes such as ``\\"`` or ``\\u00e9`` would not compile)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _metric_expr(rule: Rule, agg: str) -> str:
    """Painless expression for the metric over ``agg`` (null when there is nothing to judge)."""
    t = rule.metric.type
    if t == "count":
        return f"(double) {agg}.doc_count"
    if t == "ratio":
        return (f"({agg}.doc_count == 0 ? null : "
                f"(double) {agg}.num.doc_count / (double) {agg}.doc_count)")
    if t == "percentile":
        return f"{agg}.m.values[{_lit(rule.metric.percent_key)}]"
    return f"{agg}.m.value"


def condition_core(rule: Rule) -> str:
    """Painless that fills ``fired`` from ``payload`` (see the module docstring)."""
    c = rule.condition
    groups = "payload.aggregations.groups.buckets" if rule.grouped else "[payload.aggregations]"
    key = "String.valueOf(b.key)" if rule.grouped else "null"
    lines = [
        "def fired = [];",
        f"for (def b : {groups}) {{",
        "  def cur = b.current;",
        f"  if (cur.doc_count < {c.min_docs}L) {{ continue; }}",
        "  def v = null;",
    ]
    if rule.metric.type == "new_terms":
        lines += [
            "  def seen = new HashSet();",
            "  if (b.baseline != null) { for (def t : b.baseline.terms.buckets) "
            "{ seen.add(String.valueOf(t.key)); } }",
            "  int n = 0;",
            "  for (def t : cur.terms.buckets) "
            "{ if (!seen.contains(String.valueOf(t.key))) { n++; } }",
            "  v = (double) n;",
        ]
    else:
        lines += [
            f"  def cv = {_metric_expr(rule, 'cur')};",
            "  if (cv == null) { continue; }",
            "  v = ((Number) cv).doubleValue();",
            "  if (Double.isNaN(v) || Double.isInfinite(v)) { continue; }",
        ]
        if rule.metric.compare == "baseline":
            lines += [
                "  def base = b.baseline;",
                f"  if (base.doc_count < {c.min_baseline_docs}L) {{ continue; }}",
                f"  def bv = {_metric_expr(rule, 'base')};",
                "  if (bv == null || ((Number) bv).doubleValue() <= 0) { continue; }",
                "  v = v / ((Number) bv).doubleValue();",
            ]
    lines += [
        f"  if (v {OPS[c.op]} {float(c.threshold)!r}) {{",
        f"    fired.add(['group': {key}, 'value': v, 'count': cur.doc_count]);",
        "  }",
        "}",
    ]
    return "\n".join(lines)
