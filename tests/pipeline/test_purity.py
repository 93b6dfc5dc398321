"""The corpus's roles are each one person: the whole pipeline on conversations of real voices.

Four conversations of the development voices (``voice_conversations.py``), run as a user runs
the pipeline, with the quality filters that do not concern speakers switched off
(``diar_scoring.RELAXED_FILTERS``). Two of them hold the faults that the purity work was
designed on: in ``dev2-02`` the diarizer gives the last 1.6 s of one man's turn to the other
(the role-purity check's 1.5 s pieces find it), in ``dev2-15`` a woman's 3 s beside two men
were a speaker too small to keep (now kept apart, she ends the dialogue). Every kept dialogue is
judged against the exact reference (``diar_scoring.judge_dialogue``).
"""

from __future__ import annotations

import pytest

from tests.conftest import TEST_THREADS
from tests.pipeline import diar_scoring

NAMES = (
    "dev2-02-wb-mm-nst_sv-librivox_ss",
    "dev2-15-tel-fmm-mls_es-carlo-michael",
    "dev-07-tel-ff-june-menardi",
    "dev-10-tel-fm-allison-carlo",
)


@pytest.fixture(scope="module")
def purity_run(tmp_path_factory):
    from pipeline.run import run
    from tests.pipeline.voice_conversations import conversations, write_wav

    built = {c.name: c for split in ("dev", "dev2") for c in conversations(split)}
    root = tmp_path_factory.mktemp("purity")
    (root / "in").mkdir()
    for name in NAMES:
        write_wav(built[name], root / "in" / f"{name}.wav")
    threads = [
        f"--{name}={TEST_THREADS}"
        for name in ("asr_threads", "quality_num_threads", "diar_num_threads")
    ]
    run(
        [
            "--runner=DirectRunner",
            f"--input={root / 'in'}",
            f"--output={root / 'out'}",
            "--quiet",
            *diar_scoring.RELAXED_FILTERS,
            *threads,
        ]
    )
    return diar_scoring.corpus_purity(root / "out", {n: built[n].reference for n in NAMES})


def test_every_kept_dialogue_is_two_real_people(purity_run, figure):
    """Measured on these four: every kept dialogue pure (5 dialogues, 116 s, on 2 threads; 4
    dialogues, 87 s, on 1 thread), yield 0.60 of the two-person speech on 2 threads and 0.40 on
    1 (scripts/test_portability.sh, variant threads1: one dialogue's role check lands on the other
    side of its limit). Four conversations make yield jump by a dialogue at a time, so the floor
    here, 0.3, sits below that spread: the test asks that the pipeline keeps a fair share, and the
    development-set yield (the issue's target, at least half) is the bench's figure
    (bench/bench_diarize.py --purity). Purity does not move: 1.0 under every variant."""
    print(purity_run)
    assert purity_run.dialogues >= 3
    figure("purity", purity_run.purity, at_least=0.98, detail=purity_run.impure)
    figure("yield", purity_run.yield_, at_least=0.3)  # measured 0.40-0.60
    assert purity_run.three_person_mixed == 0, purity_run.impure
