"""Verifiers for free-text answers: `verify(name, completion, reference, pattern) -> bool`.

Each verifier reads the answer out of a completion and compares it with the row's reference:

    math    \\boxed{}/LaTeX/fraction-aware equivalence (the math-verify package, extra [math])
    number  the last number in the completion equals the reference's last number
    gsm8k   the number after the last `####` (the reference: after its `####`, else its last number)
    choice  a multiple-choice letter (A-J): `answer is (B)`, `\\boxed{B}`, or a lone letter
    exact   the whole completion equals the reference after normalisation
    regex   group 1 (or the whole match) of the last `task.answer_pattern` match, normalised

`reference_ok` says whether a reference can be compared at all (a bad row when not).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Callable, Optional

from entropyctl.errors import BadInput

# A number as written in answers: -1,234.5 | 1234 | .5 | 3/4 ; thousands groups only in threes.
_NUM = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|-?\.\d+"
NUMBER_RE = re.compile(rf"(?<![\w.])(?:{_NUM})")
HASH_RE = re.compile(rf"####\s*\$?\s*({_NUM})")
_CHOICE_RES = [
    # Capital letters only after "answer", so "the answer is a dog" names no choice.
    re.compile(r"(?i:answer)\s*(?:(?i:is)|:)?\s*:?\s*\(?\s*([A-J])\b\)?"),
    re.compile(r"\\boxed\{\s*\(?([A-J])\)?\s*\}"),
    re.compile(r"^\s*\(?([A-Ja-j])[).:]?\s*$"),  # the whole text is one letter
    re.compile(r"\(([A-J])\)"),
]


def to_number(text: str) -> Optional[Fraction]:
    """The exact value of one number token (`1,000`, `-2.50`, `3/4`), or None."""
    try:
        return Fraction(text.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def last_number(text: str) -> Optional[Fraction]:
    found = NUMBER_RE.findall(text)
    return to_number(found[-1]) if found else None


def hash_number(text: str) -> Optional[Fraction]:
    """The number after the last `####` (GSM8K's answer line), or None."""
    found = HASH_RE.findall(text)
    return to_number(found[-1]) if found else None


def choice_letter(text: str) -> Optional[str]:
    for rx in _CHOICE_RES:
        found = rx.findall(text)
        if found:
            return found[-1].upper()
    return None


def normalise(text: str) -> str:
    """Lower case, single spaces, no surrounding quotes, `$` or final full stop."""
    t = " ".join(text.strip().lower().split())
    t = t.strip("\"'`$ ")
    return t[:-1].rstrip() if t.endswith(".") else t


def regex_answer(text: str, pattern: str) -> Optional[str]:
    found = list(re.finditer(pattern, text))
    if not found:
        return None
    m = found[-1]
    return m.group(1) if m.re.groups else m.group(0)


# ----------------------------------------------------------------------------- math-verify

_MATH_INSTALL = "pip install 'entropyctl[math]'"


def require_math_verify():
    """The math_verify module; a one-line BadInput naming the extra when it is missing."""
    try:
        import math_verify
    except ImportError:
        raise BadInput(f"task.verifier=math needs the math-verify package; install it with "
                       f"{_MATH_INSTALL} (or pick task.verifier=number)") from None
    return math_verify


def _math_parse(text: str):
    mv = require_math_verify()
    # Thousands separators (`1,000`) would read as a tuple; remove them inside numbers first.
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    configs = [mv.LatexExtractionConfig(), mv.ExprExtractionConfig()]
    return mv.parse(text, extraction_config=configs, parsing_timeout=None)


def math_equal(completion: str, reference: str) -> bool:
    mv = require_math_verify()
    gold, pred = _math_parse(reference), _math_parse(completion)
    if not gold or not pred:
        return False
    return bool(mv.verify(gold, pred, timeout_seconds=None))


# ----------------------------------------------------------------------------- dispatch


def _gsm8k_reference(reference: str) -> Optional[Fraction]:
    value = hash_number(reference)
    return value if value is not None else last_number(reference)


def _numbers_equal(a: Optional[Fraction], b: Optional[Fraction]) -> bool:
    return a is not None and b is not None and a == b


VERIFIERS: dict[str, Callable[[str, str, Optional[str]], bool]] = {
    "math": lambda c, r, p: math_equal(c, r),
    "number": lambda c, r, p: _numbers_equal(last_number(c), last_number(r)),
    "gsm8k": lambda c, r, p: _numbers_equal(hash_number(c), _gsm8k_reference(r)),
    "choice": lambda c, r, p: choice_letter(c) is not None and choice_letter(c) == choice_letter(r),
    "exact": lambda c, r, p: normalise(c) == normalise(r),
    "regex": lambda c, r, p: (a := regex_answer(c, p)) is not None and normalise(a) == normalise(r),
}


def verify(name: str, completion: str, reference: str, pattern: Optional[str] = None) -> bool:
    """Whether `completion` answers `reference` under verifier `name`."""
    return VERIFIERS[name](completion, reference, pattern)


def reference_ok(name: str, reference: str) -> bool:
    """Whether a row's reference answer is readable by verifier `name`."""
    if not reference.strip():
        return False
    if name == "number":
        return last_number(reference) is not None
    if name == "gsm8k":
        return _gsm8k_reference(reference) is not None
    if name == "choice":
        return choice_letter(reference) is not None
    if name == "math":
        return bool(_math_parse(reference))
    return True
