"""How good are mined templates? The Loghub-2.0 measures (Jiang et al., ISSTA 2024).

* **GA** (grouping accuracy): the share of lines whose predicted group is exactly the set of
  lines sharing their true template.
* **PA** (parsing accuracy): the share of lines whose predicted template text equals the true one.
* **FGA**: F1 over templates of "this predicted group is exactly one true group" (precision over
  the predicted groups, recall over the true ones), so a miner that gets the big groups right
  but shreds the rare ones is not flattered by line counts.
* **FTA**: the same F1 where the group must also carry the exact template text.

Templates are compared after collapsing runs of ``<*>`` (with the spaces between them) and
squeezing whitespace, as the Loghub-2.0 evaluation does.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

_RUN = re.compile(r"<\*>(?:\s*<\*>)+")


def normalize_template(template: str) -> str:
    """Whitespace squeezed, runs of ``<*>`` collapsed (the form templates are compared in)."""
    return _RUN.sub("<*>", " ".join(str(template).split()))


@dataclass(frozen=True)
class Accuracy:
    ga: float
    pa: float
    fga: float
    fta: float
    lines: int
    true_templates: int
    predicted_templates: int


def _f1(correct: int, predicted: int, truth: int) -> float:
    if correct == 0:
        return 0.0
    precision, recall = correct / predicted, correct / truth
    return 2 * precision * recall / (precision + recall)


def accuracy(
    true_ids: Sequence[Hashable],
    true_templates: Sequence[str],
    predicted_ids: Sequence[Hashable],
    predicted_templates: Sequence[str],
) -> Accuracy:
    """GA, PA, FGA and FTA of one parse (one entry per line in every sequence)."""
    n = len(true_ids)
    if not n == len(true_templates) == len(predicted_ids) == len(predicted_templates):
        raise ValueError("every sequence needs one entry per line")
    if n == 0:
        raise ValueError("no lines to score")
    frame = pd.DataFrame({
        "t": list(true_ids),
        "p": list(predicted_ids),
        "tt": [normalize_template(t) for t in true_templates],
        "pt": [normalize_template(t) for t in predicted_templates],
    })
    true_size = frame.groupby("t").size()
    pred_size = frame.groupby("p").size()
    pairs = frame.groupby(["p", "t"]).size().rename("n").reset_index()
    exact = pairs[
        (pairs["n"].to_numpy() == pred_size.loc[pairs["p"]].to_numpy())
        & (pairs["n"].to_numpy() == true_size.loc[pairs["t"]].to_numpy())
    ]
    ga = float(exact["n"].sum()) / n
    pa = float((frame["tt"] == frame["pt"]).mean())
    # a predicted group's template: its lines' (they share one per group in a miner's output;
    # the most common one otherwise)
    pred_tpl = frame.groupby("p")["pt"].agg(lambda s: s.mode().iloc[0])
    true_tpl = frame.groupby("t")["tt"].first()
    fta_ok = int(
        (pred_tpl.loc[exact["p"]].to_numpy() == true_tpl.loc[exact["t"]].to_numpy()).sum()
    )
    return Accuracy(
        ga=ga,
        pa=pa,
        fga=_f1(len(exact), len(pred_size), len(true_size)),
        fta=_f1(fta_ok, len(pred_size), len(true_size)),
        lines=n,
        true_templates=len(true_size),
        predicted_templates=len(pred_size),
    )


@dataclass(frozen=True)
class LabelledLog:
    """One Loghub-style labelled sample: the message text, true template id and text."""

    system: str
    messages: list[str]
    true_ids: list[str]
    true_templates: list[str]
    corrected: bool  # the Loghub-2.0 corrected labels were used


def load_loghub(directory: str | Path) -> list[LabelledLog]:
    """Every ``SYSTEM/SYSTEM_2k.log_structured[_corrected].csv`` under ``directory``, the
    corrected labels when present, in system order."""
    out: list[LabelledLog] = []
    for path in sorted(Path(directory).glob("*/*_2k.log_structured.csv")):
        system = path.name.removesuffix("_2k.log_structured.csv")
        corrected = path.with_name(f"{system}_2k.log_structured_corrected.csv")
        use = corrected if corrected.exists() else path
        frame = pd.read_csv(use, dtype=str, keep_default_na=False)
        out.append(LabelledLog(
            system=system,
            messages=frame["Content"].tolist(),
            true_ids=frame["EventId"].tolist(),
            true_templates=frame["EventTemplate"].tolist(),
            corrected=use is corrected,
        ))
    return out
