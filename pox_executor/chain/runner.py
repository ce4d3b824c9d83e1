"""The chain side of a running workflow: connect at start, anchor while it runs and at its end.

Owns `ChainRunner`, which the plugin starts with the run's recorder: it resolves the profile
(`none` gives no runner), connects (starting the local devnet when the profile is `local`; a
missing anvil is an error that says how to get it), then a daemon thread settles intermediate
checkpoints every N records or T seconds, and `finish()` settles the final checkpoint. Chain
trouble never fails the workflow: what could not be sent stays pending in the journal, and the
log says to run `pox anchor`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pox_executor.chain.client import ChainClient, connect
from pox_executor.chain.profiles import load_profile
from pox_executor.chain.settle import DEALS_MODES, SettleResult, settle
from pox_executor.errors import PoxError, UsageError
from pox_executor.provenance.recorder import RunRecorder


class ChainRunner:
    def __init__(
        self,
        recorder: RunRecorder,
        client: ChainClient,
        *,
        deals: str,
        every_records: int,
        every_seconds: float,
        timeout_s: float,
        log: Any,
    ) -> None:
        self.recorder = recorder
        self.client = client
        self.deals = deals
        self.every_records = max(1, every_records)
        self.every_seconds = max(1.0, every_seconds)
        self.timeout_s = timeout_s
        self.log = log
        self._stop = threading.Event()
        self._settled_size = 0
        self._last = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="pox-chain", daemon=True)
        self._thread.start()

    @staticmethod
    def connect(profile_name: str, *, deals: str, timeout_s: float) -> ChainClient | None:
        """Resolve the profile and connect (before the run's bundle exists); None for `none`.

        A missing anvil, keystore or passphrase fails the run here, before any job runs.
        """
        if deals not in DEALS_MODES:
            raise UsageError(f"--pox-deals {deals!r}: choose one of {', '.join(DEALS_MODES)}")
        profile = load_profile(profile_name)
        if profile is None:
            return None
        return connect(profile, deadline=time.monotonic() + max(timeout_s, 30))

    @classmethod
    def start(
        cls,
        recorder: RunRecorder,
        client: ChainClient,
        *,
        deals: str,
        every_records: int,
        every_seconds: float,
        timeout_s: float,
        log: Any,
    ) -> ChainRunner:
        profile = client.profile
        recorder.bundle.index.chain.update(
            {"profile": profile.name, "deals": deals, "chain_id": profile.chain_id}
        )
        log.info(
            f"PoX: anchoring on chain {profile.name} ({client.rpc_url}), deals {deals}; "
            f"journal {recorder.bundle.path / 'chain.json'}"
        )
        return cls(
            recorder,
            client,
            deals=deals,
            every_records=every_records,
            every_seconds=every_seconds,
            timeout_s=timeout_s,
            log=log,
        )

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            size = self.recorder.log.size
            grew = size > self._settled_size
            due = size - self._settled_size >= self.every_records or (
                time.monotonic() - self._last >= self.every_seconds
            )
            if grew and due:
                self._settle(final=False)

    def _settle(self, *, final: bool) -> SettleResult | None:
        self._last = time.monotonic()
        try:
            result = settle(
                self.recorder.bundle,
                self.client,
                deals=self.deals,
                deadline=time.monotonic() + self.timeout_s,
            )
        except PoxError as exc:
            self.log.warning(f"PoX: chain settlement failed: {exc}")
            return None
        if result.error is None:
            self._settled_size = result.anchored_size or self._settled_size
        elif not final:
            self.log.warning(f"PoX: intermediate anchoring pending: {result.error}")
        return result

    def finish(self) -> None:
        """Stop the background thread and settle the final checkpoint."""
        self._stop.set()
        self._thread.join()
        result = self._settle(final=True)
        run_id = self.recorder.run_id
        if result is not None and result.error is None:
            self.log.info(
                f"PoX: run {run_id} anchored on {self.client.profile.name}: "
                f"{result.sent} transactions ({result.gas_used:,} gas), {result.noop} already "
                f"done; `pox show {run_id}` lists them"
            )
        else:
            reason = result.error if result is not None else "see the warning above"
            self.log.warning(
                f"PoX: run {run_id} is recorded but its anchoring is pending ({reason}); "
                f"finish it with `pox anchor {run_id}` when the chain is reachable"
            )
