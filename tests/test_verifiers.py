"""Verifiers on the answers that trip naive checks: LaTeX fractions, thousands separators,
a trailing full stop after `####`, two numbers in one text, no answer at all."""

from __future__ import annotations

import importlib.util

import pytest

from entropyctl.errors import BadInput
from entropyctl.tasks import verifiers as V

HAVE_MATH = importlib.util.find_spec("math_verify") is not None

needs_math = pytest.mark.skipif(not HAVE_MATH, reason="math-verify not installed (pip install 'entropyctl[math]')")


@pytest.mark.parametrize("verifier,completion,reference,ok", [
    # number: the last number of the completion
    ("number", "1,000", "1000", True),
    ("number", "The total is 1,000 apples.", "1000", True),
    ("number", "I had 3 apples, then 5.", "5", True),
    ("number", "I had 3 apples, then 5.", "3", False),        # two numbers: the last counts
    ("number", "the answer is 0.50", "0.5", True),
    ("number", "about -7", "-7", True),
    ("number", "no answer at all", "4", False),
    ("number", "", "4", False),
    ("number", "3/4 of it", "0.75", True),
    # gsm8k: the number after ####
    ("gsm8k", "so #### 7.", "7", True),
    ("gsm8k", "2 + 5 = 7\n#### 7", "Tom has 2 + 5 = 7.\n#### 7", True),
    ("gsm8k", "I think 7", "7", False),                        # a number without ####
    ("gsm8k", "#### 1,000", "1000", True),
    ("gsm8k", "#### 6 then 7", "7", False),                    # the number right after ####
    ("gsm8k", "#### 3 and later #### 7", "#### 7", True),       # the last ####
    ("gsm8k", "nothing here", "7", False),
    # choice
    ("choice", "The answer is (B).", "B", True),
    ("choice", "Answer: C", "c", True),
    ("choice", "the answer is a dog", "A", False),
    ("choice", "\\boxed{D}", "(D)", True),
    ("choice", "B", "b", True),
    ("choice", "Between (A) and (C) I pick (C)", "C", True),
    ("choice", "I cannot tell", "A", False),
    # exact
    ("exact", "  Paris. ", "paris", True),
    ("exact", "Paris, France", "Paris", False),
    ("exact", "", "Paris", False),
])
def test_verifiers_on_tricky_answers(verifier, completion, reference, ok):
    assert V.verify(verifier, completion, reference) is ok


def test_regex_verifier_takes_group_one_of_the_last_match():
    pat = r"ANSWER:\s*(\w+)"
    assert V.verify("regex", "ANSWER: cat ... ANSWER: Dog", "dog", pat)
    assert not V.verify("regex", "ANSWER: cat ... ANSWER: Dog", "cat", pat)
    assert not V.verify("regex", "no marker", "dog", pat)


@needs_math
@pytest.mark.parametrize("completion,reference,ok", [
    ("so the answer is $\\boxed{\\frac{1}{2}}$", "0.5", True),
    ("\\boxed{\\frac{1}{2}}", "\\frac{2}{4}", True),
    ("\\boxed{1,000}", "1000", True),
    ("\\boxed{3}", "4", False),
    ("I give up", "4", False),
])
def test_math_verifier_knows_latex_and_fractions(completion, reference, ok):
    assert V.verify("math", completion, reference) is ok


def test_missing_math_verify_is_one_line_naming_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_math_verify(name, *a, **k):
        if name == "math_verify":
            raise ImportError(name)
        return real(name, *a, **k)

    # The import hook hides an installed package: the only way to see the message where it is.
    monkeypatch.setattr(builtins, "__import__", no_math_verify)
    with pytest.raises(BadInput) as e:
        V.require_math_verify()
    assert "pip install 'entropyctl[math]'" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("verifier,reference,ok", [
    ("number", "42", True), ("number", "forty-two", False),
    ("gsm8k", "work...\n#### 42", True), ("gsm8k", "none", False),
    ("choice", "B", True), ("choice", "banana", False),
    ("exact", "anything", True), ("exact", "  ", False),
])
def test_reference_readability_decides_bad_rows(verifier, reference, ok):
    assert V.reference_ok(verifier, reference) is ok
