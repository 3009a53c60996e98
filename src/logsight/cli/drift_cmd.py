"""``logsight drift`` and ``logsight performance``: on files or against the cluster."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from logsight.cli.common import (
    engine_from,
    job_errors,
    json_option,
    namespace_callback,
    print_json,
    print_table,
    time_option,
    url_option,
    when,
    write_option,
)
from logsight.jobs import drift as D
from logsight.timeutil import iso

JSON_KEYS = ("feature", "type", "test", "statistic", "p_value", "psi", "js_distance",
             "wasserstein", "drifted")
# the model jobs' request fields as these commands' options, for their errors
OPTIONS = {"tests": "--test", "columns": "--column", "reference": "--reference",
           "current": "--current", "task": "--task", "window.start": "--from",
           "window.end": "--to", "baseline_version": "--baseline-version",
           "estimate": "--estimate"}
# below this a p-value is printed in scientific notation: 0.000 would read as "exactly 0"
_P_SCIENTIFIC_BELOW = 1e-3


def _window(start: str | None, end: str | None, names_: tuple[str, str], now: datetime,
            *, default_end: datetime | None = None, default_end_is: str = "now"
            ) -> tuple[datetime, datetime] | None:
    """The window [start, end) of two options, None when neither is given. The end may be
    left out: it is then ``default_end`` (``now`` unless given), described as
    ``default_end_is`` in errors; an end without a start is refused."""
    s, e = when(start, now=now, option=names_[0]), when(end, now=now, option=names_[1])
    if s is None and e is None:
        return None
    if s is None:
        raise click.UsageError(f"{names_[1]} needs {names_[0]} (the window's start)")
    if e is None:
        e = default_end if default_end is not None else now
        end_text = f"(default: {default_end_is}, {iso(e, timespec='seconds')})"
    else:
        end_text = f"{end!r} ({iso(e, timespec='seconds')})"
    if not s < e:
        raise click.BadParameter(
            f"{start!r} ({iso(s, timespec='seconds')}) must be before {names_[1]} {end_text}",
            param_hint=names_[0])
    return s, e


def _reference_window(start: str | None, end: str | None, current: tuple[datetime, datetime],
                      now: datetime, options: tuple[str, str] = ("--reference-from",
                                                                 "--reference-to"),
                      ) -> tuple[datetime, datetime] | None:
    """--reference-from/--reference-to (``options``: the command's names for them); the end
    defaults to the current window's start so the two never overlap. An explicit overlapping
    reference is allowed, with a warning: the rows in both windows are then compared with
    themselves, which hides drift."""
    ref = _window(start, end, options, now,
                  default_end=current[0], default_end_is="the current window's start")
    if ref is not None and ref[0] < current[1] and current[0] < ref[1]:
        click.echo(
            f"warning: the reference window ({iso(ref[0], timespec='seconds')} to "
            f"{iso(ref[1], timespec='seconds')}) overlaps the current window "
            f"({iso(current[0], timespec='seconds')} to {iso(current[1], timespec='seconds')})"
            "; rows in both are compared with themselves", err=True)
    return ref


def _config(bins: int, correction: str, tests: tuple[str, ...], psi_threshold: float | None,
            ks_threshold: float | None, js_threshold: float | None,
            wasserstein_threshold: float | None = None) -> D.DriftConfig:
    overrides: dict[str, str] = {}
    for t in tests:
        if "=" not in t:
            raise click.BadParameter(f"expected COLUMN=TEST, got {t!r}", param_hint="--test")
        col, test = t.split("=", 1)
        overrides[col] = test
    th = D.DriftThresholds()
    try:
        th = D.DriftThresholds(
            ks_p_value=ks_threshold if ks_threshold is not None else th.ks_p_value,
            psi=psi_threshold if psi_threshold is not None else th.psi,
            jensenshannon=js_threshold if js_threshold is not None else th.jensenshannon,
            wasserstein=(wasserstein_threshold if wasserstein_threshold is not None
                         else th.wasserstein),
        )
        return D.DriftConfig(bins=bins, correction=correction,  # type: ignore[arg-type]  # click.Choice checked it
                             tests=overrides, thresholds=th)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


def _p_text(rows: list[dict[str, Any]], key: str) -> None:
    """Format ``key`` in place: small p-values in scientific notation (1.2e-07), the rest
    with 4 significant digits; right-aligned by padding, as print_table aligns strings left."""
    texts = []
    for row in rows:
        v = row.get(key)
        if v is None:
            texts.append("")
        elif v == 0 or v >= _P_SCIENTIFIC_BELOW:
            texts.append(format(v, ".4g"))
        else:
            texts.append(format(v, ".2g"))
    width = max([len(key), *map(len, texts)])
    for row, t in zip(rows, texts, strict=True):
        row[key] = t.rjust(width)


def _print(results: list[D.FeatureDrift], as_json: bool, extra: dict[str, Any]) -> None:
    if as_json:
        feats = []
        for r in results:
            d = r.to_dict()
            row = {k: d[k] for k in JSON_KEYS}
            row.update({k: d[k] for k in d if k not in JSON_KEYS})
            feats.append(row)
        print_json({"features": feats, **extra})
        return
    rows = [r.to_dict() for r in results]
    for row in rows:
        row["drifted"] = "DRIFT" if row["drifted"] else ("warn" if row["warning"] else "")
    _p_text(rows, "p_value")
    cols = ["feature", "type", "test", "rule", "statistic", "p_value", "psi", "js_distance",
            "wasserstein", "drifted"]
    if any(r.note for r in results):
        cols.append("note")
    print_table(rows, cols, floatfmt=".4g")
    compared = [r for r in results if r.test]
    n = sum(r.drifted for r in compared)
    line = f"\n{n} of {len(compared)} feature(s) drifted"
    skipped = [r.feature for r in results if not r.test]
    if skipped:
        line += f"; not compared: {', '.join(skipped)}"
    click.echo(line)


@click.command()
@click.option("--reference", "reference_file", type=click.Path(dir_okay=False),
              help="Reference data file (CSV, Parquet or NDJSON).")
@click.option("--current", "current_file", type=click.Path(dir_okay=False),
              help="Current data file (CSV, Parquet or NDJSON).")
@click.option("--model", help="Model name (cluster mode).")
@click.option("--version", "model_version", help="Only this model version (cluster mode).")
@time_option('--reference-from', what='Reference window start')
@time_option('--reference-to', what='Reference window end (exclusive)',
             default='Default: --current-from.')
@click.option("--reference-profile", help="Id of a stored reference profile (cluster mode).")
@time_option('--current-from', what='Current window start')
@time_option('--current-to', what='Current window end (exclusive)', default='Default: now.')
@click.option("--namespace", default=None, callback=namespace_callback,
              help="Stream namespace (default: all).")
@click.option("--column", "columns", multiple=True, help="Only these columns (files).")
@click.option("--bins", default=D.DEFAULT_BINS, show_default=True, type=click.IntRange(2),
              help="Reference-quantile bins for PSI and Jensen-Shannon (at least 2).")
@click.option("--test", "tests", multiple=True, metavar="COLUMN=TEST",
              help=f"Override the preset test for a column ({', '.join(sorted(D.DRIFT_TESTS))}).")
@click.option("--correction", type=click.Choice(["none", "bh"]), default="bh",
              show_default=True, help="Benjamini-Hochberg across features for the p-value "
              "tests (none: each raw p-value).")
@click.option("--psi-threshold", type=click.FloatRange(0, min_open=True), default=None,
              help=f"Drift when PSI is above this (> 0; default {D.DriftThresholds.psi}).")
@click.option("--ks-threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=None, help="Drift when the KS p-value is below this (in (0, 1); "
              f"default {D.DriftThresholds.ks_p_value}).")
@click.option("--js-threshold", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Drift when the Jensen-Shannon distance is above this (in (0, 1]; "
              f"default {D.DriftThresholds.jensenshannon}).")
@click.option("--wasserstein-threshold", type=click.FloatRange(0, min_open=True), default=None,
              help="Drift when the normed Wasserstein distance is above this (> 0; default "
              f"{D.DriftThresholds.wasserstein}).")
@click.option("--save-profile", default=None, metavar="NAME",
              help="Cluster mode: store the reference window's profile under NAME.")
@write_option("Cluster mode: write findings.")
@url_option
@json_option
def drift(
    reference_file: str | None, current_file: str | None, model: str | None,
    model_version: str | None, reference_from: str | None, reference_to: str | None,
    reference_profile: str | None, current_from: str | None, current_to: str | None,
    namespace: str | None, columns: tuple[str, ...], bins: int, tests: tuple[str, ...],
    correction: str, psi_threshold: float | None, ks_threshold: float | None,
    js_threshold: float | None, wasserstein_threshold: float | None,
    save_profile: str | None, write: bool, url: str | None,
    as_json: bool,
) -> None:
    """Data drift of a current sample against a reference: two files, or a model's two
    windows in the cluster (computed from aggregations, without reading raw rows)."""
    config = _config(bins, correction, tests, psi_threshold, ks_threshold, js_threshold,
                     wasserstein_threshold)
    if reference_file or current_file:
        if not (reference_file and current_file):
            raise click.UsageError("give both --reference and --current files")
        if model:
            raise click.UsageError("--model is for the cluster; files take no --model")
        with job_errors(OPTIONS):
            result = D.drift(D.DriftRequest(config=config, columns=columns),
                             D.SampleFiles(reference_file, current_file))
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
        _print(result.features, as_json,
               {"findings": [f.to_document() for f in result.findings]})
        for f in result.findings:
            if f.kind == "outlier_inputs" and not as_json:
                click.echo(f"outlier inputs: {f.summary}")
        return
    if not model:
        raise click.UsageError("give --reference/--current files, or --model with windows")
    now = datetime.now(UTC)
    current = _window(current_from, current_to, ("--current-from", "--current-to"), now)
    if current is None:
        raise click.UsageError("cluster mode needs --current-from (--current-to defaults to "
                               "now)")
    ref_window = _reference_window(reference_from, reference_to, current, now)
    reference: D.Window | str
    if reference_profile:
        reference = reference_profile
    elif ref_window is not None:
        reference = D.Window(*ref_window, name="reference")
    else:
        raise click.UsageError(
            "cluster mode needs --reference-from/--reference-to or --reference-profile")
    request = D.DriftRequest(
        D.Window(*current), reference, D.Scope(namespace=namespace, model=model,
                                                version=model_version),
        config=config, save_profile=save_profile, require_current=True)
    engine = engine_from(url)
    try:
        with job_errors(OPTIONS):
            # a profile asked for by name is stored even with --no-write
            writer = D.ClusterWriter(engine, findings=write)
            result = D.drift(request, D.ClusterEvents(engine, namespace), writer)
    finally:
        engine.close()
    extra: dict[str, Any] = {}
    if result.profile_id is not None:
        extra["profile_id"] = result.profile_id
    extra["findings"] = [f.to_document() for f in result.findings]
    _print(result.features, as_json, extra)


@click.command()
@click.option("--model", required=True, help="Model name.")
@click.option("--version", "model_version", help="Only this model version.")
@click.option("--input", "input_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="NDJSON file of ML event documents (predictions, feedback, "
              "KPIs, as the ML adapter writes them): no cluster.")
@time_option('--from', 'start', what='Window start',
             default="Required on a cluster; with --input: the file's first prediction.")
@time_option('--to', 'end', what='Window end (exclusive)',
             default="Default: now (--input: after the file's last prediction).")
@time_option('--baseline-from', '--reference-from', 'reference_from',
             what='Baseline window start, for degradation (each version against itself then)')
@time_option('--baseline-to', '--reference-to', 'reference_to',
             what='Baseline window end (exclusive)', default='Default: --from.')
@click.option("--task", type=click.Choice(["classification", "regression"]), default=None,
              help="Metrics to compute: classification (accuracy, F1, ROC-AUC, calibration; "
              "needs ml.label) or regression (MAE, RMSE, MAPE; needs ml.label_value). "
              "Default: guessed from the labels.")
@click.option("--baseline-version", default=None, help="Version the others are compared with.")
@click.option("--kpi-lower-is-better", multiple=True, metavar="NAME",
              help="A KPI whose lower values are better (e.g. latency); repeatable.")
@click.option("--estimate", is_flag=True, default=False,
              help="Estimate each version's accuracy from its calibrated probabilities (CBPE) "
              "before the labels land, with a 95% band; the baseline window (labelled) is the "
              "calibration check and the accuracy a drop is judged against.")
@click.option("--namespace", default=None, callback=namespace_callback,
              help="Stream namespace (default: all).")
@write_option("Write findings (cluster mode).")
@url_option
@json_option
def performance(
    model: str, model_version: str | None, input_path: Path | None, start: str | None,
    end: str | None, reference_from: str | None, reference_to: str | None, task: str | None,
    baseline_version: str | None, kpi_lower_is_better: tuple[str, ...], estimate: bool,
    namespace: str | None, write: bool, url: str | None, as_json: bool,
) -> None:
    """Model quality over predictions joined with (late) feedback, per version.

    Example: logsight performance --model churn --input mlevents.ndjson"""
    from logsight.jobs import performance as P

    now = datetime.now(UTC)
    source: Any = None
    if input_path is not None:
        source = P.EventFile(input_path)
        with job_errors(OPTIONS):
            first, after_last = source.span(model)
        window = _window(start or first.isoformat(), end or after_last.isoformat(),
                         ("--from", "--to"), now)
    else:
        if start is None:
            raise click.UsageError("--from is required on a cluster (or give --input FILE)")
        window = _window(start, end, ("--from", "--to"), now)
    assert window is not None  # a start is given or taken from the file
    reference = _reference_window(reference_from, reference_to, window, now,
                                  ("--baseline-from", "--baseline-to"))

    request = P.PerformanceRequest(
        P.Window(*window), P.Scope(namespace=namespace, model=model, version=model_version),
        reference=P.Window(*reference, name="reference") if reference else None,
        task=task,  # type: ignore[arg-type]  # click.Choice checked it
        baseline_version=baseline_version, kpi_lower_is_better=kpi_lower_is_better,
        require_current=True, estimate=estimate)
    engine = engine_from(url) if source is None else None
    try:
        with job_errors(OPTIONS):
            try:
                if engine is None:
                    result = P.performance(request, source)
                else:
                    result = P.performance(request, P.ClusterEvents(engine, namespace),
                                           None if not write else P.ClusterWriter(engine))
            except P.TaskMismatch as err:
                if task is None or err.labels is None:
                    raise
                need = ("numeric labels (ml.label_value)" if err.task == "regression"
                        else "class labels (ml.label)")
                raise click.BadParameter(
                    f"--task {err.task} needs {need}; model {model!r}'s labels are "
                    f"{err.labels}: use --task {err.suggested}", param_hint="--task") from None
    finally:
        if engine is not None:
            engine.close()
    report, findings = result.report, result.findings
    _print_performance(report, findings, as_json, result.estimate)


def _print_performance(report: Any, findings: list[Any], as_json: bool,
                       estimate: Any = None) -> None:
    if as_json:
        out: dict[str, Any] = {"report": report.to_dict()}
        if estimate is not None:
            out["estimate"] = estimate.to_dict()
        out["findings"] = [f.to_document() for f in findings]
        print_json(out)
        return
    click.echo(f"{report.model}: {report.n_predictions} predictions, {report.n_labelled} "
               f"labelled (coverage {report.label_coverage:.1%}), task {report.task}")
    rows = []
    for v in report.versions:
        row: dict[str, Any] = {"version": v.version, "predictions": v.n_predictions,
                               "labelled": v.n_labelled, "coverage": v.label_coverage}
        row.update({k: val for k, val in asdict(v.metrics).items()
                    if isinstance(val, float) or val is None})
        rows.append(row)
    metric_cols = (["accuracy", "f1_macro", "roc_auc", "ece", "brier"] if report.task ==
                   "classification" else ["mae", "rmse", "mape"])
    print_table(rows, ["version", "predictions", "labelled", "coverage", *metric_cols])
    comps = [*report.degradation, *report.version_comparisons]
    if comps:
        click.echo("")
        crow = [{"candidate": c.candidate, "baseline": c.baseline, "metric": c.metric,
                 "candidate_value": c.candidate_value, "baseline_value": c.baseline_value,
                 "loss_diff": c.loss_diff, "p_value": c.p_value,
                 "worse": "WORSE" if c.worse else ""} for c in comps]
        _p_text(crow, "p_value")
        print_table(crow, ["candidate", "baseline", "metric", "candidate_value",
                           "baseline_value", "loss_diff", "p_value", "worse"])
    if report.kpis:
        click.echo("")
        print_table([asdict(k) for k in report.kpis],
                    ["name", "version", "n", "mean", "ci_low", "ci_high"])
        for name, c in report.kpi_accuracy_correlation.items():
            rho = "n/a" if c.get("rho") is None else f"{c['rho']:.3f}"
            p = "n/a" if c.get("p_value") is None else f"{c['p_value']:.2g}"
            click.echo(f"{name} vs accuracy: Spearman rho {rho} (p {p}, "
                       f"{c.get('n')} windows of {c.get('window')})")
    if estimate is not None and estimate.metric == "mae":  # DLE, a regression
        click.echo("")
        ref = ("-" if estimate.reference_mae is None
               else f"{estimate.reference_mae:.4g} on {estimate.reference_n} labels")
        click.echo(f"estimated loss (DLE): reference MAE {ref}")
        print_table([{"version": v.version, "predictions": v.estimate.n,
                      "estimated_mae": v.estimate.mae, "estimated_rmse": v.estimate.rmse,
                      "realised_mae": v.realised_mae, "realised_rmse": v.realised_rmse,
                      "labelled": v.n_labelled} for v in estimate.versions],
                    ["version", "predictions", "estimated_mae", "estimated_rmse",
                     "realised_mae", "realised_rmse", "labelled"])
        for note in estimate.notes:
            click.echo(f"\nnote: {note}")
    elif estimate is not None:
        click.echo("")
        ref = ("-" if estimate.reference_accuracy is None
               else f"{estimate.reference_accuracy:.4f} on {estimate.reference_n} labels")
        cal = estimate.calibration
        ece = "not checked" if cal is None or cal.ece is None else f"ECE {cal.ece:.4f}"
        click.echo(f"estimated accuracy (CBPE): reference {ref}, calibration {ece}")
        print_table([{"version": v.version, "predictions": v.estimate.n,
                      "estimated": v.estimate.estimate, "band_low": v.estimate.lower,
                      "band_high": v.estimate.upper, "realised": v.realised,
                      "labelled": v.n_labelled, "error": v.error,
                      "drop": "DROP" if v.drop else ""} for v in estimate.versions],
                    ["version", "predictions", "estimated", "band_low", "band_high",
                     "realised", "labelled", "error", "drop"])
        for note in estimate.notes:
            click.echo(f"\nnote: {note}")
    for note in report.notes:
        click.echo(f"\nnote: {note}")
    for f in findings:
        click.echo(f"\n[{f.severity}] {f.kind}: {f.title}\n  {f.summary}")
