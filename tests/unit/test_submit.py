"""The one submission primitive: a call that creates something is never sent blindly twice."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.api.retry import RetryPolicy, submit
from provisioner.errors import (
    NoAnswerError,
    TerminalApiError,
    ThrottledError,
    TransientApiError,
    TransportError,
)

LOST = TransportError("no answer")
BUSY = TransientApiError("A", "ServiceUnavailable", "busy", http_status=503)


class Server:
    """Answers a scripted list: an exception is raised, anything else returned."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.sends = 0

    async def send(self) -> Any:
        self.sends += 1
        outcome = self.script.pop(0) if self.script else "ok"
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def policy() -> RetryPolicy:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return RetryPolicy(sleep=sleep, jitter=False)


def test_an_answer_is_returned() -> None:
    server = Server(["42"])
    sent = anyio.run(lambda: submit(server.send, policy=policy(), attempts=3))
    assert (sent.answer, sent.uncertain, server.sends) == ("42", False, 1)


def test_a_refusal_is_returned_not_raised() -> None:
    refusal = TerminalApiError("A", "iot.device.Exists", "no")
    server = Server([refusal])
    sent = anyio.run(lambda: submit(server.send, policy=policy(), attempts=3))
    assert sent.refused is refusal
    assert server.sends == 1


def test_without_a_way_to_ask_a_lost_answer_is_not_sent_again() -> None:
    server = Server([LOST])
    sent = anyio.run(lambda: submit(server.send, policy=policy(), attempts=5))
    assert sent.unanswered
    assert sent.error is LOST
    assert server.sends == 1


def test_after_a_lost_answer_the_server_is_asked_before_sending_again() -> None:
    server = Server([LOST, "ok"])
    asked: list[bool] = []

    async def ask() -> bool:
        asked.append(True)
        return True  # it took effect

    sent = anyio.run(lambda: submit(server.send, policy=policy(), attempts=5, ask=ask))
    assert sent.taken_effect
    assert server.sends == 1
    assert asked == [True]


def test_resend_unasked_marks_the_result_uncertain() -> None:
    server = Server([BUSY, LOST, "ok"])
    sent = anyio.run(lambda: submit(server.send, policy=policy(), attempts=5, resend_unasked=True))
    assert sent.answer == "ok"
    assert sent.uncertain
    assert server.sends == 3


def test_resend_codes_resend_and_the_last_is_a_refusal() -> None:
    failed = TerminalApiError("ImportDevice", "iot.device.CreateDeviceFailed", "try again")
    server = Server([failed, failed, failed])
    sent = anyio.run(
        lambda: submit(
            server.send,
            policy=policy(),
            attempts=3,
            resend_unasked=True,
            resend_codes=("iot.device.CreateDeviceFailed",),
        )
    )
    assert sent.refused is failed
    assert sent.uncertain
    assert server.sends == 3


@pytest.mark.parametrize(
    "error",
    [
        ThrottledError("A", "Throttling.User", "deadline spent"),
        NoAnswerError("http://e", 60, action="A", attempts=3),
    ],
)
def test_errors_of_the_run_are_raised_at_once(error: Exception) -> None:
    server = Server([error])
    with pytest.raises(type(error)):
        anyio.run(lambda: submit(server.send, policy=policy(), attempts=5, resend_unasked=True))
    assert server.sends == 1


@given(
    script=st.lists(st.sampled_from(["lost", "busy", "ok", "no"]), min_size=1, max_size=8),
    attempts=st.integers(1, 6),
    effect=st.booleans(),
)
def test_with_ask_it_never_sends_after_the_server_said_it_took_effect(
    script: list[str], attempts: int, effect: bool
) -> None:
    outcomes = {"lost": LOST, "busy": BUSY, "ok": "ok", "no": TerminalApiError("A", "x", "n")}
    server = Server([outcomes[s] for s in script])
    asks = 0

    async def ask() -> bool:
        nonlocal asks
        asks += 1
        return effect

    async def go() -> Any:
        return await submit(server.send, policy=policy(), attempts=attempts, ask=ask)

    try:
        sent = anyio.run(go)
    except (TransportError, TransientApiError):
        assert server.sends == attempts  # every attempt failed transiently
        assert asks == attempts
        return
    if sent.taken_effect:
        assert server.sends == asks  # stopped at the first "yes"
    assert server.sends <= attempts
