"""The paper's theorems: statements, written proofs (in each module's docstring and
in docs/theorems.md) and the machine checks that run in the test suite."""
