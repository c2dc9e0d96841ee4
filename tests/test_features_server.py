"""features/borger, features/lps and features/kliniker against the reference server over HTTP, on SQLite and on
PostgreSQL. The step code is the conformance suite's (kroniker.conformance.sharing): the project's tests and a
vendor's conformance run execute the same steps, so there is one copy of them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from kroniker.conformance import features
from kroniker.conformance import requirements as reqs
from kroniker.conformance.runner import Case, run
from kroniker.conformance.sharing import EMBARGO
from kroniker.conformance.targets import KeyTokens, RemoteTarget
from kroniker.validators.packages import PackageCache
from tests.server_support import Server, server_for

pytestmark = pytest.mark.network

SCENARIOS = features.server_suite()


@pytest.fixture(scope="module")
def care_cache(care_package_cache: PackageCache) -> PackageCache:
    """MedCom's packages and kroniker's care packages (borger/svar_hjemmefra.feature answers its questionnaires)."""
    return care_package_cache


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           care_cache: PackageCache) -> Iterator[Server]:
    # Set up as the server suite expects of a target: the Shared Notes' embargo (borger/ventetid.feature).
    with server_for(request, tmp_path_factory, care_cache, embargo=dict(EMBARGO)) as srv:
        yield srv
_seeds = itertools.count(1)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scenario(server: Server, scenario: features.Scenario) -> None:
    target = RemoteTarget(server.url, KeyTokens(server.key), rows=server.rows)
    # Each scenario its own test persons on the module's server: a seed of its own, a thousand numbers apart.
    [result] = run([Case(scenario)], reqs.load(), target=target, seed=next(_seeds) * 1000)
    failing = [f"{s['keyword']} {s['text']}: {s['status']} — {s.get('message', '')}"
               for s in result["steps"] if s["status"] not in ("passed", "skipped")]
    assert result["status"] == "passed", "\n".join(failing)
    assert not result["broken"], result["broken"]


def test_every_step_of_the_server_features_has_a_definition() -> None:
    from kroniker.conformance.sharing import steps

    missing = [(s.id, step.text) for s in SCENARIOS for step in s.steps if steps.find(step.kind, step.text) is None]
    assert missing == []
