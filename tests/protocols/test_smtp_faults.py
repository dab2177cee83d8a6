"""The SMTP core's fault hook (chaos rules), with byte transcripts: a fault replaces the reply of a command
that would succeed and leaves the state as a refusal does; a delay is a Hold before the reply; 421 closes."""

from __future__ import annotations

from collections.abc import Sequence

from mailsandbox.protocols.smtp import CloseRequested, Event, Hold, MessageReceived, Reply, SmtpConnection, State

Asked = list[tuple[str, str, tuple[str, ...]]]


def _core(faults: dict[str, tuple[bytes | None, float]], asked: Asked, insecure_auth: bool = False) -> SmtpConnection:
    def hook(stage: str, sender: str, recipients: Sequence[str]) -> tuple[bytes | None, float] | None:
        asked.append((stage, sender, tuple(recipients)))
        return faults.get(stage)

    return SmtpConnection("mx.test", fault=hook, allow_insecure_auth=insecure_auth)


def _replies(events: list[Event]) -> list[bytes]:
    return [e.data for e in events if isinstance(e, Reply)]


def test_a_fault_refuses_and_the_transaction_goes_on_as_after_a_refusal() -> None:
    asked: Asked = []
    core = _core({"rcpt": (b"550 5.0.0 no\r\n", 0.0)}, asked)
    core.receive_data(b"EHLO me\r\n")
    events = core.receive_data(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")
    assert _replies(events) == [b"250 2.1.0 Ok\r\n", b"550 5.0.0 no\r\n", b"503 5.5.1 Error: need RCPT command\r\n"]
    assert asked == [("ehlo", "", ()), ("mail", "a@x.test", ()), ("rcpt", "a@x.test", ("b@y.test",))]


def test_invalid_commands_are_not_asked_about() -> None:
    asked: Asked = []
    core = _core({}, asked)
    core.receive_data(b"MAIL FROM:<a@x.test>\r\nEHLO me\r\nMAIL FROM:<bad\r\nRCPT TO:<b@y.test>\r\n")
    assert [a[0] for a in asked] == ["ehlo"]


def test_a_delay_holds_the_usual_reply_and_421_closes() -> None:
    asked: Asked = []
    core = _core({"mail": (None, 1.5), "data": (b"421 4.0.0 bye\r\n", 0.25)}, asked)
    core.receive_data(b"EHLO me\r\n")
    events = core.receive_data(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nQUIT\r\n")
    assert events == [
        Hold(1.5), Reply(b"250 2.1.0 Ok\r\n"), Reply(b"250 2.1.5 Ok\r\n"),
        Hold(0.25), Reply(b"421 4.0.0 bye\r\n"), CloseRequested(),
    ]  # fmt: skip
    assert core.state is State.CLOSED
    assert asked[-1] == ("data", "a@x.test", ("b@y.test",))


def test_auth_fault_replaces_the_235_and_leaves_the_client_unauthenticated() -> None:
    asked: Asked = []
    core = _core({"auth": (b"535 x\r\n", 0.0)}, asked, insecure_auth=True)
    core.receive_data(b"EHLO me\r\n")
    assert _replies(core.receive_data(b"AUTH PLAIN AGFubgBwdw==\r\n")) == [b"535 x\r\n"]
    assert core.auth_user is None and asked[-1][:2] == ("auth", "ann")


def test_a_421_after_data_closes() -> None:
    core = SmtpConnection("mx.test")
    events = core.receive_data(b"HELO me\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nhi\r\n.\r\nNOOP\r\n")
    assert isinstance(events[-1], MessageReceived)
    assert core.message_stored(b"421 4.3.0 closing\r\n") == [Reply(b"421 4.3.0 closing\r\n"), CloseRequested()]
