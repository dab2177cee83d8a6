"""Hostile-corpus benchmark: HTML bombs, huge headers, many parts and deep nesting sent by SMTP to a
sandbox running in this process, then rendered through /view/{ID}.html and /api/v1/message/{ID}, with a
heartbeat on the sandbox's event loop. Prints per input: its size, the time to the 250 after DATA, the
time to render each view, and the loop's longest stall during arrival and during rendering.

    .venv/bin/python bench/hostile_bench.py [--scale 1.0] [--only NAME ...]

--scale multiplies every repeat count (the old parsers need --scale 0.05 or so to finish). Target:
no stall above 50 ms. The client runs in this process too, so its own work shows up as a
millisecond or two of stall; messages stay under 900 KB.
"""

from __future__ import annotations

import argparse
import smtplib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailsandbox import heap  # noqa: E402
from mailsandbox.app import Sandbox, SandboxThread  # noqa: E402
from tests.conftest import LoopWatch, free_config  # noqa: E402


def html_mail(tag: str, markup: str) -> bytes:
    return headers(tag, "Content-Type: text/html; charset=utf-8\r\n") + markup.encode()


def headers(tag: str, extra: str = "", subject: str = "") -> bytes:
    return (
        f"From: bomb@example.test\r\nTo: victim@example.test\r\nSubject: {subject or tag}\r\n"
        f"Message-ID: <{tag}@bench.test>\r\n{extra}\r\n"
    ).encode()


def nested(tag: str, depth: int) -> bytes:
    opens = "".join(f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n" for i in range(depth))
    return headers(tag, "Content-Type: multipart/mixed; boundary=b0\r\n") + (
        f"{opens}--b{depth}\r\nContent-Type: text/html\r\n\r\n<p>deep</p>\r\n"
    ).encode()


def many_parts(tag: str, parts: int) -> bytes:
    body = "".join(
        f"--b\r\nContent-Type: {'text/html' if i == 1 else 'application/octet-stream'}; name=p{i}.bin\r\n\r\n"
        f"<b>{i}</b>\r\n"
        for i in range(parts)
    )
    return headers(tag, "Content-Type: multipart/mixed; boundary=b\r\n") + (body + "--b--\r\n").encode()


# name -> (repeat count at scale 1, builder of the message from that count)
ORDINARY = (
    "<!DOCTYPE html><html><head><title>Receipt</title><style>p{margin:0}</style></head><body>"
    "<table><tr><td><h2>Thanks, Ann!</h2><p>Order #{i}: <b>2</b> items, &euro;42.00</p>"
    '<img src="cid:logo@x" alt=logo><a href="https://shop.test/o/{i}">View order</a></td></tr></table></body></html>'
)
CORPUS: dict[str, tuple[int, Callable[[str, int], bytes]]] = {
    # First, as the baseline of this run (and to warm up threads and caches): an ordinary 40 KB HTML mail.
    "ordinary HTML mail": (150, lambda t, n: html_mail(t, "".join(ORDINARY.replace("{i}", str(i)) for i in range(n)))),
    "a-tags (<a * n)": (700, lambda t, n: html_mail(t, "<a" * n)),
    "a-tags big": (200_000, lambda t, n: html_mail(t, "<a" * n)),
    "head-tags (<head * n)": (20_000, lambda t, n: html_mail(t, "<head" * n)),
    "head-tags big": (160_000, lambda t, n: html_mail(t, "<head" * n)),
    "unclosed quotes": (80_000, lambda t, n: html_mail(t, "<a href='" * n)),
    "lone <": (800_000, lambda t, n: html_mail(t, "<" * n)),
    "deep divs": (20_000, lambda t, n: html_mail(t, "<div>" * n)),
    "attributes": (20_000, lambda t, n: html_mail(t, '<p a=b c=\'d\' style="color:red">' * n)),
    "comment opens": (200_000, lambda t, n: html_mail(t, "<!--" * n)),
    "css url(": (100_000, lambda t, n: html_mail(t, "<style>" + "url(" * n + "</style>")),
    "css unclosed url('": (
        50_000,
        lambda t, n: html_mail(t, "<style>" + "url('" * n + "</style><p style=\"" + "@import '" * n + '">'),
    ),
    "script escapes": (60_000, lambda t, n: html_mail(t, "<script>" + "<!--<script>" * n)),
    "one 800 KB header": (800_000, lambda t, n: headers(t, f"X-Long: {'a' * n}\r\n") + b"body\r\n"),
    "spaces in To": (
        400_000,
        lambda t, n: headers(t).replace(b"To: victim@example.test", b"To: v@x.test," + b" " * n + b"!") + b"b\r\n",
    ),
    "encoded-word starts": (100_000, lambda t, n: headers(t, subject="=?a?q?" * n) + b"body\r\n"),
    "encoded words": (40_000, lambda t, n: headers(t, subject="=?utf-8?q?a?= " * n) + b"body\r\n"),
    "many folds": (150_000, lambda t, n: headers(t, "X-Folded: " + "a\r\n " * n + "\r\n") + b"body\r\n"),
    "many parts": (8_000, many_parts),
    "deep nesting": (1_500, nested),
}


def run(sandbox: Sandbox, name: str, raw: bytes, client: httpx.Client) -> dict[str, float | str]:
    tag = raw.split(b"Message-ID: <", 1)[1].split(b"@", 1)[0].decode()
    smtp = sandbox.address("smtp")
    with LoopWatch(sandbox) as arrival:
        started = time.perf_counter()
        with smtplib.SMTP(smtp.host, smtp.port, timeout=600) as sender:
            sender.sendmail("bomb@example.test", ["victim@example.test"], raw)
        accepted = time.perf_counter() - started
    found = client.get("/api/v1/search", params={"query": f"message-id:<{tag}@bench.test>"}).json()
    message_id = found["messages"][0]["ID"]
    times: dict[str, float | str] = {"size": len(raw), "250": accepted, "arrival stall": arrival.max_stall}
    for label, path in (("view.html", f"/view/{message_id}.html"), ("api message", f"/api/v1/message/{message_id}")):
        with LoopWatch(sandbox) as render:
            started = time.perf_counter()
            status = client.get(path).status_code
            times[label] = time.perf_counter() - started if status in (200, 404) else f"HTTP {status}"
        times[f"{label} stall"] = render.max_stall
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", nargs="*", help="corpus entries whose name contains one of these")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        thread = SandboxThread(free_config(Path(tmp)))
        sandbox = thread.start()
        heap.settle()  # as `mailsandbox serve` does once it has started
        http = sandbox.address("http")
        try:
            with httpx.Client(base_url=f"http://{http.host}:{http.port}", timeout=600) as client:
                print(f"{'':34} {'arrival':>9} {'view':>9} {'view':>9} {'api msg':>9} {'api msg':>9}")
                columns = ("size", "250", "stall", ".html", "stall", "", "stall")
                print(f"{'input':24}" + "".join(f" {c:>9}" for c in columns))
                worst = 0.0
                for index, (name, (count, build)) in enumerate(CORPUS.items()):
                    if args.only and not any(word in name for word in args.only):
                        continue
                    raw = build(f"h{index}", max(1, int(count * args.scale)))
                    assert len(raw) < 900_000, f"{name}: {len(raw)} octets (keep under 900 KB)"
                    t = run(sandbox, name, raw, client)
                    stalls = [float(t[k]) for k in ("arrival stall", "view.html stall", "api message stall")]
                    worst = max(worst, *stalls)

                    def ms(key: str, t: dict[str, float | str] = t) -> str:
                        value = t[key]
                        return value if isinstance(value, str) else f"{value * 1000:.1f} ms"

                    print(
                        f"{name:24} {int(t['size']):>9,} {ms('250'):>9} {ms('arrival stall'):>9} {ms('view.html'):>9} "
                        f"{ms('view.html stall'):>9} {ms('api message'):>9} {ms('api message stall'):>9}",
                        flush=True,
                    )
                print(f"longest loop stall: {worst * 1000:.1f} ms (target: none above 50 ms)")
        finally:
            thread.stop()


if __name__ == "__main__":
    main()
