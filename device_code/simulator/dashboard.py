"""The fleet dashboard, drawn offline from a simulator run (build/demo/dashboard.png).

The panels show what the CloudWatch dashboard's Logs Insights widgets read (infra/monitoring.py), and
their data goes the same way as in the cloud: every `update/documents` message of the synced shadows is
run through the IoT rules' SQL as synthesized in the template (infra/iot_sql.py), and each panel plots a
field of the resulting records (infra/shadow_records.py) per device. Time is the simulator's clock. The
alarm panel applies the silence window of the deployed alarm to each device's readings, scaled to the
simulator's one reading per replayed hour, the model-fault condition to its statuses and the drifting
condition to the drift verdicts its rain shadow reported; connectivity
and deployment health come from AWS IoT and EventBridge in the cloud and are not simulated.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from statistics import median
from typing import Any

from device_code import config as env
from device_code.drift import DRIFTING
from infra import fleet_index as fx
from infra import shadow_records as sr
from infra.iot_sql import TopicRule
from infra.synthesized import SynthesizedStack

from .pubsub import topic_matches

DASHBOARD_FILE = "dashboard.png"
Series = dict[str, list[tuple[datetime, float]]]  # device (or device/status) -> points (a drift verdict: 1 drifting)
Segments = dict[str, list[tuple[datetime, datetime, bool]]]  # device -> (start, end, in alarm)
# Each weather record carries one value of each reading: counting the temperatures counts readings.
READINGS = sr.WEATHER_READINGS.fields[0][0]
NO_PREDICTION = "NoPrediction"


@dataclass
class ShadowDocuments:
    """Every update/documents message of the synced shadows on the simulated core, with the time of
    the simulator's clock (what the cloud would receive with real-time sync)."""

    clock: Any
    recorded: list[tuple[str, dict, int]] = field(default_factory=list)

    @classmethod
    def attach(cls, simulation) -> "ShadowDocuments":
        documents = cls(simulation.clock)
        simulation.greengrass.bus.tap(documents.observe)
        return documents

    def observe(self, topic: str, message: dict, published_at: float) -> None:
        if any(topic_matches(rule.topic_filter, topic) for rule in sr.SHADOW_RULES):
            self.recorded.append((topic, message, int(self.clock.now().timestamp() * 1000)))


@dataclass
class Panels:
    metrics: dict[str, Series]
    statuses: dict[tuple[str, str], int]
    silent_after_readings: float
    alarms: dict[str, Segments]


def metrics_of(recorded: list[tuple[str, dict, int]], stack: SynthesizedStack) -> dict[str, Series]:
    """field -> device -> points, from every record the rules write; a status record also counts one
    NoPrediction under device/status."""
    rules = [TopicRule(payload["Sql"]) for payload in stack.topic_rules().values()]
    metrics: dict[str, Series] = defaultdict(lambda: defaultdict(list))
    for topic, document, at_ms in recorded:
        moment = datetime.fromtimestamp(at_ms / 1000, tz=timezone.utc)
        for rule in rules:
            record = rule.evaluate(topic, document, at_ms)
            if record is None:
                continue
            thing = record[sr.THING]
            for name, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    metrics[name][thing].append((moment, float(value)))
            if sr.DRIFT in record:
                metrics[sr.DRIFT][thing].append((moment, float(record[sr.DRIFT] == DRIFTING)))
            if sr.STATUS in record:
                metrics[NO_PREDICTION][f"{thing}/{record[sr.STATUS]}"].append((moment, 1.0))
            elif "Probability" in record:
                # A prediction replaces the status in the rain shadow: the fleet metric stops counting a fault.
                metrics["ModelFault"][thing].append((moment, 0.0))
    return metrics


def silence_in_readings(stack: SynthesizedStack) -> float:
    """The silence alarm's window counted in sample intervals of the deployed configuration."""
    (alarm,) = [p for p in stack.of_type("AWS::CloudWatch::Alarm").values()
                if p.get("Namespace") == fx.NAMESPACE and str(p.get("MetricName")).endswith(f"-{fx.SILENT.purpose}")]
    window_s = alarm["EvaluationPeriods"] * alarm["Period"]
    sample_s = min(float(c.environment[env.SAMPLE_INTERVAL_S]) for c in stack.lambda_components().values()
                   if env.SAMPLE_INTERVAL_S in c.environment)
    return window_s / sample_s


def panels(recorded: list[tuple[str, dict, int]], stack: SynthesizedStack) -> Panels:
    metrics = metrics_of(recorded, stack)
    statuses = {tuple(key.split("/", 1)): len(points) for key, points in metrics.get(NO_PREDICTION, {}).items()}
    silent_after = silence_in_readings(stack)
    end = max((datetime.fromtimestamp(at_ms / 1000, tz=timezone.utc) for _, _, at_ms in recorded), default=None)
    alarms: dict[str, Segments] = {"device silent": {}, "model fault": {}, "drifting": {}}
    for device, points in metrics.get(READINGS, {}).items():
        moments = [moment for moment, _ in points]
        limit = silent_after * median([(b - a).total_seconds() for a, b in zip(moments, moments[1:])] or [0.0])
        segments = []
        for start, stop in zip(moments, moments[1:]):
            # Silent once no reading came for the whole window, until the next one arrives.
            alarm_at = start + timedelta(seconds=limit)
            segments += [(start, alarm_at, False), (alarm_at, stop, True)] if alarm_at < stop else [(start, stop, False)]
        alarms["device silent"][device] = segments
    for alarm, metric in (("model fault", "ModelFault"), ("drifting", sr.DRIFT)):
        for device, points in metrics.get(metric, {}).items():
            # A device's state in the index holds until its next rain shadow update.
            bounds = [moment for moment, _ in points][1:] + [end]
            alarms[alarm][device] = [(moment, stop, value >= 1) for (moment, value), stop in zip(points, bounds)]
    return Panels(metrics, statuses, silent_after, alarms)


def render(recorded: list[tuple[str, dict, int]], stack: SynthesizedStack, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = panels(recorded, stack)
    fig, axes = plt.subplots(2, 4, figsize=(18, 7.5), sharex=False)
    line_panels = [("Temperature", "°C"), ("Humidity", "%RH"), ("Pressure", "hPa")]
    for ax, (metric, unit) in zip(axes[0], line_panels):
        for device, points in data.metrics.get(metric, {}).items():
            ax.plot(*zip(*points), label=device)
        ax.set_title(metric)
        ax.set_ylabel(unit)
    ax = axes[0][3]
    for device, points in data.metrics.get(READINGS, {}).items():
        ax.plot([moment for moment, _ in points], range(1, len(points) + 1), label=device)
    ax.set_title("Readings received (cumulative)")
    ax = axes[1][0]
    for device, points in data.metrics.get("Probability", {}).items():
        ax.plot(*zip(*points), marker=".", label=f"{device} P(rain)")
    for device, points in data.metrics.get("Threshold", {}).items():
        ax.step(*zip(*points), where="post", linestyle="--", color="grey", label=f"{device} threshold")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("P(rain) and decision threshold")
    ax = axes[1][1]
    for device, points in data.metrics.get(sr.RAINING, {}).items():
        ax.step(*zip(*points), where="post", label=device)
    ax.set_ylim(-0.1, 1.1)
    ax.set_title("Raining (1) or dry (0)")
    ax = axes[1][2]
    if data.statuses:
        ax.bar([f"{device}\n{status}" for device, status in data.statuses], list(data.statuses.values()),
               color="tab:orange")
    else:
        ax.text(0.5, 0.5, "every reading got a prediction", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_title("No prediction, by status (count)")
    ax = axes[1][3]
    rows = [(alarm, device, segments) for alarm, devices in data.alarms.items()
            for device, segments in devices.items()]
    for index, (_, _, segments) in enumerate(rows):
        for start, stop, in_alarm in segments:
            ax.barh(index, (stop - start).total_seconds() / 86400, left=start, height=0.6,
                    color="tab:red" if in_alarm else "tab:green")
    ax.set_yticks(range(len(rows)), [f"{alarm}\n{device}" for alarm, device, _ in rows])
    ax.set_title(f"Alarms (silent: no reading for {data.silent_after_readings:g} intervals)")
    for ax in axes.flat:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        ax.tick_params(axis="x", labelrotation=30, labelsize="small")
    fig.suptitle("rainedge fleet dashboard, drawn from the simulator run (deployment health: not simulated)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
