"""The engine's step executor: turns each registration into check / diff / create / update /
replace / same against the saved state, calling the real dynamic providers; deletes what the
program no longer registers; and `destroy`. State is saved after every step that changed the
world, so a failure keeps what succeeded.

Registrations arrive on the SDK's executor threads; like the engine, steps of independent resources
run concurrently, at most `parallel` provider calls at once (the dynamic provider host serves
4 gRPC workers). `parallel=1` makes the order of independent steps deterministic."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .mocked import simulate
from .plan import CREATE, DELETE, REPLACE, SAME, UPDATE, decide
from .providers import PROVIDER_KEY, Providers, is_dynamic
from .state import Entry, State, StateFile
from .values import Secret, from_provider, mark_secret_keys, reveal, secret_keys

T = TypeVar("T")


class DeploymentError(Exception):
    """A step failed; the message names the resource and carries the provider's error."""


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    inputs: dict[str, Any]
    additional_secret_outputs: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)
    ignore_changes: list[str] = field(default_factory=list)
    delete_before_replace: bool = False


@dataclass(frozen=True)
class Operation:
    type: str
    name: str
    op: str
    urn: str


DEFAULT_PARALLEL = 4


class Deployment:
    def __init__(
        self, state: State, store: StateFile, providers: Providers, preview: bool, parallel: int = DEFAULT_PARALLEL
    ):
        self.state = state
        self.store = store
        self.providers = providers
        self.preview = preview
        self.operations: list[Operation] = []
        self.error: str | None = None
        self._old = state.live()
        self._seen: list[str] = []
        self._replaced_now: set[int] = set()
        self._lock = threading.RLock()  # state, operations, error
        self._slots = threading.BoundedSemaphore(max(1, parallel))  # concurrent provider calls

    # -- registrations (called by the mock monitor, one at a time) ---------------------------

    def register(self, reg: Registration) -> tuple[str, dict[str, Any]]:
        label = _label(reg.type, reg.name)
        with self._lock:
            if self.error is not None:
                raise DeploymentError(f"{label}: not attempted after an earlier error")
            if reg.urn in self._seen:
                self.error = f"{label}: duplicate resource URN {reg.urn}"
                raise DeploymentError(self.error)
            self._seen.append(reg.urn)
        try:
            return self._register(reg, self._old.get(reg.urn))
        except DeploymentError as exc:
            with self._lock:
                self.error = self.error or str(exc)
            raise
        except Exception as exc:  # a harness or state failure: still name the resource
            message = f"{label}: {type(exc).__name__}: {exc}"
            with self._lock:
                self.error = self.error or message
            raise DeploymentError(message) from exc

    def _register(self, reg: Registration, old: Entry | None) -> tuple[str, dict[str, Any]]:
        inputs = dict(reg.inputs)
        if old is not None:  # ignore_changes: keep the deployed value of those (top-level) inputs
            for key in reg.ignore_changes:
                if key in old.inputs:
                    inputs[key] = old.inputs[key]
                else:
                    inputs.pop(key, None)
        blob = reveal(inputs.pop(PROVIDER_KEY, None))
        if is_dynamic(reg.type) and isinstance(blob, str):
            return self._dynamic(reg, old, inputs, blob)
        sim = simulate(reg.type, reg.name, reg.custom, inputs, old, self.preview)
        outputs = mark_secret_keys(sim.outputs, set(reg.additional_secret_outputs) | secret_keys(inputs))
        self._record(reg.type, reg.name, sim.op, reg.urn)
        if not self.preview:
            self._commit(
                Entry(reg.urn, reg.type, reg.name, reg.custom, sim.id, reg.parent, inputs, outputs), old, keep_old=False
            )
        return sim.id, outputs

    def _dynamic(
        self, reg: Registration, old: Entry | None, inputs: dict[str, Any], blob: str
    ) -> tuple[str, dict[str, Any]]:
        label = _label(reg.type, reg.name)
        provider = self._call(label, "loading the provider", lambda: self.providers.get(blob))
        olds = {**reveal(old.inputs), PROVIDER_KEY: old.provider} if old else {}
        check = self._call(label, "check", lambda: provider.check(olds, {**reveal(inputs), PROVIDER_KEY: blob}))
        if check.failures:
            reasons = "; ".join(f"{f.property}: {f.reason}" for f in check.failures)
            raise DeploymentError(f"{label}: check failed: {reasons}")
        checked = {k: v for k, v in (check.inputs or {}).items() if k != PROVIDER_KEY}
        checked = mark_secret_keys(
            self._call(label, "check", lambda: from_provider(checked, "inputs")), secret_keys(inputs)
        )
        news = {**reveal(checked), PROVIDER_KEY: blob}
        diff = old_outputs = None
        if old is not None:
            old_outputs = {**reveal(old.outputs), PROVIDER_KEY: old.provider}
            diff = self._call(label, "diff", lambda: provider.diff(old.id, old_outputs, news))
        decision = decide(
            {**reveal(old.inputs), PROVIDER_KEY: old.provider} if old else None,
            news,
            diff,
            reg.replace_on_changes,
            reg.delete_before_replace,
        )
        secret_outs = set(reg.additional_secret_outputs) | secret_keys(checked)

        if decision.op == SAME:
            assert old is not None
            if not self.preview:
                self._commit(_entry(reg, old.id, checked, old.outputs, blob), old, keep_old=False)
            self._record(reg.type, reg.name, SAME, reg.urn)
            return old.id, {**old.outputs, PROVIDER_KEY: Secret(blob)}
        if self.preview:
            self._record(reg.type, reg.name, decision.op, reg.urn)
            return (old.id if old and decision.op == UPDATE else ""), {**checked, PROVIDER_KEY: Secret(blob)}

        if decision.op == UPDATE:
            assert old is not None
            result = self._call(label, "update", lambda: provider.update(old.id, old_outputs, news))
            rid = old.id
        else:
            if old is not None and decision.delete_before_replace:
                self._delete(old, record=False)  # reported as the replace
                old = None
            result = self._call(label, "create", lambda: provider.create(news))
            rid = getattr(result, "id", None)
            if not isinstance(rid, str) or not rid:
                raise DeploymentError(f"{label}: create failed: the provider returned no id")
        outs = self._call(label, decision.op, lambda: from_provider(result.outs or {}, "outputs"))
        outs.pop(PROVIDER_KEY, None)
        outputs = mark_secret_keys(outs, secret_outs)
        self._commit(_entry(reg, rid, checked, outputs, blob), old, keep_old=decision.op == REPLACE)
        self._record(reg.type, reg.name, decision.op, reg.urn)  # only once it happened
        return rid, {**outputs, PROVIDER_KEY: Secret(blob)}

    # -- end of program, destroy -------------------------------------------------------------

    def finish(self, stack_outputs: dict[str, Any]) -> None:
        """After a successful program run: delete what it no longer registers (and old instances
        of replaced resources), dependents first, then keep state in this run's order."""
        seen = set(self._seen)
        doomed = [e for e in self.state.resources if e.delete or e.urn not in seen]
        for entry in reversed(doomed):
            if self.preview:
                self._record(entry.type, entry.name, DELETE, entry.urn)
            else:
                self._delete(entry, record=id(entry) not in self._replaced_now)
        if self.preview:
            return
        order = {urn: i for i, urn in enumerate(self._seen)}
        self.state.resources.sort(key=lambda e: order.get(e.urn, len(order)))
        self.state.outputs = stack_outputs
        self.store.save(self.state)

    def destroy(self) -> None:
        for entry in reversed(list(self.state.resources)):
            try:
                self._delete(entry)
            except DeploymentError as exc:
                self.error = str(exc)
                return
        self.state.outputs = {}
        self.store.save(self.state)

    # -- helpers ------------------------------------------------------------------------------

    def _delete(self, entry: Entry, record: bool = True) -> None:
        if entry.dynamic:
            label = _label(entry.type, entry.name)
            assert entry.provider is not None
            provider = self._call(label, "loading the provider", lambda: self.providers.get(entry.provider))
            props = {**reveal(entry.outputs), PROVIDER_KEY: entry.provider}
            self._call(label, "delete", lambda: provider.delete(entry.id, props))
        with self._lock:
            self.state.resources.remove(entry)
            self.store.save(self.state)
            if record:
                self._record(entry.type, entry.name, DELETE, entry.urn)

    def _commit(self, new: Entry, old: Entry | None, keep_old: bool) -> None:
        with self._lock:
            if old is None:
                self.state.resources.append(new)
            elif keep_old:
                old.delete = True
                self._replaced_now.add(id(old))
                self.state.resources.append(new)
            else:
                self.state.resources[self.state.resources.index(old)] = new
            self.store.save(self.state)

    def _record(self, type_: str, name: str, op: str, urn: str) -> None:
        assert op in (CREATE, UPDATE, REPLACE, SAME, DELETE)
        with self._lock:
            self.operations.append(Operation(type_, name, op, urn))

    def _call(self, label: str, step: str, fn: Callable[[], T]) -> T:
        """A provider call: bounded concurrency, and any failure named after the resource."""
        try:
            with self._slots:
                return fn()
        except DeploymentError:
            raise
        except Exception as exc:
            raise DeploymentError(f"{label}: {step} failed: {exc}") from exc


def _entry(reg: Registration, rid: str, inputs: dict[str, Any], outputs: dict[str, Any], blob: str) -> Entry:
    return Entry(reg.urn, reg.type, reg.name, True, rid, reg.parent, inputs, outputs, provider=blob)


def _label(type_: str, name: str) -> str:
    return f"{type_} '{name}'"
