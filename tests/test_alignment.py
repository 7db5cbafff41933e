"""Hard alignments and unknown-word replacement from attention, on hand-written weights."""

import torch

from seq2seq.translator import Translation, hard_alignment, replace_unknowns

# rows: output tokens a, <unk>, <unk>, <eos>; columns: source tokens x, y, z, <eos>
WEIGHTS = torch.tensor(
    [
        [0.7, 0.1, 0.1, 0.1],
        [0.1, 0.1, 0.2, 0.6],  # the source <eos> column is never an alignment point
        [0.1, 0.8, 0.05, 0.05],
        [0.0, 0.0, 0.1, 0.9],
    ]
)


def test_hard_alignment_takes_the_most_attended_real_source_token():
    assert hard_alignment(WEIGHTS) == [(0, 0), (2, 1), (1, 2)]


def test_empty_source_or_output_aligns_nothing():
    assert hard_alignment(torch.ones(3, 1)) == []
    assert hard_alignment(torch.ones(1, 4) / 4) == []


def test_replace_unknowns_copies_the_aligned_source_token():
    assert replace_unknowns(["a", "<unk>", "<unk>"], ["X", "Y", "Z"], WEIGHTS) == ["a", "Z", "Y"]
    assert replace_unknowns(["<unk>"], [], torch.ones(2, 1)) == ["<unk>"]


def test_translation_record():
    t = Translation("x y z", "a Z Y", ["x", "y", "z", "<eos>"], ["a", "Z", "Y", "<eos>"], WEIGHTS)
    d = t.to_dict()
    assert d["alignment"] == ["0-0", "2-1", "1-2"]
    assert d["attention"][1] == [0.1, 0.1, 0.2, 0.6]
    assert d["translation"] == "a Z Y" and d["src_tokens"][-1] == "<eos>"
