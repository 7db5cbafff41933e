import pytest
import torch
import torch.nn.functional as F

from seq2seq.data.vocab import PAD_ID
from seq2seq.train.loss import label_smoothed_nll


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_matches_torch_cross_entropy_and_ignores_padding(eps):
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 9)
    target = torch.randint(1, 9, (3, 5))
    target[1, 3:] = PAD_ID
    target[2, 1:] = PAD_ID
    loss, nll, n = label_smoothed_nll(logits, target, eps)
    assert n == 15 - 2 - 4
    ref = F.cross_entropy(
        logits.view(-1, 9),
        target.view(-1),
        ignore_index=PAD_ID,
        label_smoothing=eps,
        reduction="sum",
    )
    torch.testing.assert_close(loss, ref)
    ref_nll = F.cross_entropy(
        logits.view(-1, 9), target.view(-1), ignore_index=PAD_ID, reduction="sum"
    )
    torch.testing.assert_close(nll, ref_nll)
