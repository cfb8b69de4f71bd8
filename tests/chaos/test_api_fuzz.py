"""Property-based fuzzing of the REST API from its own OpenAPI schema, against the live stack.

schemathesis reads /api/schema/ from one ASGI process and sends a few generated requests per
operation, authenticated as an agent by token, to both processes: no answer may be a 5xx,
and every answer must match the schema (body and content type of each documented status).
What the fuzzer wrote (replies, notes, status changes that send a satisfaction survey) then
goes through the same checks as every fault.
"""
from __future__ import annotations

import time
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.chaos.checks import check_after_fault, wait_in_timeline
from tests.chaos.traffic import Tally, emails, post_all, texts

pytestmark = pytest.mark.chaos

EXAMPLES_PER_OPERATION = 5
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def test_api_schema_fuzz(stack, desk, report_line):
    started = time.monotonic()
    # Some conversations of both channels for the generated ids to hit now and then.
    seed = emails(5, "fuzz") + texts(5, "fuzz", desk.sms_channel_uuid)
    post_all(seed, stack.webs, Tally())
    wait_in_timeline(stack, seed)

    auth = {"Authorization": f"Token {desk.agent.token}"}
    schema = schemathesis.openapi.from_url(f"{stack.webs[0].base}/api/schema/", headers=auth, timeout=30)
    statuses: Counter = Counter()
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operations += 1
        fuzz_operation(result.ok(), stack.webs[operations % 2].base, auth, statuses, failures)

    requests_sent = sum(statuses.values())
    report = check_after_fault(stack, "api-schema-fuzz", inbound=seed, replies=[], started=started,
                               extra=f"{operations} operations, {requests_sent} requests "
                                     f"({', '.join(f'{n} {s // 100}xx' for s, n in sorted(statuses.items()))}), "
                                     f"{len(failures)} check failures")
    report_line(report.line())
    assert operations > 10 and requests_sent >= operations
    distinct = sorted({failure.partition("\n")[0] for failure in failures})
    assert not failures, "\n".join(distinct) + "\n\nfirst in full:\n" + failures[0]
    assert not report.problems(), report.problems()


def fuzz_operation(operation, base: str, auth: dict[str, str], statuses: Counter, failures: list[str]) -> None:
    """A few generated requests to one operation; every failed check is listed, none stops the run."""

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def fuzz(case) -> None:
        response = case.call(base_url=base, headers=auth, timeout=30)
        statuses[response.status_code // 100 * 100] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=auth, transport_kwargs={"base_url": base})
        except (Exception, BaseExceptionGroup) as err:  # noqa: BLE001 - listed at the end (schemathesis' FailureGroup is a BaseExceptionGroup)
            failures.append(f"{operation.label} -> {response.status_code}: {_titles(err)}\n{str(err)[:1200]}")

    fuzz()


def _titles(err: BaseException) -> str:
    """The failed checks' titles ("Server error", "Response violates schema", ...)."""
    inner = getattr(err, "exceptions", None) or [err]
    return "; ".join(sorted({str(getattr(e, "title", "") or type(e).__name__) for e in inner}))
