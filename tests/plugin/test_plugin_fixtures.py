"""The plugin in a throwaway project (pytester): fixtures, filters, isolation, failure output, async waits."""

from __future__ import annotations

import re
import time

import pytest
from _plugin_sources import BASIC, INNER_OPTIONS, SEND

STRICT = INNER_OPTIONS


def test_fixtures_and_filters(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_basic=BASIC)
    result = pytester.runpytest_inprocess(*STRICT)
    result.assert_outcomes(passed=8)


def test_in_process_start_is_fast(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_start="""
        def test_start(mail_sandbox):
            print(f"STARTED_IN {mail_sandbox.started_in:.3f}")
        """
    )
    began = time.perf_counter()
    result = pytester.runpytest_inprocess(*STRICT, "-s")
    whole = time.perf_counter() - began
    result.assert_outcomes(passed=1)
    (match,) = filter(None, (re.search(r"STARTED_IN ([\d.]+)", line) for line in result.outlines))
    started_in = float(match.group(1))
    print(f"in-process sandbox start {started_in:.3f}s; whole inner session {whole:.3f}s")
    assert started_in < 1.0


def test_failure_output_lists_what_arrived(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fail=SEND
        + """
def test_wrong_subject(outbox, mail_sandbox):
    send(mail_sandbox, subject="Reset your password", to=("ann@example.test",))
    outbox.wait_for(to="ann@example.test", subject="Welcome", timeout=0.2)


def test_too_many(outbox, mail_sandbox):
    send(mail_sandbox, subject="Hi", to=("ann@example.test",))
    send(mail_sandbox, subject="Hi", to=("bob@example.test",))
    outbox.assert_sent(1, subject="Hi", timeout=0.2)


def test_something_sent(outbox, mail_sandbox):
    send(mail_sandbox, subject="Oops", to=("ann@example.test",))
    outbox.assert_nothing_sent()


def test_nothing_arrived(outbox):
    outbox.wait_for(to="ann@example.test", timeout=0.1)


def test_wrong_header(outbox, mail_sandbox):
    send(mail_sandbox, subject="Hdr", headers={"X-Kind": "reset"})
    outbox.wait_for(header={"X-Kind": "welcome"}, cc="zed@example.test", timeout=0.1)
"""
    )
    result = pytester.runpytest_inprocess(*STRICT)
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines(
        [
            "*MailAssertionError: outbox.wait_for(to='ann@example.test', subject='Welcome'):"
            " a matching message did not arrive within 0.2s.",
            "E *1 message arrived during this test:",
            "E *[[]1] 'Reset your password' from noreply@app.example to ann@example.test",
            "E *subject: 'Welcome' not in 'Reset your password'",
            "E *- Welcome",
            "E *+ Reset your password",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*outbox.assert_sent(1, subject='Hi'): expected 1 matching message, got 2.",
            "E *2 messages arrived during this test:",
            "E *[[]1] 'Hi' from noreply@app.example to ann@example.test  <- matches",
            "E *[[]2] 'Hi' from noreply@app.example to bob@example.test  <- matches",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*outbox.assert_nothing_sent(): expected no mail, got 1 message.",
            "E *[[]1] 'Oops' from noreply@app.example to ann@example.test",
        ]
    )
    result.stdout.fnmatch_lines(
        ["E *No mail arrived during this test. (The sandbox takes SMTP on 127.0.0.1:*; is the code sending there?)"]
    )
    result.stdout.fnmatch_lines(
        [
            "E *cc: 'zed@example.test' not among (none)",
            "E *header X-Kind: expected 'welcome', got 'reset'",
        ]
    )
    # The user's line is shown; the plugin's own frames are hidden (__tracebackhide__).
    result.stdout.fnmatch_lines(['> * outbox.wait_for(to="ann@example.test", subject="Welcome", timeout=0.2)'])
    assert "def wait_for(" not in result.stdout.str()


def test_async_waits_do_not_block_the_loop(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_async="""
import asyncio

import pytest


async def smtp_send(mail_sandbox, rcpt, subject):
    # A raw SMTP client on the test's own loop: it can only finish if the wait yields the loop.
    reader, writer = await asyncio.open_connection(mail_sandbox.smtp_host, mail_sandbox.smtp_port)

    async def expect(code):
        line = await reader.readline()
        while line[3:4] == b"-":
            line = await reader.readline()
        assert line.startswith(code), line

    await expect(b"220")
    for command, code in ((b"EHLO test", b"250"), (b"MAIL FROM:<app@example.test>", b"250"),
                          (b"RCPT TO:<" + rcpt.encode() + b">", b"250"), (b"DATA", b"354")):
        writer.write(command + b"\\r\\n")
        await expect(code)
    writer.write(f"Subject: {subject}\\r\\nTo: {rcpt}\\r\\n\\r\\nhi\\r\\n.\\r\\n".encode())
    await expect(b"250")
    writer.write(b"QUIT\\r\\n")
    await expect(b"221")
    writer.close()
    await writer.wait_closed()


@pytest.mark.asyncio
async def test_await_for(outbox, mail_sandbox):
    waiting = asyncio.ensure_future(outbox.await_for(subject="from the loop", timeout=5))
    await asyncio.sleep(0)  # the wait is polling before the mail goes out
    await smtp_send(mail_sandbox, "ann@example.test", "from the loop")
    msg = await waiting
    assert msg.to == ["ann@example.test"]


@pytest.mark.asyncio
async def test_wait_async(outbox, mail_sandbox):
    sends = [smtp_send(mail_sandbox, f"u{i}@example.test", f"n{i}") for i in range(3)]
    msgs, *_ = await asyncio.gather(outbox.wait_async(3, subject="n"), *sends)
    assert sorted(m.subject for m in msgs) == ["n0", "n1", "n2"]
    assert (await outbox.wait_for_async(to="u1@example.test")).subject == "n1"


@pytest.mark.asyncio
async def test_await_for_fails_with_the_report(outbox):
    with pytest.raises(AssertionError, match="did not arrive within 0.1s"):
        await outbox.await_for(subject="never", timeout=0.1)
"""
    )
    result = pytester.runpytest_inprocess(*STRICT)
    result.assert_outcomes(passed=3)
