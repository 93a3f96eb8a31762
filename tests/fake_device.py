"""A scripted fake device speaking TSP/1 (docs/protocol.md) over TCP, reached with pyserial's
``socket://`` URL exactly like QEMU's serial port, for the host's fault-injection tests.

It implements the commands the host sends (``name``, ``info``, ``db load`` and ``db stream``
with their data lines, ``db kept``, ``db use``, ``train``, ``eval``, ``results``, ``reset``,
``calib``) with the firmware's state rules (a reset selects the compiled-in set and forgets
the RAM set, except a finished stream's buffer; a failed load empties it; data lines outside
a load are dropped, other lines that start with a digit are unknown commands there; a stream
keeps its first ``cap`` samples), and injects faults at named points:

    connect            on connection
    cmd:<word>         when a command arrives, before it is answered (info, db, train, ...)
    db_line:<k>        after the k-th data line of a load
    stream:db          after a stream's `@db` record, before its `@dbclass` rows
    train:features     after `@phase name=features`
    train:epoch:<n>    after `@epoch n=<n>`
    train:eval         after `@eval when=before` and its `@class` records
    train:class:<when>:<k>  after `@class when=<when> class=<k>`

Faults (each fires once, at its point, on the `times`-th time the point is reached):

    reset        the device reboots: `@boot resets=<n+1>`, state fresh, the command dropped
    reset_lost   a reset that a finished stream's buffer does not survive either (its
                 check failed: `@boot db=0`)
    silence      nothing more is sent (the device still reads)
    close        the connection closes (link loss)
    corrupt      the next record goes out with a wrong CRC
    garbage      noise bytes and a line without CRC go out
    endless      `@epoch` records (valid, n counting up) until the link closes
    bad_value    the next `@epoch` has `cycles=lots`
    stop_reading the device stops reading (its receive buffer fills)
    garble_host  the next host line arrives with a bit flipped (the device cannot read it)
    omit         the next record is not sent at all (a firmware that leaves one out)
    flash_set    the device switches to the compiled-in set (a firmware losing its `db use`)
    lose_samples the RAM set loses half its samples

`sent` lists every valid record sent (payloads, in order); `received` every host line.
"""

from __future__ import annotations

import math
import re
import socket
import threading
import time
from dataclasses import dataclass

from tinysift.device.protocol import FrameError, frame, unframe

# ts_db_has_data_form: what the firmware drops outside a load (the rest of a failed one)
DATA_FORM = re.compile(r"[0-9]{1,3}:[0-9A-Fa-f]+")


@dataclass
class Fault:
    at: str
    action: str
    times: int = 1  # fires on this occurrence of the point


class FakeDevice(threading.Thread):
    def __init__(self, faults=(), *, classes: int = 2, flash: int = 20, capacity: int = 64,
                 sample_bytes: int = 64, model: str = "abc", test: int = 20,
                 boot: bool | str = True, source: str = "flash", ram: int = 0,
                 epoch_delay: float = 0.0, hold: threading.Event | None = None,
                 hz: int = 25_000_000, board: str = "qemu-mps2-an386",
                 counter: str = "systick-icount", marker=None, window_s: float = 0.0):
        super().__init__(daemon=True)
        # a tests/fake_joulescope.MarkerWire: the firmware's marker pin, high around each
        # measurement window of `train` as ts_marker drives it (features and the evaluation
        # for window_s, every epoch for epoch_delay), no record sent while it is high
        self.marker, self.window_s = marker, window_s
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"socket://127.0.0.1:{self.sock.getsockname()[1]}"
        self.faults = list(faults)
        self.seen: dict[str, int] = {}
        self.classes, self.flash, self.capacity = classes, flash, capacity
        self.sample_bytes, self.model, self.test = sample_bytes, model, test
        self.boot_on_connect, self.epoch_delay = boot, epoch_delay
        self.hold = hold  # set: epochs after the first wait for it (a run held mid-train)
        self.resets = 0
        self.hz = hz  # the counter's rate `@boot` and `@info` report (25 MHz: the MPS2's)
        # what `@boot board=` names (the host refuses another board's firmware) and the
        # counter `@boot` and `@info` name (a Pico: `timer`, at 1 MHz)
        self.board, self.counter = board, counter
        self.source, self.ram = source, ram  # a board left on a RAM set by an earlier session
        self.loading = 0
        self.loaded = 0
        self.labels: list[int] = []  # the RAM set's labels, in order
        self.stream: int | None = None  # the cap of the `db stream` in progress
        self.kept = 0  # a finished stream's buffer: survives a reset (`@boot db=`)
        self.last_train: list[str] = []
        self.sent: list[str] = []
        self.received: list[str] = []
        self.trained_on: list[int] = []  # the training set's size of every train run
        self.conn: socket.socket | None = None
        self.quiet = self.closed = self.deaf = False
        self._corrupt_next = self._bad_value_next = False
        self._garble_host_next = False  # the next host line arrives garbled
        self._omit_next = False  # the next record is not sent at all (a firmware bug)
        self.stop_event = threading.Event()
        self.start()

    # ---- sending ------------------------------------------------------------------------
    def send(self, payload: str) -> None:
        if self.quiet or self.closed:
            raise _Stop
        if self._omit_next:
            self._omit_next = False
            return
        data = frame(payload)
        if self._corrupt_next:
            self._corrupt_next = False
            data = data[:-3] + (b"0" if data[-3:-2] != b"0" else b"1") + data[-2:]
        else:
            self.sent.append(payload)
        try:
            self.conn.sendall(data)
        except OSError:
            self.closed = True
            raise _Stop from None

    def point(self, name: str) -> None:
        """An injection point: fire the faults due here."""
        self.seen[name] = self.seen.get(name, 0) + 1
        for fault in list(self.faults):
            if fault.at == name and fault.times == self.seen[name]:
                self.faults.remove(fault)
                self._fire(fault.action)

    def _fire(self, action: str) -> None:
        if action in ("reset", "reset_mid_line", "reset_lost"):
            if action == "reset_mid_line":  # cut inside a line: the @boot follows, no newline
                self.conn.sendall(b"@epoch n=9 loss=0.5 tra")
            if action == "reset_lost":
                self.kept = 0
            self.resets += 1
            self.source, self.ram, self.loading, self.last_train = "flash", self.kept, 0, []
            self.send(self._boot())
            raise _Abort
        if action == "silence":
            self.quiet = True
            raise _Stop
        if action == "close":
            self.closed = True
            self.conn.close()
            raise _Stop
        if action == "corrupt":
            self._corrupt_next = True
        elif action == "garble_host":
            self._garble_host_next = True
        elif action == "omit":
            self._omit_next = True
        elif action == "bad_value":
            self._bad_value_next = True
        elif action == "garbage":
            self.conn.sendall(b"\x00\xffnoise without newline" * 20 + b"\n@epoch n=1 *ZZZZ\n"
                              + b"boot rom banner\r\n")
        elif action == "endless":
            n = 1000
            while not self.stop_event.is_set():
                n += 1
                self.send(f"@epoch n={n} loss=0.5 train_acc=0.5 correct=1 samples=20 "
                          "cycles=2500000")
        elif action == "stop_reading":
            self.deaf = True
        elif action == "flash_set":
            self.source = "flash"
        elif action == "lose_samples":
            self.ram //= 2

    def _boot(self) -> str:
        return (f"@boot proto=1 fw=1 board={self.board} counter={self.counter} hz={self.hz} "
                f"resets={self.resets} model={self.model} db={self.kept}")

    # ---- the device ----------------------------------------------------------------------
    def run(self) -> None:
        self.sock.settimeout(30)
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        self.conn = conn
        try:
            self.point("connect")
            if self.boot_on_connect == "before":  # booted before the host opened the port
                pass
            elif self.boot_on_connect:
                self.send(self._boot())
            else:
                while not self.stop_event.is_set():  # valid records, never a @boot
                    self.send("@name name=not-booting")
                    time.sleep(0.002)
        except (_Stop, _Abort):
            pass
        serve_lines(conn, lambda: self.stop_event.is_set() or self.closed, self._on_line,
                    paused=lambda: self.deaf)

    def _on_line(self, line: bytes) -> None:
        try:
            self.on_line(line)
        except (_Stop, _Abort):
            pass

    def close(self) -> None:
        self.stop_event.set()
        self.sock.close()

    def on_line(self, line: bytes) -> None:
        if self._garble_host_next and line.strip():  # a bit flipped on the way in
            self._garble_host_next = False
            line = bytes([line[0] ^ 0x01]) + line[1:]
        try:
            payload = unframe(line, 100000)
        except FrameError:
            if line.strip():
                self._bad_line(103, "bad_crc")
            return
        self.received.append(payload)
        # in a load any line that starts with a digit is a data line; outside one only the
        # data line form is (dropped), anything else a command line (`5train`: unknown)
        if payload[:1].isdigit() and (self.loading or DATA_FORM.fullmatch(payload)):
            self._data_line(payload)
            return
        if self.loading:
            self._end_load(104, "load_interrupted")
        word = payload.split(" ")[0]
        self.point(f"cmd:{word}")
        handler = getattr(self, f"cmd_{word}", None)
        if handler is None:
            self.send("@err code=100 msg=unknown_command")
            self.send(f"@ready cmd={word} status=100")
            return
        handler(payload.split(" ")[1:])

    def _bad_line(self, code: int, msg: str) -> None:
        if self.loading:
            self._end_load(code, msg)
        else:
            self.send(f"@err code={code} msg={msg}")
            self.send(f"@ready cmd=- status={code}")

    def _data_line(self, payload: str) -> None:
        if not self.loading:
            return  # the rest of an aborted load: dropped
        label, _, hexa = payload.partition(":")
        if not label.isdigit() or int(label) >= self.classes or len(hexa) != 2 * self.sample_bytes:
            self._end_load(104, "malformed_data_line")
            return
        self.loaded += 1
        self.labels.append(int(label))
        self.point(f"db_line:{self.loaded}")
        if self.loaded == self.loading and self.stream is not None:
            self._end_stream()
        elif self.loaded == self.loading:
            self.loading, self.ram, self.source = 0, self.loaded, "ram"
            self.send(f"@db loaded={self.ram} source=ram")
            self.send("@ready cmd=db status=0")

    def _end_stream(self) -> None:
        """The stream's buffer: its first `cap` samples (the policy is not modelled)."""
        seen, cap, streamed = self.loaded, self.stream, self.labels
        self.loading, self.stream = 0, None
        self.ram = self.kept = min(seen, cap)
        self.labels, self.source = streamed[:self.ram], "ram"
        self.send(f"@db loaded={self.ram} source=ram policy=reservoir seen={seen} cap={cap} "
                  "codewords=0 covered=0 evicted=0 cycles=1000")
        self.point("stream:db")
        for k in range(self.classes):
            self.send(f"@dbclass class={k} kept={self.labels.count(k)} "
                      f"seen={streamed.count(k)} codewords=0 covered=0")
        self.send("@ready cmd=db status=0")

    def _end_load(self, code: int, msg: str) -> None:
        self.loading, self.ram, self.stream, self.kept = 0, 0, None, 0
        self.send(f"@err code={code} msg={msg}")
        self.send(f"@ready cmd=db status={code}")

    # ---- commands ------------------------------------------------------------------------
    def cmd_calib(self, args) -> None:
        """`calib ms=N`: the fixed workload, N ms of counts at the counter's rate."""
        ms = int(dict(a.split("=", 1) for a in args if "=" in a).get("ms", "1000"))
        self.send(f"@phase name=calib cycles={self.hz * ms // 1000}")
        self.send("@ready cmd=calib status=0")

    def cmd_name(self, args) -> None:
        self.send(f"@name name=fake board={self.board}")
        self.send("@ready cmd=name status=0")

    def cmd_info(self, args) -> None:
        self.send(f"@info proto=1 fw=1 format=1 model={self.model} train={self.flash} "
                  f"test={self.test} classes={self.classes} features=8 "
                  f"sample_bytes={self.sample_bytes} db_capacity={self.capacity} arena=3072 "
                  f"ram_static=20000 flash=50000 counter={self.counter} hz={self.hz} "
                  "icount_shift=6")
        self.send("@mem stack_hwm=900 stack=8192 arena=3072 workspace=11000")
        self.send("@ready cmd=info status=0")

    def cmd_db(self, args) -> None:
        if args[:1] == ["load"]:
            count = int(args[1])
            if count > self.capacity:
                self.send("@err code=105 msg=above_db_capacity")
                self.send("@ready cmd=db status=105")
                return
            self.loading, self.loaded, self.ram, self.kept, self.labels = count, 0, 0, 0, []
            return
        if args[:1] == ["stream"]:
            kv = dict(a.split("=", 1) for a in args[2:] if "=" in a)
            cap = int(kv.get("cap", self.capacity))
            if cap > self.capacity:
                self.send("@err code=105 msg=above_db_capacity")
                self.send("@ready cmd=db status=105")
                return
            self.loading, self.loaded, self.ram, self.kept, self.labels = (
                int(args[1]), 0, 0, 0, [])
            self.stream = cap
            return
        if args[:1] == ["kept"]:
            if not self.ram:
                self.send("@err code=106 msg=no_data_loaded")
                self.send("@ready cmd=db status=106")
                return
            for i, label in enumerate(self.labels[:self.ram]):
                self.send(f"@kept pos={i} idx={i} class={label} cw=-1")
            self.send("@ready cmd=db status=0")
            return
        src = args[1] if len(args) > 1 else ""
        if src in ("ram", "both") and not self.ram:
            self.send("@err code=106 msg=no_data_loaded")
            self.send("@ready cmd=db status=106")
            return
        self.source = src
        loaded = {"flash": self.flash, "ram": self.ram, "both": self.flash + self.ram}[src]
        self.send(f"@db loaded={loaded} source={src}")
        self.send("@ready cmd=db status=0")

    def set_size(self) -> int:
        return {"flash": self.flash, "ram": self.ram, "both": self.flash + self.ram}[self.source]

    def cmd_train(self, args) -> None:
        kv = dict(a.split("=", 1) for a in args if "=" in a)
        n = self.set_size()
        batch = int(kv.get("batch", 32))
        if "steps" in kv:
            per_window = math.ceil(n / batch)
            windows = math.ceil(int(kv["steps"]) / per_window)
            samples = per_window * batch
        else:
            windows, samples = int(kv.get("epochs", 5)), n
        self.trained_on.append(n)
        out: list[str] = []

        def rec(payload: str) -> None:
            self.send(payload)
            out.append(payload)

        self._window(self.window_s)
        rec("@phase name=features cycles=1000000")
        self.point("train:features")
        for i in range(1, windows + 1):
            self._window(self.epoch_delay)
            if self.hold is not None and i > 1:
                self.hold.wait(120)
            cycles = "lots" if self._bad_value_next else "2500000"
            self._bad_value_next = False
            rec(f"@epoch n={i} loss={1.0 / i:.4f} train_acc=0.{min(9, 4 + i)} correct={n // 2} "
                f"samples={samples} cycles={cycles}")
            self.point(f"train:epoch:{i}")
        total = self.test
        self._window(self.window_s)
        rec(f"@eval when=before acc=0.5 correct={total // 2} total={total} int8_acc=0.5")
        for k in range(self.classes):
            rec(f"@class when=before class={k} correct={total // 2 // self.classes} "
                f"int8_correct={total // 2 // self.classes} total={total // self.classes}")
            self.point(f"train:class:before:{k}")
        self.point("train:eval")
        # the accuracy after training tells the sets apart: n correct of the test samples
        right = min(total, n)
        rec(f"@eval when=after acc={right / total:.6g} correct={right} total={total} "
            f"int8_acc={right / total:.6g}")
        for k in range(self.classes):
            share = right // self.classes + (1 if k < right % self.classes else 0)
            rec(f"@class when=after class={k} correct={share} int8_correct={share} "
                f"total={total // self.classes}")
            self.point(f"train:class:after:{k}")
        for name in ("head_forward", "backward", "update", "evaluation"):
            rec(f"@phase name={name} cycles={1000000 * windows + 1}")
        rec("@mem stack_hwm=900 stack=8192 arena=3072 workspace=11000")
        self.last_train = out
        self.send("@ready cmd=train status=0")

    def _window(self, seconds: float) -> None:
        """One measurement window: ``seconds`` of work, the marker high (if wired)."""
        if self.marker is not None:
            self.marker.set(True)
        if seconds:
            time.sleep(seconds)
        if self.marker is not None:
            self.marker.set(False)

    def cmd_results(self, args) -> None:
        epochs = [r for r in self.last_train if r.startswith("@epoch")][-64:]
        rest = [r for r in self.last_train if not r.startswith("@epoch")]
        for payload in rest[:1] + epochs + rest[1:]:
            self.send(payload)
        self.send("@ready cmd=results status=0")

    def cmd_eval(self, args) -> None:
        self.send(f"@eval when=current acc=0.5 correct={self.test // 2} total={self.test} "
                  "int8_acc=0.5")
        self.send("@ready cmd=eval status=0")

    def cmd_reset(self, args) -> None:
        self.send("@ready cmd=reset status=0")
        self._fire("reset")


def serve_lines(conn: socket.socket, stopped, on_line, paused=lambda: False) -> None:
    """Read ``conn`` until it closes or ``stopped()``, calling ``on_line`` with every line
    (without its newline); nothing is read while ``paused()``. Closes ``conn``."""
    conn.settimeout(0.05)
    buf = b""
    while not stopped():
        if paused():
            time.sleep(0.05)
            continue
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf and not paused():
            line, buf = buf.split(b"\n", 1)
            on_line(line)
    try:
        conn.close()
    except OSError:
        pass


class _Stop(Exception):
    """Nothing more goes out on this connection."""


class _Abort(Exception):
    """The command in progress ends here (the device reset)."""


def fake_run(folder, samples: int = 20, classes: int = 2, model: str = "abc",
             test: int = 20, sample_bytes: int = 64, **extra):
    """A run folder with a finished export stage (what `tinysift device run` reads): a
    small model's export.json (``extra`` keys added or replaced) and golden.npz, recorded
    in manifest.json."""
    import json

    import numpy as np

    from tinysift.runs import Run

    run = Run(folder)
    with run.stage("export", {"board": "qemu-mps2-an386"}, {"tflite": "-"}) as rec:
        export = run.path / "export"
        export.mkdir(parents=True, exist_ok=True)
        info = {"train_samples": samples, "content_hash": model, "num_classes": classes,
                "test_samples": test, "head_layer": 1, "input": {"shape": [8, 8, 1]},
                "layers": [{"op": "CONV_2D", "in": [8, 8, 1], "out": [4, 4, 8], "macs": 1152},
                           {"op": "FULLY_CONNECTED", "in": [1, 1, 8], "out": [1, 1, classes],
                            "macs": 8 * classes}],
                "memory_plan": {"ram_total": 1000, "flash_total": 2000}, **extra}
        (export / "export.json").write_text(json.dumps(info))
        rng = np.random.default_rng(0)
        np.savez(export / "golden.npz",
                 x_train=rng.integers(-128, 128, (samples, sample_bytes)).astype(np.int8),
                 y_train=np.arange(samples) % classes)
        rec["outputs"] += ["export/export.json", "export/golden.npz"]
    return run.path
