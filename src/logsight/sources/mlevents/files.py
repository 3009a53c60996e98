"""ML events from a file: the NDJSON documents the ML adapter ships (or an export of the
mlevents stream), read into the same frames the cluster readers give, so the performance job
runs on a file exactly as on a cluster (predictions joined with their feedback, KPIs)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from logsight.analysis import performance as P
from logsight.errors import BadRequest, NoData
from logsight.names import F
from logsight.sources.mlevents.events import NoPredictions, _rename, flatten
from logsight.sources.textfile import DecodeReport, iter_lines
from logsight.timeutil import as_utc, iso


class EventFile:
    """An NDJSON file of ML event documents (``ml.type`` prediction / feedback / kpi, with
    ``@timestamp``, ``ml.model.name``, ``ml.request_id`` ... flat or nested). Read once;
    lines that are not valid UTF-8 are read with U+FFFD and said (:attr:`notes`)."""

    namespace: str | None = None

    def __init__(self, path: str | Path, *, parameter: str = "input") -> None:
        self.path = Path(path)
        self.parameter = parameter
        self.decode = DecodeReport(self.path)
        self._docs: pd.DataFrame | None = None

    @property
    def notes(self) -> list[str]:
        return [self.decode.message] if self.decode.message else []

    def _frame(self) -> pd.DataFrame:
        if self._docs is None:
            if not self.path.is_file():
                raise BadRequest(self.parameter, f"event file not found: {self.path}")
            rows = []
            for n, line in iter_lines(self.path, self.decode):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError as e:
                    raise BadRequest(self.parameter,
                                     f"{self.path}: line {n} is not JSON ({e.msg})") from None
                if not isinstance(doc, dict):
                    raise BadRequest(self.parameter,
                                     f"{self.path}: line {n} is not a JSON object")
                rows.append(flatten(doc))
            frame = pd.DataFrame(rows)
            for col in (F.ML_TYPE, F.TIMESTAMP):
                if col not in frame:
                    raise BadRequest(self.parameter,
                                     f"{self.path}: no {col} in its documents; expected ML "
                                     "event documents (as logsight's ML adapter writes them)")
            frame["_ts"] = pd.to_datetime(frame[F.TIMESTAMP], utc=True, format="ISO8601",
                                          errors="coerce")
            self._docs = frame
        return self._docs

    def span(self, model: str | None = None) -> tuple[datetime, datetime]:
        """[first, last] prediction time of ``model`` (all models when None), end exclusive."""
        f = self._frame()
        sel = f[F.ML_TYPE] == "prediction"
        if model is not None and F.ML_MODEL in f:
            sel &= f[F.ML_MODEL] == model
        ts = f.loc[sel, "_ts"].dropna()
        if ts.empty:
            raise NoData(f"no predictions{f' of model {model!r}' if model else ''} in "
                         f"{self.path}", parameters=("model",))
        return (ts.min().to_pydatetime(),
                (ts.max() + pd.Timedelta(microseconds=1)).to_pydatetime())

    def events(self, event_type: str, *, model: str | None = None,
               start: datetime | str | None = None, end: datetime | str | None = None,
               version: str | None = None) -> pd.DataFrame:
        """Events of one type, as :func:`logsight.sources.mlevents.read_events` gives them."""
        f = self._frame()
        keep = np.array(f[F.ML_TYPE] == event_type, dtype=bool)  # a writable copy
        if model is not None:
            keep &= np.asarray(f.get(F.ML_MODEL, pd.Series(None, index=f.index)) == model)
        if version is not None:
            keep &= np.asarray(f.get(F.ML_VERSION, pd.Series(None, index=f.index)) == version)
        if start is not None:
            keep &= np.asarray((f["_ts"] >= pd.Timestamp(as_utc(_t(start)))).fillna(False))
        if end is not None:
            keep &= np.asarray((f["_ts"] < pd.Timestamp(as_utc(_t(end)))).fillna(False))
        part = f[keep].drop(columns=["_ts"]).dropna(axis=1, how="all")
        return _rename(part.reset_index(drop=True))

    def joined(self, *, model: str, start: datetime, end: datetime,
               version: str | None = None) -> pd.DataFrame:
        """Predictions of [start, end) joined with their feedback (however late)."""
        preds = self.events("prediction", model=model, start=start, end=end, version=version)
        if preds.empty or "request_id" not in preds:
            return pd.DataFrame(columns=["request_id", "timestamp", "model_version",
                                         "labelled"])
        fb = self.events("feedback", start=start)
        if fb.empty or "request_id" not in fb:
            fb = pd.DataFrame(columns=["request_id", "timestamp", "label", "label_value"])
        fb = fb[fb["request_id"].isin(set(preds["request_id"].dropna()))]
        return P.join_feedback(preds, fb)

    def require_predictions(self, *, model: str, start: datetime, end: datetime,
                            version: str | None = None) -> None:
        """:class:`~logsight.sources.mlevents.NoPredictions` when the window holds none."""
        if self.events("prediction", model=model, start=start, end=end,
                       version=version).empty:
            what = f"model {model!r}" + (f" version {version!r}" if version else "")
            raise NoPredictions(
                f"no predictions of {what} in {self.path} between "
                f"{iso(start, timespec='seconds')} ({{window.start}}) and "
                f"{iso(end, timespec='seconds')} ({{window.end}})", parameters=("window",))

    def service_of(self, model: str) -> str | None:
        f = self._frame()
        if F.SERVICE not in f or F.ML_MODEL not in f:
            return None
        s = f.loc[f[F.ML_MODEL] == model, F.SERVICE].dropna()
        return str(s.iloc[0]) if len(s) else None


def _t(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else pd.Timestamp(value).to_pydatetime()


__all__ = ["EventFile"]
