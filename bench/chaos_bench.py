"""What chaos costs the event loop: Chaos.check per SMTP stage, for a few rule sets (pure CPU, no sockets).

.venv/bin/python bench/chaos_bench.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from mailsandbox.chaos import Chaos, RateLimit, parse_rule, parse_triggers


def _best(chaos: Chaos, stage: str, recipients: Sequence[str], runs: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(runs):
            chaos.check(stage, "127.0.0.1", "app@example.test", recipients)
        best = min(best, (time.perf_counter() - started) / runs)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    clock = [0.0]
    few = [f"user{i}@example.test" for i in range(3)]
    many = [f"user{i}@example.test" for i in range(1000)]
    cases: list[tuple[str, list[str], str, RateLimit, list[str]]] = [
        ("enabled, nothing set", [], "", RateLimit(), few),
        ("Mailpit triggers at 10%", [], "Sender:451:10,Recipient:451:10", RateLimit(), few),
        ("3 rules + rate limits", ["rcpt:550 to=*@bounce.test", "message:451 every=3", "greeting delay=1"], "",
         RateLimit(1_000_000, 1_000_000), few),
        ("20 recipient-glob rules, 1000 rcpts", ["data:550 to=*@bounce.test"] * 20, "", RateLimit(), many),
    ]  # fmt: skip
    for name, rules, triggers, limit, recipients in cases:
        chaos = Chaos(enabled=True, clock=lambda: clock[0])
        chaos.set_rules([parse_rule(r) for r in rules])
        chaos.set_rate_limit(limit)
        if triggers:
            chaos.triggers = parse_triggers(triggers)
        runs = args.runs if len(recipients) < 100 else max(1, args.runs // 200)
        costs = {stage: _best(chaos, stage, recipients, runs) for stage in ("greeting", "mail", "rcpt", "data")}
        shown = "  ".join(f"{stage} {cost * 1e6:8.2f} us" for stage, cost in costs.items())
        print(f"{name:<38} {shown}")


if __name__ == "__main__":
    main()
