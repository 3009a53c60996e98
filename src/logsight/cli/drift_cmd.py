"""``logsight drift`` and ``logsight performance``: on files or against the cluster."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

import click
import pandas as pd

from logsight.analysis import drift as D
from logsight.cli.common import engine_from, json_option, print_json, print_table, url_option

JSON_KEYS = ("feature", "type", "test", "statistic", "p_value", "psi", "js_distance",
             "wasserstein", "drifted")


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except ValueError as e:
        raise click.BadParameter(f"not a date/time: {value!r} (use ISO 8601)",
                                 param_hint=name) from e
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.to_pydatetime()


def _config(bins: int, correction: str, tests: tuple[str, ...], psi_threshold: float | None,
            ks_threshold: float | None, js_threshold: float | None) -> D.DriftConfig:
    overrides: dict[str, str] = {}
    for t in tests:
        if "=" not in t:
            raise click.BadParameter(f"expected COLUMN=TEST, got {t!r}", param_hint="--test")
        col, test = t.split("=", 1)
        overrides[col] = test
    th = D.DriftThresholds()
    th = D.DriftThresholds(
        ks_p_value=ks_threshold if ks_threshold is not None else th.ks_p_value,
        psi=psi_threshold if psi_threshold is not None else th.psi,
        jensenshannon=js_threshold if js_threshold is not None else th.jensenshannon,
    )
    try:
        return D.DriftConfig(bins=bins, correction=correction,  # type: ignore[arg-type]  # click.Choice checked it
                             tests=overrides, thresholds=th)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


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
    print_table(rows, ["feature", "type", "test", "statistic", "p_value", "psi", "js_distance",
                       "wasserstein", "drifted"], floatfmt=".4g")
    n = sum(r.drifted for r in results)
    click.echo(f"\n{n} of {len(results)} feature(s) drifted")


@click.command()
@click.option("--reference", "reference_file", type=click.Path(dir_okay=False),
              help="Reference data file (CSV, Parquet or NDJSON).")
@click.option("--current", "current_file", type=click.Path(dir_okay=False),
              help="Current data file (CSV, Parquet or NDJSON).")
@click.option("--model", help="Model name (cluster mode).")
@click.option("--version", "model_version", help="Only this model version (cluster mode).")
@click.option("--reference-from", help="Reference window start (ISO 8601).")
@click.option("--reference-to", help="Reference window end (exclusive).")
@click.option("--reference-profile", help="Id of a stored reference profile (cluster mode).")
@click.option("--current-from", help="Current window start (ISO 8601).")
@click.option("--current-to", help="Current window end (exclusive).")
@click.option("--namespace", default=None, help="Stream namespace (default: all).")
@click.option("--column", "columns", multiple=True, help="Only these columns (files).")
@click.option("--bins", default=D.DEFAULT_BINS, show_default=True, type=click.IntRange(2))
@click.option("--test", "tests", multiple=True, metavar="COLUMN=TEST",
              help=f"Override the preset test for a column ({', '.join(sorted(D.DRIFT_TESTS))}).")
@click.option("--correction", type=click.Choice(["none", "bh"]), default="none",
              show_default=True, help="Benjamini-Hochberg across features.")
@click.option("--psi-threshold", type=float, default=None)
@click.option("--ks-threshold", type=float, default=None)
@click.option("--js-threshold", type=float, default=None)
@click.option("--save-profile", default=None, metavar="NAME",
              help="Cluster mode: store the reference window's profile under NAME.")
@click.option("--no-write", is_flag=True, help="Cluster mode: do not write findings.")
@url_option
@json_option
def drift(
    reference_file: str | None, current_file: str | None, model: str | None,
    model_version: str | None, reference_from: str | None, reference_to: str | None,
    reference_profile: str | None, current_from: str | None, current_to: str | None,
    namespace: str | None, columns: tuple[str, ...], bins: int, tests: tuple[str, ...],
    correction: str, psi_threshold: float | None, ks_threshold: float | None,
    js_threshold: float | None, save_profile: str | None, no_write: bool, url: str | None,
    as_json: bool,
) -> None:
    """Data drift of a current sample against a reference: two files, or a model's two
    windows in the cluster (computed from aggregations, without reading raw rows)."""
    config = _config(bins, correction, tests, psi_threshold, ks_threshold, js_threshold)
    if reference_file or current_file:
        if not (reference_file and current_file):
            raise click.UsageError("give both --reference and --current files")
        if model:
            raise click.UsageError("--model is for the cluster; files take no --model")
        from logsight.sources.mlevents import read_file

        try:
            ref, cur = read_file(reference_file), read_file(current_file)
            results = D.compare(ref, cur, columns=list(columns) or None, config=config)
        except ValueError as e:
            raise click.BadParameter(str(e)) from e
        _print(results, as_json, {})
        return
    if not model:
        raise click.UsageError("give --reference/--current files, or --model with windows")
    cs, ce = _when(current_from, "--current-from"), _when(current_to, "--current-to")
    if cs is None or ce is None:
        raise click.UsageError("cluster mode needs --current-from and --current-to")
    rs, re_ = _when(reference_from, "--reference-from"), _when(reference_to, "--reference-to")
    reference: Any
    if reference_profile:
        reference = reference_profile
    elif rs is not None and re_ is not None:
        reference = (rs, re_)
    else:
        raise click.UsageError(
            "cluster mode needs --reference-from/--reference-to or --reference-profile")
    from logsight.engine import EngineError
    from logsight.sources import mlevents as M

    engine = engine_from(url)
    try:
        extra: dict[str, Any] = {}
        if save_profile and isinstance(reference, tuple):
            prof, fields = M.profile_from_cluster(
                engine, model=model, start=reference[0], end=reference[1],
                version=model_version, namespace=namespace, config=config)
            extra["profile_id"] = M.store_profile(
                engine, prof, model=model, version=model_version, name=save_profile,
                fields=fields, window=reference, namespace=namespace)
            reference = M.StoredProfile(extra["profile_id"], model, model_version, prof,
                                        fields, "window")
        results, findings = M.run_drift(
            engine, model=model, reference=reference, current=(cs, ce),
            version=model_version, namespace=namespace, config=config, write=not no_write)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    except EngineError as e:
        raise click.ClickException(str(e)) from e
    finally:
        engine.close()
    extra["findings"] = [f.to_document() for f in findings]
    _print(results, as_json, extra)


@click.command()
@click.option("--model", required=True, help="Model name.")
@click.option("--version", "model_version", help="Only this model version.")
@click.option("--from", "start", required=True, help="Window start (ISO 8601).")
@click.option("--to", "end", required=True, help="Window end (exclusive).")
@click.option("--reference-from", help="Reference window start, for degradation.")
@click.option("--reference-to", help="Reference window end.")
@click.option("--task", type=click.Choice(["classification", "regression"]), default=None)
@click.option("--baseline-version", default=None, help="Version the others are compared with.")
@click.option("--kpi-lower-is-better", multiple=True, metavar="NAME",
              help="A KPI whose lower values are better (e.g. latency); repeatable.")
@click.option("--namespace", default=None)
@click.option("--no-write", is_flag=True, help="Do not write findings.")
@url_option
@json_option
def performance(
    model: str, model_version: str | None, start: str, end: str, reference_from: str | None,
    reference_to: str | None, task: str | None, baseline_version: str | None,
    kpi_lower_is_better: tuple[str, ...], namespace: str | None, no_write: bool,
    url: str | None, as_json: bool,
) -> None:
    """Model quality over predictions joined with (late) feedback, per version."""
    s, e = _when(start, "--from"), _when(end, "--to")
    rs, re_ = _when(reference_from, "--reference-from"), _when(reference_to, "--reference-to")
    if (rs is None) != (re_ is None):
        raise click.UsageError("give both --reference-from and --reference-to, or neither")
    from logsight.engine import EngineError
    from logsight.sources import mlevents as M

    engine = engine_from(url)
    try:
        report, findings = M.run_performance(
            engine, model=model, start=s, end=e,  # type: ignore[arg-type]  # required options
            version=model_version, reference=(rs, re_) if rs and re_ else None,
            namespace=namespace, task=task,  # type: ignore[arg-type]  # click.Choice
            baseline_version=baseline_version, kpi_lower_is_better=kpi_lower_is_better,
            write=not no_write)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err
    except EngineError as err:
        raise click.ClickException(str(err)) from err
    finally:
        engine.close()
    if as_json:
        print_json({"report": report.to_dict(), "findings": [f.to_document() for f in findings]})
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
    if report.kpis:
        click.echo("")
        print_table([asdict(k) for k in report.kpis],
                    ["name", "version", "n", "mean", "ci_low", "ci_high"])
        for name, c in report.kpi_accuracy_correlation.items():
            rho = "n/a" if c.get("rho") is None else f"{c['rho']:.3f}"
            p = "n/a" if c.get("p_value") is None else f"{c['p_value']:.2g}"
            click.echo(f"{name} vs accuracy: Spearman rho {rho} (p {p}, "
                       f"{c.get('n')} windows of {c.get('window')})")
    for f in findings:
        click.echo(f"\n[{f.severity}] {f.kind}: {f.title}\n  {f.summary}")
