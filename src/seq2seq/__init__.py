"""seq2seq: sequence-to-sequence learning on PyTorch.

import seq2seq
translator = seq2seq.load("runs/dates")          # a run directory or a checkpoint file
translator.translate(["March 3, 2017"], beam_size=5)
"""

__version__ = "0.1.0"


def load(path, device="cpu", quantize_to=None, compile=False, shortlist=None):
    """A :class:`seq2seq.translator.Translator` from a run directory or checkpoint file (several:
    an ensemble); ``quantize_to="int8"``, ``compile=True`` and ``shortlist=FILE`` as in
    :func:`seq2seq.translator.load`."""
    from .translator import load as _load

    return _load(path, device, quantize_to, compile, shortlist)


__all__ = ["__version__", "load"]
