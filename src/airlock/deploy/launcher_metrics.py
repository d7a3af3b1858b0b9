"""Read how many requests a vLLM server is working on from its Prometheus ``/metrics``.

Used to drain a server before stopping it: vLLM exports ``vllm:num_requests_running``
and ``vllm:num_requests_waiting`` gauges (one series per model/engine label set).
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["IN_FLIGHT_GAUGES", "in_flight_from_metrics"]

IN_FLIGHT_GAUGES = frozenset({"vllm:num_requests_running", "vllm:num_requests_waiting"})


def in_flight_from_metrics(text: str) -> int:
    """Sum of running and waiting requests over every series of the two gauges.

    Raises ``ValueError`` when the text is not Prometheus exposition format.
    """
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in IN_FLIGHT_GAUGES:
                total += sample.value
    return round(total)
