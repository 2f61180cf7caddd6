"""Visible checks of the `minmax_attention` assignment (these also ship to students).

Each check: ``inputs`` (grader, seeded) -> ``probe`` (worker, calls the student) ->
``verdict`` (grader). No check needs the reference's numbers: the dataset is judged against
the 32768 examples the grader lists itself, the network by shapes and distributions, and
``train_model`` on a small grader-made model (:class:`TinyNetwork`) whose one AdamW step the
grading process computes itself and whose forward records the batches it is fed.

Modules: ``task`` (the examples and labels, as the grader knows them), ``dataset`` (dataset),
``network`` (shapes, weights_are_distributions), ``tiny_model`` (the grader-made model and
what the grader computes from it), ``training`` (train_model_step, train_model_batches),
``figure`` (attention_figure).
"""

from .network import build_network
from .task import MAX_TOKEN, N_EXAMPLES, VOCAB_SIZE, all_examples, labels_of
from .tiny_model import train_losses

__all__ = ["MAX_TOKEN", "N_EXAMPLES", "VOCAB_SIZE", "all_examples", "build_network", "labels_of", "train_losses"]
