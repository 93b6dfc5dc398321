"""The token table: token strings <-> integer ids, stored as ZipVoice's ``tokens.txt``.

The file has one ``token<TAB>id`` line per token (the space token is the line ``" \\t3"``),
ids need not be contiguous, and the pad token ``_`` must be present. A table shipped beside a
checkpoint is the one to use with that checkpoint: ids are what the embedding rows mean.

>>> table = TokenTable.from_tokens(["_", "a", "b"])
>>> table.id_of("b"), table.vocab_size, table.pad_id
(2, 3, 0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PAD_TOKEN = "_"


@dataclass(frozen=True)
class TokenTable:
    """An immutable token -> id map.

    Attributes:
        entries: ``(token, id)`` pairs in file order; tokens and ids are unique.
    """

    entries: tuple[tuple[str, int], ...]
    _token_to_id: dict = dataclasses.field(init=False, repr=False, compare=False)
    _id_to_token: dict = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        token_to_id: dict[str, int] = {}
        id_to_token: dict[int, str] = {}
        for token, index in self.entries:
            if token in token_to_id:
                raise ValueError(f"duplicate token {token!r} in the token table")
            if index in id_to_token:
                raise ValueError(f"duplicate id {index} in the token table")
            if index < 0:
                raise ValueError(f"negative id {index} for token {token!r}")
            token_to_id[token] = index
            id_to_token[index] = token
        object.__setattr__(self, "_token_to_id", token_to_id)
        object.__setattr__(self, "_id_to_token", id_to_token)

    @classmethod
    def from_tokens(cls, tokens: Iterable[str]) -> TokenTable:
        """A table giving ids 0, 1, 2, ... to ``tokens`` in order."""
        return cls(tuple((token, index) for index, token in enumerate(tokens)))

    @classmethod
    def load(cls, path: str | Path) -> TokenTable:
        """Read a ``tokens.txt`` file (``token<TAB>id`` per line)."""
        entries = []
        with open(path, encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                line = line.rstrip("\r\n")
                if not line:
                    continue
                token, sep, index = line.rpartition("\t")
                if not sep:
                    raise ValueError(f"{path}:{line_number}: expected 'token<TAB>id', got {line!r}")
                entries.append((token, int(index)))
        return cls(tuple(entries))

    def save(self, path: str | Path) -> None:
        """Write the table as ``tokens.txt`` (``token<TAB>id`` per line, in entry order)."""
        with open(path, "w", encoding="utf-8") as handle:
            handle.writelines(f"{token}\t{index}\n" for token, index in self.entries)

    def extended(self, tokens: Iterable[str]) -> TokenTable:
        """A new table with the tokens not yet present appended after the largest id."""
        entries = list(self.entries)
        present = set(self._token_to_id)
        next_id = self.vocab_size
        for token in tokens:
            if token not in present:
                present.add(token)
                entries.append((token, next_id))
                next_id += 1
        return TokenTable(tuple(entries))

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, token: object) -> bool:
        return token in self._token_to_id

    def id_of(self, token: str) -> int | None:
        """The id of ``token``, or None if the table lacks it."""
        return self._token_to_id.get(token)

    def token_of(self, index: int) -> str | None:
        """The token with id ``index``, or None."""
        return self._id_to_token.get(index)

    @property
    def tokens(self) -> tuple[str, ...]:
        """The tokens in entry order."""
        return tuple(token for token, _ in self.entries)

    @property
    def vocab_size(self) -> int:
        """Rows an embedding needs: the largest id + 1 (0 for an empty table)."""
        return max(self._id_to_token, default=-1) + 1

    @property
    def pad_id(self) -> int:
        """The id of the pad token ``_``."""
        return self._require(PAD_TOKEN)

    def _require(self, token: str) -> int:
        index = self._token_to_id.get(token)
        if index is None:
            raise KeyError(f"the token table has no {token!r} token")
        return index
