"""What the process and the container runner share: which machine runs what, where it last listened, and
telling the emulated state when a machine's run ends by itself (a crash is not a stop)."""

from __future__ import annotations

import threading
from typing import Any, Generic, Protocol, TypeVar

from tests.tools.fly_emulator.state import FlyState, Hooks, MachineRec


class Run(Protocol):
    port: int
    stopping: bool  # set when the emulator ends the run: its exit is then not reported as the machine's own


R = TypeVar("R", bound=Run)


class MachineRunner(Hooks, Generic[R]):
    """The bookkeeping of a runner; subclasses start, wait for and stop their kind of run."""

    def __init__(self, state_ref: list[FlyState], stop_grace_s: float) -> None:
        self._state_ref = state_ref  # filled in once the FlyState that owns this runner exists
        self.stop_grace_s = stop_grace_s
        self._lock = threading.Lock()
        self._running: dict[str, R] = {}
        self._last: dict[str, dict[str, Any]] = {}  # machine id -> where it last listened (for reports)

    def _wait(self, run: R) -> int:
        """Block until the run has ended for good; its exit code."""
        raise NotImplementedError

    @staticmethod
    def _describe(run: R) -> dict[str, Any]:
        raise NotImplementedError

    def _started(self, m: MachineRec, run: R, thread_name: str) -> None:
        with self._lock:
            self._running[m.id] = run
            self._last[m.id] = self._describe(run)
        threading.Thread(target=self._watch, args=(m, run), daemon=True, name=thread_name).start()

    def _watch(self, m: MachineRec, run: R) -> None:
        code = self._wait(run)
        with self._lock:
            if self._running.get(m.id) is run:
                del self._running[m.id]
            if m.id in self._last:
                self._last[m.id]["exit_code"] = code
        if not run.stopping and self._state_ref:
            self._state_ref[0].process_exited(m, code)

    def _take(self, machine_id: str) -> R | None:
        """The machine's run, no longer counted as running and marked as stopped by the emulator."""
        with self._lock:
            run = self._running.pop(machine_id, None)
        if run is not None:
            run.stopping = True
        return run

    def _running_ids(self) -> list[str]:
        with self._lock:
            return list(self._running)

    def report(self, machine_id: str) -> dict[str, Any] | None:
        with self._lock:
            info = self._last.get(machine_id)
            if info is None:
                return None
            return {**info, "running": machine_id in self._running}
