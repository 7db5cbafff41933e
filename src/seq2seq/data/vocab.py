"""Vocabulary: token <-> id with the specials ``<pad> <unk> <bos> <eos>`` at ids 0..3."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)


class Vocab:
    """Maps tokens to ids. Unknown tokens map to ``UNK_ID``."""

    def __init__(self, tokens: Iterable[str]) -> None:
        itos = list(tokens)
        if tuple(itos[:4]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}, got {itos[:4]}")
        if len(set(itos)) != len(itos):
            dup = next(t for t, c in Counter(itos).items() if c > 1)
            raise ValueError(f"duplicate token {dup!r} in vocabulary")
        self.itos = itos
        self.stoi = {t: i for i, t in enumerate(itos)}

    @classmethod
    def build(
        cls, sequences: Iterable[list[str]], min_freq: int = 1, max_size: int | None = None
    ) -> Vocab:
        """Most frequent tokens first (ties broken alphabetically, so the result is deterministic)."""
        counts = Counter(t for seq in sequences for t in seq)
        for s in SPECIALS:
            counts.pop(s, None)
        items = sorted(
            ((t, c) for t, c in counts.items() if c >= min_freq), key=lambda tc: (-tc[1], tc[0])
        )
        if max_size is not None:
            items = items[:max_size]
        return cls([*SPECIALS, *(t for t, _ in items)])

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def encode(self, tokens: list[str]) -> list[int]:
        get = self.stoi.get
        return [get(t, UNK_ID) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens for ``ids``, stopping at the first ``<eos>`` and leaving out pad/bos."""
        out = []
        for i in ids:
            if i == EOS_ID:
                break
            if i in (PAD_ID, BOS_ID):
                continue
            out.append(self.itos[i])
        return out

    def save(self, path: str | Path) -> None:
        """One token per line, in id order."""
        Path(path).write_text("".join(t + "\n" for t in self.itos), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        text = Path(path).read_text(encoding="utf-8")
        return cls(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"))
