"""The documents of our own making now live in kroniker.conformance.documents (the conformance suite builds them
too); this name stays for the tests. `python tests/builders.py [DIR]` rewrites examples/ from the builders."""

from __future__ import annotations

import sys
from pathlib import Path

from kroniker.conformance.documents import (  # noqa: F401  (re-exported for the tests)
    BASE,
    CL,
    CLINIC,
    CPR,
    DOCUMENT,
    EXAMPLES,
    GP,
    NOTE_HTML,
    NOTES,
    PATIENT,
    SOR,
    VALUE_ATTACHMENT,
    YDER,
    clone,
    diagnosis_card,
    organization,
    patient,
    practitioner,
    practitioner_role,
    shared_note,
    write_examples,
)

if __name__ == "__main__":
    write_examples(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1] / "examples"))
