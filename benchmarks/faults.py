"""
Refusing a random share of TCP connections to one loopback port, for real.

With nftables (needs root or CAP_NET_ADMIN, the ``nft`` tool and the kernel's nf_tables), one
table of our own holds one rule on the loopback interface::

    table inet tac_bench_<pid> {
        chain input {
            type filter hook input priority filter - 10; policy accept;
            iif "lo" tcp dport <PORT> tcp flags syn / syn,ack numgen random mod 100 < 12 \
                counter reject with tcp reset
        }
    }

A random 12 % of the SYNs (connection attempts; retransmitted SYNs are drawn again) to that
port are answered with a TCP reset before the server sees them: the client's ``connect()``
fails with a true ``ECONNREFUSED``, before any byte of the request is sent. Nothing else is
touched: other ports, established connections and every other interface pass. The table is
deleted on exit (``nft delete table inet tac_bench_<pid>`` by hand if a run was killed).

The kernel's ``numgen random`` is not seeded: the share is 12 % on average, not a fixed list.
The rule's counter tells how many connections were refused; the runner reports it per round.

Where nftables cannot be used, the runner falls back to the server's toggling listener
(``benchmarks/server.py --toggle-refuse``) and says so in its output.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess


class NftRefuser:
    """An nftables rule that resets ``percent`` % of the SYNs to ``port`` on loopback."""

    def __init__(self, port: int, percent: int) -> None:
        if not 0 < percent < 100:
            raise ValueError("percent must be from 1 to 99")
        self.port = port
        self.percent = percent
        self.table = f"tac_bench_{os.getpid()}"
        self.active = False
        self.reason = ""

    def _nft(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nft", *args], input=stdin, capture_output=True, text=True, timeout=10, check=False
        )

    def ruleset(self) -> str:
        return (
            f"table inet {self.table} {{\n"
            "  chain input {\n"
            "    type filter hook input priority -10; policy accept;\n"
            f"    iif lo tcp dport {self.port} tcp flags & (syn | ack) == syn "
            f"numgen random mod 100 < {self.percent} counter reject with tcp reset\n"
            "  }\n"
            "}\n"
        )

    def install(self) -> bool:
        """Add the rule; return whether it is in force (else ``reason`` says why not)."""
        if shutil.which("nft") is None:
            self.reason = "the nft tool is not installed (apt-get install nftables)"
            return False
        try:
            done = self._nft("-f", "-", stdin=self.ruleset())
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.reason = f"nft failed to run: {exc}"
            return False
        if done.returncode != 0:
            self.reason = f"nft refused the rule: {done.stderr.strip() or done.returncode}"
            return False
        self.active = True
        atexit.register(self.remove)
        return True

    def refused(self) -> int | None:
        """SYNs reset by the rule so far (its counter), or ``None`` if unreadable."""
        if not self.active:
            return None
        done = self._nft("-j", "list", "table", "inet", self.table)
        if done.returncode != 0:
            return None
        try:
            for item in json.loads(done.stdout)["nftables"]:
                rule = item.get("rule")
                if rule is None:
                    continue
                for expr in rule.get("expr", []):
                    if "counter" in expr:
                        return int(expr["counter"]["packets"])
        except (ValueError, KeyError, TypeError):
            return None
        return None

    def remove(self) -> None:
        if self.active:
            self.active = False
            self._nft("delete", "table", "inet", self.table)
