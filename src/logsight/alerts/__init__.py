"""Alert rules (YAML) -> Elasticsearch Watcher / OpenSearch Alerting monitors / logsight's own
evaluator. ``evaluate_rules`` is what the service's scheduler calls."""

from logsight.alerts.evaluator import (
    EvaluationReport,
    FiredAlert,
    RuleEvaluation,
    WebhookPolicy,
    check_webhook_url,
    evaluate_rule,
    evaluate_rules,
    post_webhook,
    run_rules,
    scope,
)
from logsight.alerts.rules import (
    Rule,
    RuleError,
    builtin_rules_dir,
    evaluate_response,
    load_rules,
    rule_from_dict,
    search_body,
)

__all__ = [
    "EvaluationReport",
    "FiredAlert",
    "Rule",
    "RuleError",
    "RuleEvaluation",
    "WebhookPolicy",
    "builtin_rules_dir",
    "check_webhook_url",
    "evaluate_response",
    "evaluate_rule",
    "evaluate_rules",
    "load_rules",
    "post_webhook",
    "rule_from_dict",
    "run_rules",
    "scope",
    "search_body",
]
