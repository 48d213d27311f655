"""Probe quality: measures, the unified score, and the gate that refuses poor probes."""

from fieldid.quality.gate import Guidance, QualityGate
from fieldid.quality.measures import Measure, QualityReport, assess, band_of, head_pose

__all__ = ["Guidance", "Measure", "QualityGate", "QualityReport", "assess", "band_of", "head_pose"]
