"""Autograder for PyTorch homework on attention and recurrent networks.

The pipeline, one module per stage: spec -> isolate -> probe -> verdict -> score -> report
(see autograder/pipeline.py for the whole path of one submission).
"""

__version__ = "0.1.0"
