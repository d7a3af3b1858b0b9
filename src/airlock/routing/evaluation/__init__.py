"""Offline evaluation of the complexity router on RouteLLM-format data (CPT, APGR)."""

from ._data import (
    SPLIT_SALT,
    SPLIT_TRAIN_FRACTION,
    DataFileError,
    RoutingRow,
    SplitName,
    file_sha256,
    load_routing_csv,
    prompt_hash,
    split_rows,
)
from ._labelled import LabelledPrompt, LabelledReport, evaluate_labelled, load_labelled_csv
from ._metrics import RouterCurve, apgr, cpt, expected_random_curve, router_curve
from ._plot import PlotUnavailableError, plot_reports
from ._report import (
    LENGTH_ROUTER,
    ORACLE_ROUTER,
    PUBLISHED_ROUTELLM,
    RANDOM_ROUTER,
    RouterMetrics,
    SubsetReport,
    evaluate_routers,
    render_text,
    reports_to_dict,
)

__all__ = [
    "LENGTH_ROUTER",
    "ORACLE_ROUTER",
    "PUBLISHED_ROUTELLM",
    "RANDOM_ROUTER",
    "SPLIT_SALT",
    "SPLIT_TRAIN_FRACTION",
    "DataFileError",
    "LabelledPrompt",
    "LabelledReport",
    "PlotUnavailableError",
    "RouterCurve",
    "RouterMetrics",
    "RoutingRow",
    "SplitName",
    "SubsetReport",
    "apgr",
    "cpt",
    "evaluate_labelled",
    "evaluate_routers",
    "expected_random_curve",
    "file_sha256",
    "load_labelled_csv",
    "load_routing_csv",
    "plot_reports",
    "prompt_hash",
    "render_text",
    "reports_to_dict",
    "router_curve",
    "split_rows",
]
