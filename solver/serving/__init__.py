"""Serving cases: deployments evaluated, and searched under latency SLOs."""
