"""The autograder's public checks for this assignment: run `pytest` in this folder.

Each test is one check, run with the autograder's own inputs, reference numbers and messages.
By default the file you saved last is tested (the .py or the .ipynb); choose one with
`pytest --submission <file>`. `pytest -k masking` runs one check.
"""


def test_public_check(check_name, public_check):
    public_check(check_name)
