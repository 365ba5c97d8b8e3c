"""A fuzzer of sroamd's receive paths, in-process, on the real code.

One harness per path (see paths.py); the runner (runner.py) feeds each
generated input to the harness, checks its invariants, and counts failures by
kind without ever stopping on one.  Used by tests/test_fuzz.py (a few thousand
inputs per path in CI) and bench/fuzz.py (up to millions, with reproducers
saved to a directory).
"""
