"""Observation: Prometheus metrics, execution records, percentiles over them."""
