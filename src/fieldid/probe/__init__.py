"""Probe intake: decode a submitted photo to an upright RGB image or refuse with a code."""

from fieldid.probe.intake import IntakeLimits, ProbeFormat, ProbeImage, decode_probe

__all__ = ["IntakeLimits", "ProbeFormat", "ProbeImage", "decode_probe"]
