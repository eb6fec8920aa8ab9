"""Which machine and volume states mean "gone": one answer for the client, the providers and refresh."""

from __future__ import annotations

import pytest

from components.fly.models import Machine, Volume, machine_gone, volume_gone
from components.providers.app import foreign_machines


@pytest.mark.parametrize(
    ("state", "gone"),
    [("destroyed", True), ("destroying", True), ("started", False), ("stopped", False), ("replacing", False)],
)
def test_a_machine_being_destroyed_counts_as_gone(state, gone):
    assert machine_gone(state) is gone
    assert Machine(id="m1", state=state).gone is gone


@pytest.mark.parametrize(
    ("state", "live"),
    [("created", True), ("scheduling_destroy", False), ("pending_destroy", False), ("destroyed", False)],
)
def test_a_volume_on_its_way_out_is_not_live(state, live):
    assert Volume(id="vol_1", state=state).live is live
    assert volume_gone(state) is not live


def test_an_app_whose_foreign_machines_are_all_being_destroyed_has_none_left():
    machines = [
        {"id": "m1", "name": "web", "state": "destroying", "config": {"metadata": {}}},
        {"id": "m2", "name": "worker", "state": "started", "config": {"metadata": {}}},
    ]
    assert foreign_machines(machines, "dev") == ["worker (m2)"]
