"""Readers that bring one stream from the cluster (PIT + search_after) or from files
into pandas frames."""
