"""kroniker.clinical: a care package's logic, generic over packages.

Questionnaire responses are validated against their Questionnaire and scored by the Questionnaire's own
calculatedExpressions; triage follows the package's rule set (a Library); the GP's decision points back to the
suggestion. Nothing here names a particular package: the content comes from kroniker's FHIR packages in the
package cache (built from profiles/packages/ by `kroniker package build`).

    >>> from kroniker.clinical import Content, score, triage, decide
    >>> content = Content(PackageCache(root))
    >>> result = score(response, content)            # a Scored: findings, scores, Observations
    >>> suggestion = triage(patient_response, assessment, content)
    >>> decision = decide(suggestion.resource, "green", reason="...", content=content)
"""

from __future__ import annotations

from kroniker.clinical.content import Content, ContentError
from kroniker.clinical.scoring import Scored, score
from kroniker.clinical.triage import Decision, Suggestion, decide, triage

__all__ = ["Content", "ContentError", "Decision", "Scored", "Suggestion", "decide", "score", "triage"]
