"""The oversight report: searches, outcomes, quality, measured accuracy, retention, audit state."""

from fieldid.report.data import build_report, parse_day, record_report
from fieldid.report.html import render_html

__all__ = ["build_report", "parse_day", "record_report", "render_html"]
