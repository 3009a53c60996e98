"""Pure analyses: arrays and frames in, dataclasses out (no engine, no service)."""
