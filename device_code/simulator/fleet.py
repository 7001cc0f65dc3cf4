"""A simulated fleet: N cores that joined by fleet provisioning, in one process, syncing to one cloud.

Each core is provisioned as AWS IoT would do it from the synthesized template: the pre-provisioning
hook (its real code and settings) accepts its serial number, the provisioning template gives its
thing name and policy. Each core then runs the deployment on its own local Greengrass, chip and
clock, replaying its own weather: the three airports in turn, each device a later window of the
held-out period.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from .cloud import MotoCloud
from .core import SimulatedCore
from .replay import Observation, load_test_period
from .simulation import EdgeSimulation, SimulationSettings

ORIGINS = ("EWR", "JFK", "LGA")
# How long the whole fleet's shadows may take to reach the cloud after the functions stop.
SYNC_TIMEOUT_S = 60.0


def fleet_serial(index: int) -> str:
    """A Raspberry Pi-like serial number: 16 hex digits."""
    return f"{0x1000000000000000 + index:016x}"


def fleet_windows(devices: int, hours: int) -> list[tuple[str, list[Observation]]]:
    """(airport, hours of observations) per device: airports in turn, consecutive windows per airport."""
    periods = {origin: load_test_period(origin) for origin in ORIGINS}
    windows = []
    for index in range(devices):
        origin = ORIGINS[index % len(ORIGINS)]
        rows = periods[origin]
        start = (index // len(ORIGINS)) * hours % (len(rows) - hours + 1)
        windows.append((origin, rows[start:start + hours]))
    return windows


@dataclass
class FleetMember:
    origin: str
    sim: EdgeSimulation
    matches: dict[str, bool] | None = None


@dataclass
class FleetRun:
    members: list[FleetMember]
    wall_s: float
    cpu_s: float

    def healthy(self) -> bool:
        return all(member.sim.healthy(member.matches or {}) for member in self.members)

    def lines(self) -> list[str]:
        hours = sum(len(member.sim.steps) for member in self.members)
        predicted = sum(member.sim.predicted_steps() for member in self.members)
        lines = []
        for member in self.members:
            sim = member.sim
            tp, fp, fn, tn = sim.confusion()
            done = max(1, sim.predicted_steps())
            in_sync = "yes" if member.matches and all(member.matches.values()) else "NO"
            lines.append(f"{sim.thing_name}  {member.origin} from {sim.steps[0].observation.time:%Y-%m-%d %H:%M}  "
                         f"predictions {sim.predicted_steps()}/{len(sim.steps)}  accuracy {(tp + tn) / done:.3f}  "
                         f"cloud shadows equal local: {in_sync}")
            lines += [f"  IPC refused: {call.operation} on {call.resource}" for call in dict.fromkeys(
                sim.core.refusals())]
        lines.append(f"fleet of {len(self.members)} provisioned cores: {predicted}/{hours} hours predicted in "
                     f"{self.wall_s:.1f} s; CPU {1000 * self.cpu_s / hours:.2f} ms per device per simulated hour "
                     "(the whole process, moto cloud included)")
        return lines


def run_fleet(stack, settings: SimulationSettings, devices: int, hours: int, cloud: MotoCloud,
              timeout_s: float) -> FleetRun:
    """Provision `devices` cores, run them all for `hours` replayed hours, let the cloud catch up."""
    members = []
    for index, (origin, window) in enumerate(fleet_windows(devices, hours)):
        core = SimulatedCore.provisioned(stack, fleet_serial(index), thing_exists=cloud.thing_exists)
        cloud.create_thing(core.thing_name)
        members.append(FleetMember(origin, EdgeSimulation(window, settings, core, cloud.client("iot-data"))))
    began_wall, began_cpu = time.perf_counter(), time.process_time()
    try:
        for member in members:
            member.sim.start()
        deadline = time.monotonic() + timeout_s
        for member in members:
            member.sim.wait_for_predictions(hours, max(0.0, deadline - time.monotonic()))
    finally:
        # All functions first, then every core's sync against one deadline: the cores catch up together.
        for member in members:
            member.sim.stop_functions()
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        synced = [member.sim.finish_sync(max(0.0, deadline - time.monotonic())) for member in members]
    run = FleetRun(members, time.perf_counter() - began_wall, time.process_time() - began_cpu)
    for member, in_sync in zip(members, synced):
        member.matches = member.sim.cloud_matches(cloud, in_sync)
    return run
