"""How the count path's template keys group lines, against the Python miner and Loghub's
ground truth, on the shared Loghub 2k sets.

Usage::

    python benchmarks/template_key_agreement.py [--datasets ../shared/datasets/loghub-2k]

Per set: distinct keys (the ingest-time fingerprint, :func:`logsight.sources.logfilecounts.
fingerprint`, the rule of ``logs_template.painless``), miner templates and true events; then
purities (the share of lines whose group's majority label is their own label):

* key -> miner: does a key ever span two miner templates? (1.0: never; the count path merges
  keys into templates and cannot split one);
* rep-miner -> truth vs miner -> truth: the miner run on one representative line per key (what
  the count path does) against the miner run on every line (what the line path does).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from logsight.analysis.templates import TemplateMiner
from logsight.sources.logfilecounts import fingerprint


def purity(groups: list[object], labels: list[object]) -> float:
    df = pd.DataFrame({"g": groups, "l": labels})
    return float(df.groupby("g")["l"].agg(lambda s: s.value_counts().iloc[0]).sum() / len(df))


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", type=Path, default=here.parent / "shared/datasets/loghub-2k")
    args = p.parse_args()
    for d in sorted(x for x in args.datasets.iterdir() if x.is_dir()):
        files = sorted(d.glob("*_structured_corrected.csv")) or sorted(d.glob("*_structured.csv"))
        if not files:
            continue
        df = pd.read_csv(files[0])
        msgs = df["Content"].astype(str).tolist()
        keys = [fingerprint(m) for m in msgs]
        templates = TemplateMiner().add_many(msgs)
        first: dict[str, str] = {}
        for k, m in zip(keys, msgs, strict=True):
            first.setdefault(k, m)
        per_key = dict(zip(first, TemplateMiner().add_many(list(first.values())), strict=True))
        rep = [per_key[k] for k in keys]
        truth = df["EventId"].tolist()
        print(f"{d.name:10s} keys {len(first):4d} miner {len(set(templates)):4d} truth "
              f"{len(set(truth)):4d} | key->miner {purity(keys, templates):.3f} "
              f"key->truth {purity(keys, truth):.3f} | rep-miner->truth "
              f"{purity(rep, truth):.3f} vs miner->truth {purity(templates, truth):.3f}")


if __name__ == "__main__":
    main()
