"""The soak run, short, in every test run (`tests.support.soak` says what it does).

A failure prints the seed first; replay it with `AIOMQ_SOAK_SEED=<seed>` on this test, or
with `scripts/soak --seed <seed>`, which also runs longer (`--minutes`).
`AIOMQ_SOAK_SECONDS` changes how long this test soaks.
"""

from __future__ import annotations

import os

from aiomq.testing import EmbeddedBroker
from tests.support.soak import SEED_ENV, SoakSettings, figures, seed_from_env, soak

SECONDS_ENV = "AIOMQ_SOAK_SECONDS"
# About two minutes with setting up, draining and closing.
DEFAULT_SECONDS = 100.0


async def test_writers_and_a_group_under_random_faults_lose_nothing_and_explain_every_duplicate(
    kafka_faulty_broker: EmbeddedBroker,
) -> None:
    seconds = float(os.environ.get(SECONDS_ENV, DEFAULT_SECONDS))
    settings = SoakSettings(seed=seed_from_env(), duration=seconds)
    replay = f"replay with {SEED_ENV}={settings.seed} or scripts/soak --seed {settings.seed}"
    print(f"soak: seed {settings.seed}; {replay}")
    ledger, findings = await soak(kafka_faulty_broker, settings)
    line = figures(settings, ledger, findings)
    print(line)
    problems = findings.problems(ledger)
    assert not problems, "\n".join([line, *problems, replay])
    # A storm, not a stroll: faults struck often enough to make the writers retry.
    assert sum(ledger.faults.values()) >= seconds / 8, line
    assert ledger.retries, line
    assert sum(sent.acked for sent in ledger.sent.values()) > 1000, line
