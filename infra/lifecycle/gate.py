"""The promotion gate: may the canary ring's candidate model go to the fleet ring?

Pure: `make promote` (infra/lifecycle/promote.py) gathers the evidence from AWS, the rollout simulator
(device_code/simulator/rollout.py) from its virtual fleet; both decide with `decide`. A refusal names
the first device and check that failed, in one line.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from infra.config import RainEdgeConfig

# What a device's effective deployment says when its ring's deployment applied (ListEffectiveDeployments
# coreDeviceExecutionStatus).
SUCCEEDED = "SUCCEEDED"


@dataclass(frozen=True)
class DeviceEvidence:
    """What the cloud knows of one device over the bake window."""

    thing_name: str
    model_version: str | None  # the rain shadow's model_version: the model it answers with now
    deployment_status: str | None  # its execution of its ring's deployment, None when it has none
    failing: tuple[str, ...] = ()  # the alarm conditions it matches now (fleet metric purposes)
    updates: int = 0  # rain shadow updates in the window: predictions and statuses saying why there is none
    predictions: int = 0  # of which predictions
    raining: int = 0  # of which said rain


@dataclass(frozen=True)
class GateSettings:
    bake_s: float
    # How much worse than the fleet's a canary device's share of predictions and its prediction rate may be.
    margin: float
    # How far outside the range of the fleet ring's devices' shares of rain predictions a canary device's share
    # may be, over the same window: an inverted or degenerate model answers "ok" at the usual rate, but about
    # the wrong weather. The range, not the fleet's mean: stations in a wetter place rain more often.
    rain_share_margin: float

    @classmethod
    def of(cls, config: RainEdgeConfig) -> GateSettings:
        return cls(bake_s=config.bake_minutes * 60, margin=config.promotion_margin,
                   rain_share_margin=config.rain_share_margin)


@dataclass(frozen=True)
class Decision:
    candidate: str
    promoted: str
    promote: bool
    reason: str
    canary: tuple[DeviceEvidence, ...] = field(default=())
    fleet_prediction_share: float | None = None
    fleet_predictions_per_device: float | None = None
    fleet_rain_shares: tuple[float, float] | None = None  # the lowest and highest of the fleet's devices

    def line(self) -> str:
        verdict = "promote" if self.promote else "refused"
        return f"{verdict}: {self.candidate} (fleet ring on {self.promoted}): {self.reason}"

    def record(self) -> dict:
        return asdict(self)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class Baseline:
    """The fleet ring's own numbers over the window."""

    prediction_share: float | None
    predictions_per_device: float | None
    rain_shares: tuple[float, float] | None


def _fleet_baseline(fleet: list[DeviceEvidence]) -> Baseline:
    updates = sum(device.updates for device in fleet)
    predictions = sum(device.predictions for device in fleet)
    shares = [device.raining / device.predictions for device in fleet if device.predictions]
    return Baseline(_share(predictions, updates), predictions / len(fleet) if fleet else None,
                    (min(shares), max(shares)) if shares else None)


def _device_problem(device: DeviceEvidence, candidate: str, settings: GateSettings, baseline: Baseline) -> str | None:
    name = device.thing_name
    if device.deployment_status != SUCCEEDED:
        return f"{name}: canary deployment {device.deployment_status or 'not received'}, not {SUCCEEDED}"
    if device.model_version != candidate:
        return f"{name}: answers with model {device.model_version or 'none'}, not the candidate"
    if device.failing:
        return f"{name}: in alarm ({', '.join(device.failing)})"
    share = _share(device.predictions, device.updates)
    if share is None:
        return f"{name}: no rain shadow update in the bake window"
    if baseline.prediction_share is not None and share < baseline.prediction_share - settings.margin:
        return f"{name}: {share:.0%} of its updates are predictions, the fleet's {baseline.prediction_share:.0%}"
    per_device = baseline.predictions_per_device
    if per_device is not None and device.predictions < per_device * (1 - settings.margin):
        return f"{name}: {device.predictions} predictions in the bake window, the fleet's {per_device:.1f} a device"
    rain = _share(device.raining, device.predictions)
    if baseline.rain_shares is not None and rain is not None:
        low, high = baseline.rain_shares
        if not low - settings.rain_share_margin <= rain <= high + settings.rain_share_margin:
            return f"{name}: predicts rain {rain:.0%} of the time, the fleet's devices {low:.0%} to {high:.0%}"
    return None


def decide(*, candidate: str, promoted: str, canary: list[DeviceEvidence], fleet: list[DeviceEvidence],
           baked_s: float, settings: GateSettings) -> Decision:
    """Promote only when the bake window is over and every canary device passes every check against the fleet
    ring's own numbers over the same window."""
    baseline = _fleet_baseline(fleet)
    evidence = dict(candidate=candidate, promoted=promoted, canary=tuple(canary),
                    fleet_prediction_share=baseline.prediction_share,
                    fleet_predictions_per_device=baseline.predictions_per_device, fleet_rain_shares=baseline.rain_shares)
    if candidate == promoted:
        return Decision(promote=False, reason="the candidate is already the promoted model", **evidence)
    if baked_s < settings.bake_s:
        left_min = (settings.bake_s - baked_s) / 60
        return Decision(promote=False, reason=f"the bake window has {left_min:.0f} min left", **evidence)
    if not canary:
        return Decision(promote=False, reason="the canary ring has no device", **evidence)
    for device in canary:
        problem = _device_problem(device, candidate, settings, baseline)
        if problem:
            return Decision(promote=False, reason=problem, **evidence)
    return Decision(promote=True, reason=f"all {len(canary)} canary devices healthy after the bake window",
                    **evidence)
