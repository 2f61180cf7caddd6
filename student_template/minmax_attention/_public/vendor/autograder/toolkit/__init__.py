"""What checks are written with: the Check class and its context (check), running a probe in
the worker (probe), judging what came back (verdict), and helpers for figures, samplers and
character corpora (figures, sampling, corpus)."""
