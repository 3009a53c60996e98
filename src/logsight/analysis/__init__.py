"""The analyses, pure: arrays and frames in, dataclasses and findings out.

templates    online log template miner (Drain-style tree + variable masking), persistable
logs         window features -> IsolationForest -> explained anomalous windows, template drift
traces       span table -> trees -> self time -> critical path -> per-operation aggregates
drift        registered drift tests (KS, PSI, Jensen-Shannon, Wasserstein, chi-square)
performance  predictions x delayed labels -> metrics, calibration, version comparison, KPIs

Nothing here imports the engine or the service: ``logsight.sources`` reads the cluster (or
files) into frames and hands them over; that is what lets every analysis run without a cluster.
"""
