"""Sensitive-data detection: which entities a prompt holds, where, and which topics it touches.

>>> from airlock.privacy.detector import Detector
>>> verdict = Detector().detect("SSN 536-22-1234")
>>> verdict.sensitive, [(e.type, e.start, e.end) for e in verdict.entities]
(True, [('US_SSN', 4, 15)])
"""

from ._detector import Detector
from ._types import ENTITY_TYPES, TOPICS, Entity, Verdict

__all__ = ["ENTITY_TYPES", "TOPICS", "Detector", "Entity", "Verdict"]
