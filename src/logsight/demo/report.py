"""The demo's findings report: plain text for the terminal, and a self-contained HTML page with
plots (matplotlib, Agg backend, base64 PNG ``<img>`` elements), plus a check of that page in a
real headless Chromium.

The page carries a tiny inline script that, once loaded, marks every plot image as loaded
(``naturalWidth > 0``) with its data ink (the share of coloured pixels: a plot without data has
none), records the page's height and records script errors, failed resources and
``console.error`` calls into the DOM, so ``chromium --headless --dump-dom`` tells whether
everything rendered, with data, and how tall the whole-page screenshot must be.

Why one file past ~600 lines: the plots, the page and the browser check share one contract
(the ``data-*`` attributes each plot carries and the script reads back); it is the next file
to split (plots / page / check) when it grows.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from logsight.findings import Finding

PLOT_TITLES = {
    "critical_path": "Critical-path share per operation",
    "latency": "Latency over time (p95 per minute)",
    "anomaly": "Log anomaly scores over time",
    "drift": "Drifted feature, reference vs current",
    "accuracy": "Accuracy per model version",
}


@dataclass
class FindingGroup:
    """Findings about the same thing (kind, service, subject) over consecutive windows."""

    kind: str
    service: str | None
    subject: str | None
    findings: list[Finding]
    incident: str | None = None  # the injected incident it explains, if any

    @property
    def first(self) -> Finding:
        return self.findings[0]

    @property
    def strongest(self) -> Finding:
        return max(self.findings, key=lambda f: (f.confidence or 0.0, f.score))

    @property
    def window_start(self) -> Any:
        return min(_ts(f.window_start) for f in self.findings)

    @property
    def window_end(self) -> Any:
        return max(_ts(f.window_end) for f in self.findings)


def _ts(v: Any) -> pd.Timestamp:
    t = pd.Timestamp(v)
    return t.tz_localize("UTC") if t.tzinfo is None else t


def group_findings(findings: Sequence[Finding]) -> list[FindingGroup]:
    """One group per (kind, service, subject), in order of first appearance in time."""
    groups: dict[tuple[str, str | None, str | None], list[Finding]] = {}
    for f in sorted(findings, key=lambda f: _ts(f.window_start)):
        groups.setdefault((f.kind, f.service, f.subject), []).append(f)
    return [FindingGroup(k[0], k[1], k[2], v) for k, v in groups.items()]


@dataclass
class DemoReport:
    """Everything the report shows. Plot inputs are plain data (frames, dicts, arrays)."""

    title: str
    namespace: str
    engine: str
    t0: datetime
    simulated_minutes: int
    incidents: list[dict[str, Any]]  # kind, description, where, start, end, found, by
    groups: list[FindingGroup]
    critical_path: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> op -> share
    latency: pd.DataFrame | None = None  # index minute (timestamp), columns operation, p95 ms
    anomaly: pd.DataFrame | None = None  # columns service, window, score, anomalous
    drift: dict[str, Any] | None = None  # feature, reference (array), current (array), windows
    accuracy: list[dict[str, Any]] = field(default_factory=list)  # version, accuracy, n
    stats: dict[str, Any] = field(default_factory=dict)
    # the analysed baseline (start, end): shaded in the time plots, which all span t0..end
    baseline: tuple[datetime, datetime] | None = None

    @property
    def end(self) -> datetime:
        return self.t0 + timedelta(minutes=self.simulated_minutes)


# -- text --------------------------------------------------------------------------------------
def _short(ts: Any) -> str:
    if ts is None:
        return "-"
    return _ts(ts).tz_convert("UTC").strftime("%H:%M")  # the report's times are all UTC


# an ISO-8601 timestamp inside a finding's text ("... at 2026-12-04T15:41:00+00:00")
_ISO_TS = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")


def display_text(text: str) -> str:
    """``text`` with its timestamps as HH:MM (UTC), the way every other time in the report
    reads."""
    return _ISO_TS.sub(lambda m: _short(m.group(0)), text)


def windows_phrase(n: int) -> str:
    return f"{n} window" if n == 1 else f"{n} windows"


def _how_sure(f: Finding) -> str:
    if f.confidence is not None:
        return f"confidence {f.confidence:.3f}"
    return f"score {f.score:.3g}"


def _where(g: FindingGroup) -> str:
    f = g.first
    parts = [g.service or "?"]
    if f.operation:
        parts.append(f"operation {f.operation!r}")
    elif f.feature:
        parts.append(f"feature {f.feature!r}")
    elif f.model_version:
        parts.append(f"model {f.model or ''} version {f.model_version}")
    return ", ".join(parts)


def evidence_lines(f: Finding, *, limit: int = 3) -> list[str]:
    """A few human lines from a finding's evidence, per kind."""
    ev = f.evidence or {}
    out: list[str] = []
    if f.kind == "log_anomaly":
        for t in (ev.get("new_templates") or [])[:1]:
            out.append(f"never-seen template x{t.get('count')}: {t.get('template')}")
        for d in (ev.get("deviations") or [])[:2]:
            out.append(f"{d.get('label')}: {d.get('observed')} vs baseline {d.get('baseline')} "
                       f"(z={d.get('z')})")
    elif f.kind in ("trace_bottleneck", "trace_regression"):
        keys = ("critical_path_share", "self_time_p95_ms", "latency_p95_ms", "count",
                "baseline_p95_ms", "current_p95_ms", "p95_ratio")
        shown = [f"{k}={_num(ev[k])}" for k in keys if ev.get(k) is not None]
        if shown:
            out.append(", ".join(shown))
    elif f.kind in ("feature_drift", "prediction_drift"):
        d = ev.get("drift") or {}
        shown = [f"{k}={_num(d[k])}" for k in ("test", "statistic", "p_value", "psi",
                                               "wasserstein", "n_reference", "n_current")
                 if d.get(k) is not None]
        if shown:
            out.append(", ".join(shown))
    elif f.kind in ("performance_degradation", "version_regression"):
        c = ev.get("comparison") or {}
        if c:
            out.append(f"accuracy {_num(c.get('candidate_value'))} ({c.get('candidate')}, "
                       f"n={c.get('n_candidate')}) vs {_num(c.get('baseline_value'))} "
                       f"({c.get('baseline')}, n={c.get('n_baseline')}), "
                       f"95% CI of the loss difference [{_num(c.get('ci_low'))}, "
                       f"{_num(c.get('ci_high'))}], p={_num(c.get('p_value'))}")
    if not out:
        out.append(display_text(f.summary))
    if f.sample_ids:
        out.append("sample documents: " + ", ".join(f.sample_ids[:3]))
    return out[:limit]


def _num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def text_report(report: DemoReport) -> list[str]:
    """The findings report as terminal lines."""
    lines = [f"Findings ({sum(len(g.findings) for g in report.groups)} in "
             f"{len(report.groups)} group(s), namespace {report.namespace!r}):"]
    if not report.groups:
        lines.append("  (none)")
    for n, g in enumerate(report.groups, 1):
        f = g.strongest
        tag = f"  [explains: {g.incident}]" if g.incident else "  [not an injected incident]"
        lines.append(f"{n}. [{f.severity.upper()}] {f.kind}: {display_text(f.title)}{tag}")
        lines.append(f"   where: {_where(g)}")
        lines.append(f"   when:  {_short(g.window_start)}-{_short(g.window_end)} UTC "
                     f"(simulated; {windows_phrase(len(g.findings))})")
        lines.append(f"   how sure: {_how_sure(f)}, severity {f.severity}")
        for e in evidence_lines(f):
            lines.append(f"   evidence: {e}")
    lines.append("")
    lines.append("Injected incidents:")
    for inc in report.incidents:
        mark = "FOUND " if inc["found"] else "MISSED"
        lines.append(f"  {mark} {inc['kind']:<18} {inc['where']:<40} "
                     f"{_short(inc['start'])}-{_short(inc['end'])}  {inc['description']}")
    return lines


# -- plots -------------------------------------------------------------------------------------
PLOT_DPI = 100
PLOT_WIDTH_IN = 10.5  # ~1050 px at PLOT_DPI: the page shows each plot at its own size
# (linestyle, marker) pairs: lines that overlap stay tellable apart in colour-blind or print
LINE_STYLES: tuple[tuple[Any, str], ...] = (
    ("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1, 1, 1)), "v"),
    ((0, (1, 1)), "P"), ((0, (8, 2)), "X"),
)
RUN_LABELS = {
    "simulate_and_ship_s": "simulate + ship (wall time)",
    "analyse_s": "analyse (wall time)",
    "report_s": "report (wall time)",
}


def anomaly_rule_caption() -> str:
    """The log-anomaly decision rule in words, with the detector's default thresholds (the
    ones the demo runs with)."""
    from logsight.analysis.logs import LogAnomalyDetector

    p = LogAnomalyDetector().get_params()
    return (
        "One point per service and minute: the isolation forest's score of the window's log "
        "features (lines per level and per template, error ratio, never-seen templates) "
        "against the service's baseline; higher = more unusual, 0 (dashed) = the forest's "
        "outlier cutoff. A score above 0 alone is not a finding: a window is flagged (red) "
        "when the forest calls it an outlier AND some feature deviates meaningfully from the "
        f"service's baseline (|robust z| >= {p['min_z']:g} with a change of at least "
        f"{p['min_change']:g} lines, or >= {p['min_new_error_lines']} error line(s) of a "
        "never-seen template), or when the error evidence is overwhelming on its own "
        f"(>= {p['overwhelming_new_error_lines']} never-seen error lines, or error lines "
        f"rising with z >= {p['overwhelming_z']:g}). So a window can score higher than a "
        "flagged one and not be flagged: its lines are unusual in mix, not in a way that "
        "matters (e.g. a little more ordinary traffic)."
    )


PLOT_CAPTIONS = {
    "critical_path": "Share of each request's critical path (the chain of spans that "
                     "determines its latency) spent in each operation's own time, in the "
                     "baseline and in the last analysed window. A bottleneck finding needs one "
                     "operation at >= 50%.",
    "latency": "95th percentile of each operation's span duration per simulated minute "
               "(log scale).",
    "anomaly": "",  # filled by anomaly_rule_caption() at render time
    "drift": "The drifted feature's values in the reference (baseline) window and over the "
             "whole time range of its drift findings, as the findings table gives it.",
    "accuracy": "Accuracy of each model version over its predictions whose delayed ground "
                "truth arrived.",
}


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PLOT_DPI, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def _time_axis(ax: Any, times: Any) -> None:
    """Ticks as HH:MM, the date once in the axis label (not "26 15:45" on every tick)."""
    import matplotlib.dates as mdates

    ts = pd.DatetimeIndex(pd.to_datetime(pd.Series(list(times)), utc=True))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz="UTC"))
    if len(ts):
        first, last = ts.min().strftime("%Y-%m-%d"), ts.max().strftime("%Y-%m-%d")
        day = first if first == last else f"{first} to {last}"
        ax.set_xlabel(f"simulated time (UTC, {day})")
    else:
        ax.set_xlabel("simulated time (UTC)")


BASELINE_COLOR = "#d9d9d9"


def _time_range(ax: Any, report: DemoReport) -> None:
    """Every time plot spans the whole simulated run, with the baseline shaded: the same
    x range in every panel, so they line up and nothing starts later unexplained."""
    ax.set_xlim(pd.Timestamp(report.t0).to_datetime64(), pd.Timestamp(report.end).to_datetime64())
    if report.baseline is not None:
        b0, b1 = (pd.Timestamp(t).to_datetime64() for t in report.baseline)
        ax.axvspan(b0, b1, color=BASELINE_COLOR, alpha=0.6, zorder=0, linewidth=0)


def _window_label(w: Any) -> str:
    if not w:
        return ""
    return f" {_short(w[0])}-{_short(w[1])}"


def _plot_critical_path(plt: Any, cp: dict[str, dict[str, float]]) -> tuple[str, int]:
    fig, ax = plt.subplots(figsize=(PLOT_WIDTH_IN, 4.2))
    points = sum(1 for shares in cp.values() for v in shares.values() if v > 0)
    if cp:
        ops = sorted({op for shares in cp.values() for op in shares})
        width = 0.8 / max(len(cp), 1)
        y = np.arange(len(ops))
        for k, (label, shares) in enumerate(cp.items()):
            vals = [shares.get(op, 0.0) for op in ops]
            bars = ax.barh(y + k * width, vals, height=width, label=label)
            for b, v in zip(bars, vals, strict=True):
                if v > 0:
                    ax.text(v + 0.01, b.get_y() + b.get_height() / 2, f"{v:.0%}",
                            va="center", fontsize=9)
        ax.set_yticks(y + width * (len(cp) - 1) / 2, ops)
        ax.invert_yaxis()
        ax.set_xlabel("share of critical-path time")
        ax.set_xlim(0, 1.08)
        ax.legend(loc="lower right")
    else:
        _empty(ax, "no spans")
    ax.set_title(PLOT_TITLES["critical_path"])
    return _png(fig), points


def _plot_latency(plt: Any, report: DemoReport) -> tuple[str, int]:
    lat = report.latency
    fig, ax = plt.subplots(figsize=(PLOT_WIDTH_IN, 4.2))
    points = int(lat.notna().to_numpy().sum()) if lat is not None else 0
    if lat is not None and len(lat):
        every = max(1, len(lat) // 12)
        for k, col in enumerate(lat.columns):
            ls, marker = LINE_STYLES[k % len(LINE_STYLES)]
            ax.plot(lat.index, lat[col], label=str(col), linewidth=1.6, linestyle=ls,
                    marker=marker, markevery=(k % every, every), markersize=6)
        ax.set_yscale("log")
        ax.set_ylabel("p95 latency (ms)")
        _time_range(ax, report)
        if report.baseline is not None:
            from matplotlib.patches import Patch

            handles, _labels = ax.get_legend_handles_labels()
            handles.append(Patch(color=BASELINE_COLOR, alpha=0.6, label="baseline"))
        else:
            handles = None
        # outside the axes: inside, it covered the lines it explains
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0)
        _time_axis(ax, lat.index)
    else:
        _empty(ax, "no spans")
    ax.set_title(PLOT_TITLES["latency"])
    return _png(fig), points


def _plot_anomaly(plt: Any, report: DemoReport) -> tuple[str, int]:
    an = report.anomaly
    if an is None or not len(an):
        fig, ax = plt.subplots(figsize=(PLOT_WIDTH_IN, 3.0))
        _empty(ax, "no scored log windows")
        ax.set_title(PLOT_TITLES["anomaly"])
        return _png(fig), 0
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    services = sorted(an["service"].astype(str).unique())
    # small multiples: one panel per service, shared axes, so no line hides another
    fig, axes = plt.subplots(len(services), 1, sharex=True, sharey=True, squeeze=False,
                             figsize=(PLOT_WIDTH_IN, 1.0 + 1.55 * len(services)))
    for ax, svc in zip(axes[:, 0], services, strict=True):
        g = an[an["service"].astype(str) == svc].sort_values("window")
        flagged = g["anomalous"].astype(bool)
        ax.axhline(0.0, color="#888", linestyle="--", linewidth=0.9)
        ax.plot(g["window"], g["score"], color="#4c72b0", linewidth=1.3, marker="o",
                markersize=3)
        bad = g[flagged]
        if len(bad):
            ax.scatter(bad["window"], bad["score"], s=70, color="#c00000", zorder=4)
        ax.set_title(svc, loc="left", fontsize=11, pad=3)
        ax.grid(axis="y", color="#eee")
        _time_range(ax, report)
    if report.baseline is not None:
        # the detector learns each service's normal from the baseline and scores the windows
        # after it: say so where the line is missing
        b0, b1 = (pd.Timestamp(t) for t in report.baseline)
        mid = (b0 + (b1 - b0) / 2).to_datetime64()
        for ax in axes[:, 0]:
            ax.text(mid, 0.72, "baseline\n(learned from, not scored)",
                    transform=ax.get_xaxis_transform(),
                    ha="center", va="center", fontsize=9, color="#555")
    _time_axis(axes[-1, 0], an["window"])
    fig.supylabel("isolation-forest score (higher = more unusual)", fontsize=11)
    handles: list[Any] = [
        Line2D([], [], color="#4c72b0", marker="o", markersize=3, label="window score"),
        Line2D([], [], color="#888", linestyle="--", label="forest outlier cutoff (0)"),
        Line2D([], [], linestyle="none", marker="o", markersize=8, color="#c00000",
               label="flagged: log_anomaly finding"),
    ]
    if report.baseline is not None:
        handles.append(Patch(color=BASELINE_COLOR, alpha=0.6, label="baseline"))
    fig.subplots_adjust(top=0.86, hspace=0.4)
    fig.legend(handles=handles, loc="upper center", ncol=len(handles),
               bbox_to_anchor=(0.5, 0.95), frameon=False)
    fig.suptitle(PLOT_TITLES["anomaly"], y=0.99)
    return _png(fig), int(an["score"].notna().sum())


def drift_title(feature: str) -> str:
    return f"Drifted feature {feature}: reference vs current"


def _plot_drift(plt: Any, dr: dict[str, Any] | None) -> tuple[str, int]:
    fig, ax = plt.subplots(figsize=(PLOT_WIDTH_IN, 4.2))
    points = 0
    if dr and len(dr.get("reference", [])) and len(dr.get("current", [])):
        ref = np.asarray(dr["reference"], dtype=float)
        cur = np.asarray(dr["current"], dtype=float)
        ref_w, cur_w = dr.get("windows") or (None, None)
        bins = np.histogram_bin_edges(np.concatenate([ref, cur]), bins=30)
        ax.hist(ref, bins=bins.tolist(), alpha=0.6, density=True,
                label=f"reference{_window_label(ref_w)} UTC (n={len(ref)})")
        ax.hist(cur, bins=bins.tolist(), alpha=0.6, density=True,
                label=f"current{_window_label(cur_w)} UTC (n={len(cur)})")
        points = len(ref) + len(cur)
        ax.set_xlabel(str(dr.get("feature")))
        ax.set_ylabel("density")
        # outside the axes, as in the latency plot: inside, it covered the tallest bars
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        ax.set_title(drift_title(str(dr.get("feature"))))
    else:
        _empty(ax, "no drifted feature")
        ax.set_title(PLOT_TITLES["drift"])
    return _png(fig), points


def _plot_accuracy(plt: Any, accuracy: list[dict[str, Any]]) -> tuple[str, int]:
    fig, ax = plt.subplots(figsize=(PLOT_WIDTH_IN, 4.2))
    acc = [a for a in accuracy if a.get("accuracy") is not None]
    if acc:
        names = [str(a["version"]) for a in acc]
        vals = [float(a["accuracy"]) for a in acc]
        bars = ax.bar(names, vals, width=0.5,
                      color=["#4c72b0" if v == max(vals) else "#dd8452" for v in vals])
        for b, a in zip(bars, acc, strict=True):
            ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.015,
                    f"{a['accuracy']:.3f}  (n={a['n']})", ha="center", va="bottom",
                    fontsize=12)
        ax.set_ylim(0, 1.12)
        ax.set_ylabel("accuracy (labelled predictions)")
        ax.set_xlabel("model version")
    else:
        _empty(ax, "no labelled predictions")
    ax.set_title(PLOT_TITLES["accuracy"])
    return _png(fig), len(acc)


def render_plots(report: DemoReport) -> dict[str, tuple[str, int]]:
    """(base64 PNG, number of data points drawn) per plot key of :data:`PLOT_TITLES`."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    # matplotlib's defaults (10 pt, legends 8 pt) were unreadable once scaled into the page
    with plt.rc_context({"font.size": 11, "axes.titlesize": 13, "axes.labelsize": 11,
                         "legend.fontsize": 10, "xtick.labelsize": 10, "ytick.labelsize": 10,
                         "figure.titlesize": 13}):
        return {
            "critical_path": _plot_critical_path(plt, report.critical_path),
            "latency": _plot_latency(plt, report),
            "anomaly": _plot_anomaly(plt, report),
            "drift": _plot_drift(plt, report.drift),
            "accuracy": _plot_accuracy(plt, report.accuracy),
        }


# -- HTML --------------------------------------------------------------------------------------
_CHECK_SCRIPT = """
(function () {
  var errors = [];
  function record(msg) { errors.push(String(msg)); }
  window.addEventListener('error', function (e) {
    var t = e && e.target;
    if (t && t !== window && (t.src || t.href)) { record('failed to load ' + (t.src || t.href)); }
    else { record((e && e.message) || 'script error'); }
  }, true);
  window.addEventListener('unhandledrejection', function (e) { record('rejection: ' + e.reason); });
  var origError = console.error;
  console.error = function () {
    record(Array.prototype.join.call(arguments, ' '));
    return origError.apply(console, arguments);
  };
  // share of coloured (saturated) pixels of a decoded plot: axes, text and gridlines are grey,
  // data (lines, bars, markers) is coloured, so an empty plot scores 0
  function ink(img) {
    try {
      var c = document.createElement('canvas');
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      var ctx = c.getContext('2d');
      ctx.drawImage(img, 0, 0);
      var d = ctx.getImageData(0, 0, c.width, c.height).data;
      var coloured = 0;
      for (var k = 0; k < d.length; k += 4) {
        var mx = Math.max(d[k], d[k + 1], d[k + 2]), mn = Math.min(d[k], d[k + 1], d[k + 2]);
        if (d[k + 3] > 0 && mx - mn > 60) { coloured++; }
      }
      return (coloured / (d.length / 4)).toFixed(5);
    } catch (err) { record('ink: ' + err); return '-1'; }
  }
  window.addEventListener('load', function () {
    var imgs = document.querySelectorAll('img.plot');
    var loaded = 0;
    for (var i = 0; i < imgs.length; i++) {
      var ok = imgs[i].complete && imgs[i].naturalWidth > 0;
      imgs[i].setAttribute('data-loaded', ok ? '1' : '0');
      imgs[i].setAttribute('data-width', String(imgs[i].naturalWidth));
      if (ok) { loaded++; imgs[i].setAttribute('data-ink', String(ink(imgs[i]))); }
    }
    document.getElementById('render-check').setAttribute(
      'data-height', String(document.documentElement.scrollHeight));
    var el = document.getElementById('render-check');
    el.setAttribute('data-images', String(imgs.length));
    el.setAttribute('data-loaded', String(loaded));
    el.setAttribute('data-errors', String(errors.length));
    el.textContent = errors.join('\\n');
    el.setAttribute('data-done', '1');
  });
})();
"""

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;
max-width:1100px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:4px 8px;
vertical-align:top;text-align:left}th{background:#f4f4f4}
.sev-high,.sev-critical{color:#b00020;font-weight:600}.sev-medium{color:#b36b00}
.found{color:#0a7d2c;font-weight:600}.missed{color:#b00020;font-weight:600}
.plots{display:grid;grid-template-columns:1fr;gap:20px}
figure{margin:0;border:1px solid #eee;padding:8px}figure img{max-width:100%;height:auto}
figcaption{font-size:13px;color:#444;margin-top:4px;line-height:1.4}
#render-check{display:none}
.muted{color:#666;font-size:12px}
"""


def baseline_caption(report: DemoReport, *, scored: bool = True) -> str:
    """The shaded baseline in words."""
    if report.baseline is None:
        return ""
    b0, b1 = report.baseline
    span = f"{_short(b0)}-{_short(b1)} UTC"
    if scored:
        return (f" Shaded: the baseline {span}, which each service's normal is learned from; "
                "its windows are not scored, so the lines start where it ends.")
    return f" Shaded: the baseline {span} the analyses compare against."


def drift_counts_caption(drift: Mapping[str, Any] | None) -> str:
    """The drift plot's windows and counts in words ("Reference 10:00-10:20 UTC: n=270;
    current ..."): the same windows and counts as the finding's n_reference / n_current."""
    if not drift or not drift.get("windows"):
        return ""
    (rs, re_), (cs, ce) = drift["windows"]
    n_windows = drift.get("n_windows")
    over = f" ({windows_phrase(int(n_windows))} with a drift finding)" if n_windows else ""
    return (f" Reference {_short(rs)}-{_short(re_)} UTC: n={len(drift['reference'])}; "
            f"current {_short(cs)}-{_short(ce)} UTC{over}: n={len(drift['current'])}.")


def render_html(report: DemoReport, path: str | Path) -> Path:
    """Write the report page (self-contained: inline CSS, script and images)."""
    plots = render_plots(report)
    e = html.escape
    rows = []
    for n, g in enumerate(report.groups, 1):
        f = g.strongest
        ev = "<br>".join(e(x) for x in evidence_lines(f, limit=4))
        explains = e(g.incident) if g.incident else "<span class='muted'>none</span>"
        rows.append(
            f"<tr><td>{n}</td><td class='sev-{e(f.severity)}'>{e(f.severity)}</td>"
            f"<td>{e(f.kind)}</td><td>{e(display_text(f.title))}</td><td>{e(_where(g))}</td>"
            f"<td>{e(_short(g.window_start))}-{e(_short(g.window_end))} "
            f"({windows_phrase(len(g.findings))})</td><td>{e(_how_sure(f))}</td>"
            f"<td>{ev}</td><td>{explains}</td></tr>"
        )
    inc_rows = []
    for inc in report.incidents:
        cls, word = ("found", "found") if inc["found"] else ("missed", "missed")
        inc_rows.append(
            f"<tr><td class='{cls}'>{word}</td><td>{e(inc['kind'])}</td><td>{e(inc['where'])}"
            f"</td><td>{e(_short(inc['start']))}-{e(_short(inc['end']))}</td>"
            f"<td>{e(inc['description'])}</td><td>{e(', '.join(inc.get('by', [])))}</td></tr>"
        )
    figures = []
    captions = {**PLOT_CAPTIONS, "anomaly": anomaly_rule_caption() + baseline_caption(report),
                "latency": PLOT_CAPTIONS["latency"] + baseline_caption(report, scored=False),
                "drift": PLOT_CAPTIONS["drift"] + drift_counts_caption(report.drift)}
    for key, title in PLOT_TITLES.items():
        png, points = plots[key]
        figures.append(
            f"<figure><img class='plot' id='plot-{key}' alt='{e(title)}' "
            f"data-points='{points}' src='data:image/png;base64,{png}'>"
            f"<figcaption><b>{e(title)}.</b> {e(captions[key])}</figcaption></figure>"
        )
    stats = "".join(f"<tr><th>{e(RUN_LABELS.get(str(k), str(k)))}</th><td>{e(str(v))}</td>"
                    "</tr>" for k, v in report.stats.items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(report.title)}</title><style>{_CSS}</style>
<script>{_CHECK_SCRIPT}</script></head>
<body>
<h1>{e(report.title)}</h1>
<p class="muted">namespace <b>{e(report.namespace)}</b> on {e(report.engine)}; simulated
{report.simulated_minutes} minutes from {e(_ts(report.t0).strftime('%Y-%m-%d %H:%M'))} UTC.</p>
<h2>Findings</h2>
<table><tr><th>#</th><th>severity</th><th>kind</th><th>what</th><th>where</th><th>when (UTC)</th>
<th>how sure</th><th>evidence</th><th>injected incident</th></tr>
{''.join(rows) or '<tr><td colspan=9>no findings</td></tr>'}</table>
<h2>Injected incidents</h2>
<table><tr><th></th><th>incident</th><th>where</th><th>when (UTC)</th><th>what</th>
<th>found by</th></tr>{''.join(inc_rows)}</table>
<h2>Plots</h2>
<div class="plots">{''.join(figures)}</div>
<h2>Run</h2><table>{stats}</table>
<div id="render-check" data-done="0"></div>
</body></html>
"""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


# -- browser check ------------------------------------------------------------------------------
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)


def find_chromium() -> str | None:
    """Path of a Chromium binary (env ``LOGSIGHT_CHROMIUM`` wins), or None."""
    env = os.environ.get("LOGSIGHT_CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class BrowserCheck:
    """What headless Chromium saw when it loaded the report."""

    images: int
    loaded: int
    errors: list[str]
    done: bool
    plot_ids: list[str]
    screenshot: Path | None
    # per plot id: share of coloured pixels the browser decoded (data ink) and the number of
    # data points the page says it drew
    ink: dict[str, float] = field(default_factory=dict)
    points: dict[str, int] = field(default_factory=dict)
    page_height: int = 0

    @property
    def empty(self) -> list[str]:
        """Plots that rendered without data (no points, or no coloured pixel)."""
        return [i for i in self.plot_ids
                if self.points.get(i, 0) <= 0 or self.ink.get(i, 0.0) <= 0.0]

    @property
    def ok(self) -> bool:
        return (self.done and self.images > 0 and self.loaded == self.images
                and not self.errors and not self.empty)


_ATTR_RE = re.compile(r'([\w-]+)="([^"]*)"')


def parse_dump(dom: str) -> tuple[dict[str, str], str, list[dict[str, str]]]:
    """(attributes of #render-check, its text, the attributes of every plot image) from a DOM
    dump (the image data itself left out)."""
    m = re.search(r'<div id="render-check"([^>]*)>(.*?)</div>', dom, re.S)
    attrs: dict[str, str] = dict(_ATTR_RE.findall(m.group(1))) if m else {}
    text = html.unescape(m.group(2)) if m else ""
    imgs = []
    for tag in re.findall(r"<img\b[^>]*>", dom):
        a = dict(_ATTR_RE.findall(tag))
        if "plot" in a.get("class", "").split():
            a.pop("src", None)
            imgs.append(a)
    return attrs, text, imgs


def _run_chromium(binary: str, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="logsight-chromium-") as profile:
        cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def check_in_browser(
    page: str | Path,
    *,
    screenshot: str | Path | None = None,
    chromium: str | None = None,
    timeout: float = 90.0,
    width: int = 1280,
) -> BrowserCheck:
    """Load ``page`` in headless Chromium: dump the DOM after load (every plot image marked
    loaded and measured for data ink, errors recorded by the page's check script) and, with
    ``screenshot``, save a PNG of the whole page (``width`` wide, as tall as the page)."""
    binary = chromium or find_chromium()
    if binary is None:
        raise FileNotFoundError(
            "no Chromium found: install it (apt-get install -y chromium) or set LOGSIGHT_CHROMIUM"
        )
    url = Path(page).resolve().as_uri()
    # virtual time lets the load event and the check script run before the DOM is dumped
    # the same width as the screenshot: the page's height (which the screenshot needs) depends
    # on it, as the plots scale to the page's width
    dump = _run_chromium(binary, ["--virtual-time-budget=5000", f"--window-size={width},1000",
                                  "--dump-dom", url], timeout)
    if dump.returncode != 0 and not dump.stdout:
        raise RuntimeError(f"chromium failed ({dump.returncode}): {dump.stderr[-2000:]}")
    attrs, text, imgs = parse_dump(dump.stdout)
    errors = [line for line in text.splitlines() if line.strip()]
    if attrs.get("data-errors", "0") not in ("0", "") and not errors:
        errors = [f"{attrs['data-errors']} error(s) recorded"]
    height = int(attrs.get("data-height", "0") or 0)
    shot: Path | None = None
    if screenshot is not None:
        shot = Path(screenshot).resolve()
        shot.parent.mkdir(parents=True, exist_ok=True)
        # headless screenshots are of the window: make it as tall as the page
        h = max(height, 600)
        _run_chromium(binary, ["--virtual-time-budget=5000", f"--window-size={width},{h}",
                               f"--screenshot={shot}", url], timeout)
        if not shot.exists():
            shot = None

    def num(v: str | None) -> float:
        try:
            return float(v or 0)
        except ValueError:
            return 0.0

    return BrowserCheck(
        images=int(attrs.get("data-images", "0") or 0),
        loaded=int(attrs.get("data-loaded", "0") or 0),
        errors=errors,
        done=attrs.get("data-done") == "1",
        plot_ids=[a.get("id", "") for a in imgs],
        screenshot=shot,
        ink={a.get("id", ""): num(a.get("data-ink")) for a in imgs},
        points={a.get("id", ""): int(num(a.get("data-points"))) for a in imgs},
        page_height=height,
    )


def incident_rows(
    incidents: Sequence[Any], t0: datetime, found: Mapping[str, Sequence[Finding]]
) -> list[dict[str, Any]]:
    """Rows of the "injected incidents" table."""
    out = []
    for inc in incidents:
        start, end = inc.window(t0)
        by = found.get(inc.kind, [])
        where = inc.service if inc.target == inc.service else f"{inc.service} / {inc.target}"
        out.append({"kind": inc.kind, "description": inc.description, "where": where,
                    "start": start, "end": end, "found": bool(by),
                    "by": sorted({f.kind for f in by})})
    return out
