"""ZipVoice-Dialog test lists: one generated dialogue per line, merged or split prompts.

Formats (tab-separated, as ``zipvoice.bin.infer_zipvoice_dialog --test-list`` reads them):

- 4 columns, merged prompt: ``name  prompt_text  prompt_wav  text``
  (``prompt_text`` holds ``[S1] ... [S2] ...``, ``prompt_wav`` both voices);
- 6 columns, split prompts: ``name  spk1_text  spk2_text  spk1_wav  spk2_wav  text``.

The generated audio of a line is ``<res_dir>/<name>.wav``. A relative prompt path is taken as
given when it exists from the working directory, else relative to the test list's folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TestItem", "parse_line", "read_test_list"]


@dataclass(frozen=True)
class TestItem:
    """One line of a test list.

    Attributes:
        name: the generated wav's stem.
        text: the dialogue script to synthesise (``[S1] ... [S2] ...``).
        prompt_wavs: one merged prompt, or the S1 and S2 prompts.
        prompt_texts: the matching prompt transcripts.
    """

    name: str
    text: str
    prompt_wavs: tuple[str, ...]
    prompt_texts: tuple[str, ...]

    @property
    def merged_prompt(self) -> bool:
        return len(self.prompt_wavs) == 1


def _resolve(path: str, base_dir: Path) -> str:
    if os.path.isabs(path) or os.path.exists(path):
        return path
    return str(base_dir / path)


def parse_line(line: str, base_dir: str | os.PathLike = ".") -> TestItem:
    """One test-list line as a :class:`TestItem`.

    Raises:
        ValueError: not 4 or 6 tab-separated columns.

    >>> parse_line("d1\\t[S1] Hi. [S2] Yo.\\t/p.wav\\t[S1] A. [S2] B.").merged_prompt
    True
    """
    fields = line.rstrip("\r\n").split("\t")
    base = Path(base_dir)
    if len(fields) == 4:
        name, prompt_text, prompt_wav, text = fields
        return TestItem(name, text, (_resolve(prompt_wav, base),), (prompt_text,))
    if len(fields) == 6:
        name, text1, text2, wav1, wav2, text = fields
        return TestItem(name, text, (_resolve(wav1, base), _resolve(wav2, base)), (text1, text2))
    raise ValueError(
        f"a test-list line has 4 (merged prompt) or 6 (split prompts) tab-separated "
        f"columns, got {len(fields)}: {line[:80]!r}"
    )


def read_test_list(path: str | os.PathLike) -> list[TestItem]:
    """All items of a test list (blank lines skipped).

    Raises:
        ValueError: a malformed line (with its line number) or duplicate names.
    """
    items: list[TestItem] = []
    base = Path(path).resolve().parent
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                items.append(parse_line(line, base))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from exc
    names = [i.name for i in items]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate names in the test list")
    return items
