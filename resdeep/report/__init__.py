"""`resdeep report`: figures, tables and findings from a sweep of plain and residual runs.

reading (files -> numbers) -> analysis (numbers -> summaries and seed groups) -> findings
(sentences) -> figures and document (-> PNG, Markdown, HTML, JSON); `build` runs the chain.
"""

from resdeep.report.analysis import RunGroup, RunSummary, group_runs, summarize_runs
from resdeep.report.build import Report, build_report, default_out_dir
from resdeep.report.findings import findings
from resdeep.report.reading import RunData, read_runs

__all__ = [
    "Report",
    "RunData",
    "RunGroup",
    "RunSummary",
    "build_report",
    "default_out_dir",
    "findings",
    "group_runs",
    "read_runs",
    "summarize_runs",
]
