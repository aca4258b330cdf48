"""The contract (core/contract.py): one table of requests drives the in-process control,
the remote control, the service's request handling and the lock-step packet; one rule
checks a learning rate; RunView folds events into the run's state once."""

from __future__ import annotations

import inspect
import math

import pytest

from tui_gan.core import arguments, contract
from tui_gan.core import events as ev
from tui_gan.core.arguments import RequestError
from tui_gan.core.contract import REQUESTS, LrChange, Requests, RunControl
from tui_gan.core.control import Control
from tui_gan.core.runview import RunView
from tui_gan.service.client import RemoteControl
from tui_gan.service.protocol import ProtocolError
from tui_gan.service.requests import apply_request, request


class Wire:
    """A stand-in connection: what a RemoteControl sends."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, header: dict) -> bool:
        self.sent.append(header)
        return True


def test_every_request_in_the_table_is_a_method_of_the_control_protocol():
    methods = {name for name, _ in inspect.getmembers(RunControl, inspect.isfunction)}
    named = {"auto_pause": "set_pause_at_epoch_end"}
    for op in REQUESTS:
        assert named.get(op, op) in methods, op
    for spec in REQUESTS.values():
        assert spec.field in {f for f in Requests.__dataclass_fields__}, spec.op
        assert spec.description and spec.kind in ("state", "once")


@pytest.mark.parametrize("make", [Control, lambda: RemoteControl(Wire(), RunView())])
def test_both_controls_implement_the_protocol(make):
    control: RunControl = make()
    for name, _ in inspect.getmembers(RunControl, inspect.isfunction):
        assert callable(getattr(control, name)), name


BAD_RATES = [0, -1e-4, -math.inf, math.nan, math.inf, True, "2e-4", None]


@pytest.mark.parametrize("value", BAD_RATES[:-1])
def test_one_rule_for_a_learning_rate_wherever_it_comes_from(value):
    """The in-process control, the remote control and the service refuse the same values."""
    with pytest.raises(RequestError):
        arguments.learning_rate(value)
    with pytest.raises(RequestError):
        Control().set_lr(lr_g=value)
    wire = Wire()
    with pytest.raises(RequestError):
        RemoteControl(wire, RunView()).set_lr(lr_d=value)
    assert wire.sent == []  # refused before anything is sent
    with pytest.raises(ProtocolError):
        apply_request(Control(), request("set_lr", lr_g=value))


@pytest.mark.parametrize("value", [1e-6, 0.5, 5])
def test_a_positive_rate_is_taken_everywhere(value):
    """Even 5: a huge rate is how the failure modes are provoked on purpose (docs/runs.md)."""
    control, wire = Control(), Wire()
    control.set_lr(lr_g=value, now=True)
    RemoteControl(wire, RunView()).set_lr(lr_g=value, now=True)
    served = Control()
    apply_request(served, wire.sent[0])
    assert control.take_requests() == served.take_requests() == Requests(lr=LrChange(float(value), None, True))


@pytest.mark.parametrize("header", [
    request("nonsense"), request("snapshot", extra=1), request("auto_pause"), request("auto_pause", on="yes"),
    request("stop", reason="\x1b[2J"), request("stop", reason=""), request("reset_lr", now=1),
    request("set_lr"), {"kind": "request", "op": 3, "args": {}}, {"kind": "request", "op": "pause", "args": []},
])
def test_the_service_refuses_what_the_table_does_not_take(header):
    control = Control()
    with pytest.raises(ProtocolError):
        apply_request(control, header)
    assert control.take_requests() == Requests()


def test_each_request_sent_remotely_is_the_one_submitted_locally():
    """Every method of the control, over the wire and served, records what the in-process
    control records."""
    calls = [("pause", ()), ("resume", ()), ("stop", ("tui-gan stop",)), ("snapshot", ()), ("export", ()),
             ("measure", ()), ("interpolate", ()), ("show_average", (True,)), ("set_pause_at_epoch_end", (True,)),
             ("set_lr", (1e-4, None, True)), ("reset_lr", (True,))]
    for name, args in calls:
        local, wire = Control(), Wire()
        getattr(local, name)(*args)
        getattr(RemoteControl(wire, RunView()), name)(*args)
        served = Control()
        for header in wire.sent:
            apply_request(served, header)
        assert served.take_requests() == local.take_requests(), name


def test_states_stay_and_one_shots_are_taken_once():
    control = Control()
    control.pause("diverged")
    control.set_pause_at_epoch_end(True)
    control.reset_lr(now=False)
    control.stop("first")
    control.stop("second")
    taken = control.take_requests()
    assert taken.reset_lr is False and taken.stop == "first" and taken.pause == "diverged" and taken.auto_pause
    assert control.take_requests() == Requests(pause="diverged", stop="first", auto_pause=True)


def test_the_lock_step_packet_carries_only_what_changes_the_training():
    sent = Requests(pause="requested", stop="tui-gan stop", auto_pause=True, snapshot=True, export=True,
                    lr=LrChange(1e-4, None, True), reset_lr=False)
    packet = contract.pack(sent)
    assert len(packet) == contract.PACKET_WIDTH
    got = contract.unpack(packet)
    assert got == Requests(pause="requested", stop="stopped by rank 0", lr=LrChange(1e-4, None, True),
                           reset_lr=False)
    assert contract.unpack(contract.pack(Requests())) == Requests()


def test_the_latest_value_rule():
    key = contract.latest_value_key
    progress = ev.Progress(1, 0, 1, 10, 10, 1, 1, 0.5, 0.5, 0.5, 10.0, None, 1.0, 2e-4, 2e-4)
    assert key(progress) == "progress" and key(ev.Samples(1, 0, None)) == "Samples"
    assert key(ev.Loading("x")) == "Loading" and key(ev.Paused(1)) is None


# ----------------------------------------------------------------------------- the run view


def started(step: int = 0) -> ev.Started:
    config = {"epochs": 2, "ema": False, "image_size": 16, "batch_size": 8, "ngf": 8, "ndf": 8}
    return ev.Started("cpu", "cpu", config, "builtin", 100, 10, 20, "runs/x", step, 0, None,
                      [], 2e-4, 2e-4)


def test_the_view_folds_the_run_and_its_end():
    view = RunView()
    view.apply_all([ev.Loading("decoding", 1, 2), started(), ev.Paused(5, "epoch end"), ev.Resumed(5),
                    ev.Quality(10, 1, 30.0, 1.0, [30.0], 8, 0.1), ev.Quality(20, 2, 20.0, 1.0, [20.0], 8, 0.1),
                    ev.Quality(21, 2, 25.0, 1.0, [25.0], 8, 0.1),
                    ev.Finished("completed", 20, 2, 10.0, 55.0, "last.pt", None)])
    assert view.loading is None and view.paused is None and view.pause_changes == 2
    assert [row.swd for row in view.history] == [30.0, 20.0, 25.0] and view.best_swd == 20.0
    outcome = view.outcome()
    assert (outcome.state, outcome.reason, outcome.step, outcome.epoch, outcome.images_per_sec) == \
        ("finished", "completed", 20, 2, 55.0)
    assert RunView().outcome().state == "stopped"
    failed = RunView()
    failed.apply(ev.Error("out of memory", None))
    assert failed.outcome().state == "failed" and failed.outcome().message == "out of memory"


def test_a_viewer_restores_the_services_view_from_its_snapshot():
    service = RunView(log_lines=50)
    service.apply_all([started(), ev.LrPending(1e-5, 1e-5), ev.AutoPauseSet(True), ev.Paused(3, "requested")])
    viewer = RunView()
    viewer.apply(service.attached(viewers=3))
    assert viewer.paused == "requested" and viewer.auto_pause and viewer.viewers == 3
    assert viewer.lr_pending == ev.LrPending(1e-5, 1e-5) and viewer.started.run_dir == "runs/x"


def test_the_remote_controls_pause_follows_the_run_once_it_answers():
    view, wire = RunView(), Wire()
    control = RemoteControl(wire, view)
    view.apply(started())
    assert control.toggle_pause() and control.paused  # asked; the run has not answered yet
    assert not control.toggle_pause() and not control.paused  # a second press takes it back
    view.apply(ev.Paused(4))  # the run answers the first
    assert control.paused
    view.apply(ev.Resumed(4))
    assert not control.paused
    assert [h["op"] for h in wire.sent] == ["pause", "resume"]
