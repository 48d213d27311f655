"""The oversight report: searches, outcomes, quality, measured accuracy, retention, audit state."""

from fieldid.report.data import build_report, parse_day
from fieldid.report.html import render_html

__all__ = ["build_report", "parse_day", "render_html"]
