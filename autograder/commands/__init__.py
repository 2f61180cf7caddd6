"""The command line (cli) and what its commands do beyond one grade: a class (batch), proving
an assignment sound (validate, variants), thresholds from evidence (calibrate), example
classes (examples), and a new assignment's scaffold (new)."""
