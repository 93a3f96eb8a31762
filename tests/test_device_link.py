"""Host side of TSP/1 against a loopback TCP peer: framing, faults, resets, partial results.

The peer is a real TCP server speaking the protocol from a script (the emulator itself is
exercised in tests/test_device_qemu.py); these tests cover the faults a real board shows.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinysift.device.energy import integrate_windows
from tinysift.device.link import DeviceReset, SerialLink
from tinysift.device.protocol import MAX_LINE, FrameError, crc16, frame, parse_record, unframe
from tinysift.device.results import DeviceResults
from tinysift.errors import DeviceError


class Peer(threading.Thread):
    """Accept one client; for every received command line run ``script(cmd, send)``."""

    def __init__(self, on_connect=b"", script=None):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"socket://127.0.0.1:{self.sock.getsockname()[1]}"
        self.on_connect, self.script = on_connect, script
        self.received: list[str] = []
        self.stop = threading.Event()

    def run(self):
        from fake_device import serve_lines

        conn, _ = self.sock.accept()
        self.conn = conn
        self.send(self.on_connect)
        serve_lines(conn, self.stop.is_set, self.on_line)

    def send(self, data: bytes) -> None:
        """Write to the host. A host that has closed the port (it gave up, as a test may
        want) loses the bytes, as a board's would: not an error of the peer's thread."""
        try:
            self.conn.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def on_line(self, line: bytes) -> None:
        try:
            cmd = unframe(line, 100000)
        except FrameError:
            return
        self.received.append(cmd)
        if self.script:
            self.script(cmd, self.send)


def rec(payload: str) -> bytes:
    return frame(payload)


def test_crc_check_values():
    assert crc16(b"123456789") == 0x29B1
    assert frame("@ready cmd=info status=0") == b"@ready cmd=info status=0 *4946\n"


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E,
                                      blacklist_characters="*"), min_size=1, max_size=200))
def test_frame_roundtrip(payload):
    assert unframe(frame(payload)[:-1]) == payload


@pytest.mark.parametrize("line", [b"", b"@ready cmd=x status=0", b"@ready *ZZZZ",
                                  b"@ready cmd=x status=0 *0000", b"\x00\x01 *1234"])
def test_bad_lines_rejected(line):
    with pytest.raises(FrameError):
        unframe(line)


def test_parse_record():
    r = parse_record("@epoch n=2 loss=0.25 train_acc=0.9")
    assert r.type == "epoch" and r.int("n") == 2 and r.float("loss") == 0.25
    with pytest.raises(FrameError):
        parse_record("epoch n=2")


def test_framing_and_record_edges_follow_tsp1():
    """docs/protocol.md's framing and records at their edges: a payload with '*' cannot be
    framed; a CR before the newline is dropped; a line shorter than ' *XXXX' plus one byte
    is refused even with a matching CRC; fields are split at their first '=', empty
    fields (two spaces) skipped, a field without a key or a record without a type
    refused; a data line is upper-case hex; a bounded number takes its bounds and never
    inf."""
    from tinysift.device.protocol import RecordError, data_line

    with pytest.raises(ValueError, match=r"may not contain '\*'"):
        frame("@a x=*")
    assert unframe(frame("@ready cmd=info status=0")[:-1] + b"\r") == "@ready cmd=info status=0"
    with pytest.raises(FrameError, match="checksum"):
        unframe(f" *{crc16(b' '):04X}".encode())  # an empty payload: six bytes
    # the CRC is four upper-case hex digits, nothing else int(x, 16) reads: a garbled
    # checksum field whose value happens to equal the body's CRC is still refused
    for garble, fits in (("+{:03X}", lambda c: c < 0x1000), (" {:03X}", lambda c: c < 0x1000),
                         ("0_{:02X}", lambda c: c < 0x100), ("0x{:02X}", lambda c: c < 0x100),
                         ("{:04x}", lambda c: f"{c:04x}" != f"{c:04X}")):
        body = next(b for i in itertools.count() if fits(crc16(b := f"@ok n={i} ".encode())))
        line = body + b"*" + garble.format(crc16(body)).encode()
        assert int(line[-4:], 16) == crc16(body), line  # what the loose reading took
        with pytest.raises(FrameError, match="four upper-case hex digits"):
            unframe(line)
    rec = parse_record("@info  note=a=b  n=3")
    assert rec.type == "info" and rec.fields == {"note": "a=b", "n": "3"}
    for bad in ("@info =3", "@ n=3"):
        with pytest.raises(FrameError):
            parse_record(bad)
    assert data_line(3, bytes([0x0A, 0xFF])) == frame("3:0AFF")
    r = parse_record("@eval acc=0 top=1 n=0 big=inf")
    assert r.float("acc", low=0, high=1) == 0.0 and r.float("top", low=0, high=1) == 1.0
    assert r.int("n", low=0) == 0
    with pytest.raises(RecordError, match="not a finite number of at least 0"):
        r.float("big", low=0)


@pytest.mark.parametrize(("payload", "message"), [
    ("@epoch n=1 loss=1 train_acc=0.5 samples=20 cycles=-2500000",
     r"cycles='-2500000', not a finite number of at least 0"),
    ("@epoch n=1 loss=1 train_acc=0.5 samples=20 cycles=1_000", r"cycles='1_000', not an integer"),
    ("@epoch n=1 loss=1_0 train_acc=0.5 samples=20 cycles=5", r"loss='1_0', not a number"),
    ("@epoch n=1 loss=1 train_acc=nan samples=20 cycles=5", r"train_acc='nan', not a finite "
                                                            r"number in 0\.\.1"),
    ("@eval when=after acc=7.5 correct=10 total=20", r"acc='7\.5', not a finite number in"),
    ("@eval when=before acc=inf correct=10 total=20", r"acc='inf', not a finite number in"),
    ("@phase name=features cycles=-1", r"cycles='-1', not a finite number of at least 0"),
    # a field the firmware must send, missing: went into the results as None
    ("@epoch loss=1 train_acc=0.5 samples=20 cycles=5", r"that has no field 'n'"),
])
def test_impossible_values_with_a_valid_crc_are_refused(tmp_path, payload, message):
    """Negative cycles, an accuracy of 7.5 or inf, a count written `1_000` (Python's int()
    takes it): CRC-valid records the firmware never sends went into results.json as
    measured (negative seconds and energy, in a complete result)."""
    from tinysift.boards import load_board
    from tinysift.device.protocol import RecordError
    from tinysift.device.session import DeviceSession, TrainParams

    session = DeviceSession(load_board("qemu-mps2-an386"), tmp_path, TrainParams())
    try:
        with pytest.raises(RecordError, match=message):
            session.absorb(parse_record(payload))
    finally:
        session.close()
    doc = DeviceResults.load(tmp_path / "results.json")
    assert not doc.epochs and not doc.phases and doc.test_acc_after is None


@pytest.mark.parametrize("url", ["socket://", "socket://localhost:99999", "socket://host",
                                 "socket://:5555"])
def test_a_malformed_socket_url_is_refused_at_once(url):
    """A socket:// URL without a host or a valid port was retried for the whole connect
    timeout (10 s) and then reported in pyserial's words ("'<=' not supported between
    instances of 'int' and 'NoneType'", "'debug|info|warning|error'")."""
    from tinysift.errors import DeviceUnavailable

    t0 = time.monotonic()
    with pytest.raises(DeviceUnavailable, match=r"is not a socket URL: give "
                                                r"socket://HOST:PORT with a port 1\.\.65535"):
        SerialLink(url)
    assert time.monotonic() - t0 < 1.0


def test_a_port_that_goes_away_names_the_fix():
    """A board unplugged mid-session (the pty's other end closed) ended in pyserial's words
    alone ("device reports readiness to read but returned no data"), naming no fix."""
    import pty

    from tinysift.device.link import LinkLost

    master, slave = pty.openpty()
    try:
        with SerialLink(os.ttyname(slave)) as link:
            os.close(master)
            with pytest.raises(LinkLost, match=r"closed: .*; a board unplugged .*check the "
                                               r"cable, plug the board back in.*run again$"):
                link.read_record(timeout=2.0)
    finally:
        os.close(slave)


def test_a_port_is_held_by_one_session():
    """A second SerialLink on a port in use (two terminals, `device calibrate` beside
    `device run`) opened it too, and each session read bytes meant for the other; it is
    refused, naming the port, until the first closes it (a pty driven through pyserial's
    real serial code)."""
    import pty

    from tinysift.errors import DeviceUnavailable

    master, slave = pty.openpty()
    try:
        name = os.ttyname(slave)
        with SerialLink(name):
            with pytest.raises(DeviceUnavailable, match=rf"cannot open {name}: .*exclusively "
                                                        r"lock.*no other program holds it"):
                SerialLink(name)
        SerialLink(name).close()  # free again
    finally:
        os.close(master)
        os.close(slave)


def test_a_train_that_cannot_be_requantized_names_the_fix():
    """`train` ending in `@err code=6 msg=engine:param` (the trained head cannot be
    re-quantized: a diverged training) was told as "status 6 (engine:param)", no fix."""
    from tinysift.device.link import DeviceRefused

    def script(cmd, send):
        name = cmd.split()[0]
        if name == "train":
            send(rec("@epoch n=1 loss=nan train_acc=0.1 samples=20 cycles=5")
                 + rec("@err code=6 msg=engine:param") + rec("@ready cmd=train status=6"))
        else:  # another command's status 6 gets no training hint
            send(rec("@err code=6 msg=engine:param") + rec(f"@ready cmd={name} status=6"))

    peer = Peer(script=script)
    peer.start()
    with SerialLink(peer.url) as link:
        with pytest.raises(DeviceRefused, match=r"status 6 \(engine:param\); the trained "
                                                r"weights could not be re-quantized.*lower "
                                                r"--lr") as err:
            link.command("train epochs=1 lr=10", timeout=2.0)
        assert err.value.status == 6
        with pytest.raises(DeviceRefused, match=r"status 6 \(engine:param\)$"):
            link.command("eval", timeout=2.0)
    peer.stop.set()


def test_silent_port_times_out_clearly():
    peer = Peer()
    peer.start()
    with SerialLink(peer.url) as link, pytest.raises(DeviceError, match="no valid record"):
        link.command("info", timeout=1.0)
    peer.stop.set()


def test_garbage_and_corrupt_lines_are_dropped_and_counted():
    good = rec("@info proto=1")
    corrupt = bytearray(good)
    corrupt[3] ^= 0x01  # one flipped bit: CRC must catch it

    def script(cmd, send):
        send(b"\x00\xff garbage without newline" * 10)
        send(b"\nnoise line\n" + bytes(corrupt) + rec("@epoch n=1")[:-6] + b"*FFFF\n")
        send(good + rec("@ready cmd=info status=0"))

    peer = Peer(script=script)
    peer.start()
    with SerialLink(peer.url) as link:
        records = link.command("info", timeout=5.0)
        assert [r.type for r in records] == ["info", "ready"]
        assert link.stats.dropped_lines >= 3
    peer.stop.set()


def _reset_after(garbage: bytes, timeout: float):
    """A device that answers `train` with ``garbage`` and then a `@boot` (resets=1): the
    command must end in a DeviceReset carrying that boot. Returns the link's stats."""
    boot = rec("@boot proto=1 resets=1")

    def script(cmd, send):
        send(garbage + boot)

    peer = Peer(script=script)
    peer.start()
    try:
        with SerialLink(peer.url) as link:
            with pytest.raises(DeviceReset) as err:
                link.command("train", timeout=timeout)
            assert err.value.boot.fields["resets"] == "1"
            return link.stats
    finally:
        peer.stop.set()


def test_reset_mid_line_keeps_the_boot_record():
    """A device that resets while it sends a line starts its @boot right after the cut: the
    cut line is dropped, the @boot is read (found under QEMU: a reset during the last
    records of a train left the host waiting for a @ready that never came)."""
    stats = _reset_after(rec("@epoch n=1")[:9], timeout=5.0)
    assert stats.dropped_lines == 1 and stats.dropped_bytes == 9


def test_a_boot_sent_as_the_socket_connects_is_kept_however_late_the_open_ends(monkeypatch):
    """QEMU starts the guest as the host connects (`wait=on`), so its @boot may arrive
    before pyserial's open has returned; pyserial's own open drains what arrived (a test
    that opened the emulator's socket with it lost the first @boot on a loaded machine).
    The link keeps it: the open is made slow here, so the @boot is there before it ends."""
    import serial.urlhandler.protocol_socket as pyserial_socket

    connect = socket.create_connection

    def slow_connect(*args, **kwargs):
        sock = connect(*args, **kwargs)
        time.sleep(0.3)  # the peer's @boot arrives meanwhile
        return sock

    monkeypatch.setattr(pyserial_socket.socket, "create_connection", slow_connect)
    peer = Peer(on_connect=rec("@boot proto=1 resets=0"))
    peer.start()
    with SerialLink(peer.url, connect_timeout=5) as link:
        assert link.wait_boot(timeout=2.0).fields["resets"] == "0"
    peer.stop.set()


def test_device_error_status_carries_the_message():
    def script(cmd, send):
        send(rec("@err code=100 msg=unknown_command") + rec("@ready cmd=bogus status=100"))

    peer = Peer(script=script)
    peer.start()
    with SerialLink(peer.url) as link, pytest.raises(DeviceError, match="unknown_command"):
        link.command("bogus", timeout=5.0)
    peer.stop.set()


@pytest.mark.parametrize("status,msg", [(102, "too_long"), (103, "bad_crc")])
def test_a_load_ended_at_an_unreadable_data_line_names_the_garbled_direction(status, msg):
    """A `db load` the device ended at a data line it could not read, too long (102) or with
    a bad CRC (103) (docs/protocol.md), is refused with the fix for garbled host bytes."""
    def script(cmd, send):
        send(rec(f"@err code={status} msg={msg}") + rec(f"@ready cmd=db status={status}"))

    peer = Peer(script=script)
    peer.start()
    with SerialLink(peer.url) as link, pytest.raises(
            DeviceError, match=rf"status {status} \({msg}\); a line from the host arrived "
                               r"garbled: check the cable, the baud rate \(115200\)"):
        link.command("db load 1", timeout=5.0)
    peer.stop.set()


class GarblingPeer(Peer):
    """A peer whose first ``garble`` received lines arrive with one bit flipped, answered as
    the firmware answers a host line it cannot read: ``@err code=103`` and
    ``@ready cmd=- status=103`` (docs/protocol.md)."""

    def __init__(self, garble: int, **kwargs):
        super().__init__(**kwargs)
        self.garble = garble

    def on_line(self, line: bytes) -> None:
        if self.garble > 0:
            self.garble -= 1
            line = bytes([line[0] ^ 0x01]) + line[1:]
        try:
            unframe(line, 100000)
        except FrameError:
            self.conn.sendall(rec("@err code=103 msg=bad_crc") + rec("@ready cmd=- status=103"))
            return
        super().on_line(line)


def answer_info(cmd, send):
    if cmd == "info":
        send(rec("@info proto=1") + rec("@mem stack=8192") + rec("@ready cmd=info status=0"))


def answer_any(cmd, send):
    """Every command answered with one record of its name and its @ready."""
    name = cmd.split(" ")[0]
    send(rec(f"@{name} ok=1") + rec(f"@ready cmd={name} status=0"))


@pytest.mark.parametrize("cmd", ["info", "name", "results"])
def test_unreadable_command_is_sent_again(cmd):
    """The device answers a garbled command line with `@ready cmd=-`: the host sends the
    command once more at once instead of waiting out the silence limit; `info`, `name` and
    `results` only read the device, so sending one twice is harmless."""
    peer = GarblingPeer(1, script=answer_any)
    peer.start()
    with SerialLink(peer.url) as link:
        t0 = time.monotonic()
        records = link.command(cmd, timeout=5.0)
        assert time.monotonic() - t0 < 4.0
        assert [r.type for r in records] == [cmd, "ready"]
        assert peer.received == [cmd]  # the garbled first copy did not unframe
        assert link.stats.garbled_host_lines == 1 and link.stats.stray_records == 0
    peer.stop.set()


class SilentGarblingPeer(GarblingPeer):
    """A garbled host line answered by ``@ready cmd=- status=102`` alone (its ``@err`` lost
    on the way), after a record of an earlier command still in flight."""

    def on_line(self, line: bytes) -> None:
        if self.garble > 0:
            self.garble -= 1
            self.conn.sendall(rec("@epoch n=9") + rec("@ready cmd=- status=102"))
            return
        super().on_line(line)


def test_an_unreadable_line_without_its_err_is_named_by_its_status():
    """Without an ``@err``, the garbled line is named by its ``@ready``'s status, and the
    earlier command's record before it is counted stray (the ``@ready`` is not)."""
    peer = SilentGarblingPeer(2, script=answer_any)
    peer.start()
    with SerialLink(peer.url) as link:
        with pytest.raises(DeviceError, match=r"could not read a line from the host \(@err "
                                              r"status=102\) and then did not run `info` after "
                                              r"it was sent twice"):
            link.command("info", timeout=5.0)
        assert link.stats.garbled_host_lines == 2 and link.stats.stray_records == 2
    peer.stop.set()


def test_command_unreadable_twice_names_the_garbled_direction():
    peer = GarblingPeer(2, script=answer_info)
    peer.start()
    with SerialLink(peer.url) as link:
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match=r"could not read a line.*bad_crc.*did not run "
                                              r"`info` after it was sent twice.*host to the "
                                              r"device.*cable.*baud rate"):
            link.command("info", timeout=5.0)
        assert time.monotonic() - t0 < 4.0
        assert link.stats.garbled_host_lines == 2
    peer.stop.set()


class SplittingPeer(GarblingPeer):
    """A bit error that turns the `*` before the checksum into a newline splits the first
    host line in two: the device answers both halves as unreadable lines."""

    def on_line(self, line: bytes) -> None:
        if self.garble > 0:
            self.garble -= 1
            for _ in range(2):
                self.conn.sendall(rec("@err code=103 msg=bad_crc")
                                  + rec("@ready cmd=- status=103"))
            return
        super().on_line(line)


def test_a_split_unreadable_command_is_sent_again_once():
    peer = SplittingPeer(1, script=answer_info)
    peer.start()
    with SerialLink(peer.url) as link:
        records = link.command("info", timeout=5.0)
        assert [r.type for r in records] == ["info", "mem", "ready"]
        assert peer.received == ["info"] and link.stats.garbled_host_lines == 2
    peer.stop.set()


def answer_train(cmd, send):
    if cmd == "train":
        send(rec("@epoch n=1 loss=0.5") + rec("@ready cmd=train status=0"))


@pytest.mark.parametrize(("silence", "timeout"), [(0.0, 5.0), (1.5, 4.0)],
                         ids=["answered at once", "silent 1.5 s"])
def test_an_unreadable_line_before_a_command_that_runs_does_not_send_it_again(silence, timeout):
    """Noise ending in a newline just before `train`: the device answers the noise as an
    unreadable line, then runs the train. The host must not send `train` again (it would
    train twice); the unreadable line is counted. A train silent for 1.5 s before its first
    record waits its own silence limit (here 4 s), not the 1 s grace of a resendable
    command, and its records are taken."""
    def script(cmd, send):
        send(rec("@err code=103 msg=bad_crc") + rec("@ready cmd=- status=103"))
        time.sleep(silence)
        answer_train(cmd, send)

    peer = Peer(script=script)
    peer.start()
    with SerialLink(peer.url) as link:
        records = link.command("train", timeout=timeout)
        assert [r.type for r in records] == ["epoch", "ready"]
        assert peer.received == ["train"] and link.stats.garbled_host_lines == 1
    peer.stop.set()


def test_an_unread_train_is_not_sent_again_but_named():
    """`train` itself unreadable: not resent (a train is not harmless to run twice); after
    its silence limit the error names the garbled direction, not flashing or the port."""
    peer = GarblingPeer(1, script=answer_train)
    peer.start()
    with SerialLink(peer.url) as link:
        with pytest.raises(DeviceError, match=r"could not read a line.*did not run `train`: "
                                              r"the bytes from the host.*cable"):
            link.command("train", timeout=1.0)
        assert peer.received == []
    peer.stop.set()


def test_garbled_data_line_refusal_names_the_direction():
    def script(cmd, send):
        if cmd.startswith("db load"):  # a data line arrived garbled: the load ends
            send(rec("@err code=103 msg=bad_crc") + rec("@ready cmd=db status=103"))

    peer = Peer(script=script)
    peer.start()
    with SerialLink(peer.url) as link, pytest.raises(DeviceError,
                                                     match=r"bad_crc.*garbled.*cable"):
        link.command("db load 1", data=[b"0:00 *0000\n"], timeout=5.0)
    peer.stop.set()


def stale_train(epochs: int) -> bytes:
    """What a board still finishing an earlier session's `train` sends after its boot."""
    return b"".join(rec(f"@epoch n={n} loss=0.5 train_acc=0.5 correct=1 samples=20 "
                        "cycles=2500000") for n in range(1, epochs + 1)) + rec(
        "@ready cmd=train status=0")


def test_records_of_another_command_are_left_out_and_counted():
    peer = Peer(on_connect=BOOT + stale_train(5), script=answer_info)
    peer.start()
    with SerialLink(peer.url) as link:
        link.wait_boot(timeout=5.0)
        records = link.command("info", timeout=5.0)
        assert [r.type for r in records] == ["info", "mem", "ready"]
        assert link.stats.stray_records == 6  # five @epoch and their @ready
        assert link.stats.records == 1 + 6 + 3  # every record was still read (and logged)
    peer.stop.set()


def test_too_many_stray_records_name_the_fix():
    from tinysift.device.limits import Limits

    peer = Peer(on_connect=BOOT + stale_train(20), script=answer_info)
    peer.start()
    with SerialLink(peer.url) as link:
        link.wait_boot(timeout=5.0)
        with pytest.raises(DeviceError, match=r"without ending it.*wait for the device to "
                                              r"finish.*reset the board.*tinysift device run"):
            link.command("info", limits=Limits(5.0, 10.0, 11))
    peer.stop.set()


def test_overflow_without_newline_keeps_a_partly_arrived_boot():
    """More than max_line bytes without a newline are dropped, but not the start of a
    `@boot` that arrived with them: the device reset inside the noise."""
    noise = (b"\xff\x00 noise " * 500)[:4080]  # 17 bytes of the @boot overflow the buffer
    assert len(noise) == 4080
    stats = _reset_after(noise, timeout=3.0)
    assert stats.dropped_bytes == len(noise) and stats.dropped_lines == 1


def make_run(tmp_path, samples=20):
    from fake_device import fake_run

    return fake_run(tmp_path / "run", samples=samples, classes=10)


BOOT = rec("@boot proto=1 fw=1 board=qemu-mps2-an386 counter=systick-icount hz=25000000 "
           "resets=0 model=abc")


def train_script(resets_at_epoch=None, stall_after=None):
    state = {"boots": 0}

    def script(cmd, send):
        if cmd.startswith("info"):
            send(rec("@info proto=1 flash=50000 ram_static=20000")
                 + rec("@ready cmd=info status=0"))
        elif cmd.startswith("db load"):
            pass  # data lines follow as separate lines; answered on the last one
        elif ":" in cmd and not cmd.startswith("train"):
            state.setdefault("data", 0)
            state["data"] += 1
            if state["data"] == 20:
                send(rec("@db loaded=20 source=ram") + rec("@ready cmd=db status=0"))
        elif cmd.startswith("db use"):
            send(rec(f"@db loaded=20 source={cmd.split()[-1]}") + rec("@ready cmd=db status=0"))
        elif cmd.startswith("train"):
            send(rec("@eval when=before acc=0.5 correct=10 total=20 int8_acc=0.5"))
            send(rec("@phase name=features cycles=1000000"))
            for n in (1, 2, 3):
                if stall_after is not None and n > stall_after:
                    return  # the device goes quiet
                if resets_at_epoch == n and state["boots"] == 0:
                    state["boots"] += 1
                    send(rec("@boot proto=1 fw=1 board=qemu-mps2-an386 "
                             "counter=systick-icount hz=25000000 resets=1 model=abc"))
                    return
                send(rec(f"@epoch n={n} loss={1.0 / n:.4f} train_acc=0.{5 + n} correct=1 "
                         f"samples=20 cycles=2500000"))
            send(rec("@eval when=after acc=0.9 correct=18 total=20 int8_acc=0.85")
                 + rec("@class when=after class=0 correct=10 int8_correct=9 total=10")
                 + rec("@class when=after class=1 correct=8 int8_correct=8 total=10")
                 + rec("@phase name=backward cycles=3000000")
                 + rec("@mem stack_hwm=900 stack=8192 arena=3072 workspace=11000")
                 + rec("@ready cmd=train status=0"))
    return script


def test_run_writes_results_and_energy(tmp_path):
    from tinysift.stages.device import TrainParams, run_on_device

    peer = Peer(on_connect=BOOT, script=train_script())
    peer.start()
    res = run_on_device(make_run(tmp_path), "qemu-mps2-an386", port=peer.url,
                        params=TrainParams(epochs=3), use_db=True, timeout=5.0)
    assert res.status == "complete" and len(res.epochs) == 3
    assert res.test_acc_after > res.test_acc_before
    ep = res.epochs[0]
    # E = V * I * cycles / f = 3.3 V * 2.75 mA * 2.5e6 / 25e6 = 0.9075 mJ
    assert ep.energy_mj == pytest.approx(0.9075) and ep.energy_kind == "estimated"
    assert res.phases["features"].seconds == pytest.approx(0.04)
    assert sum(1 for c in peer.received if ":" in c and not c.startswith("train")) == 20
    saved = DeviceResults.load(tmp_path / "run" / "device" / "results.json")
    assert saved == res and saved.counter == "systick-icount"
    # the per-class records: old and new classes apart
    assert res.per_class["after"] == [
        {"class": 0, "correct": 10, "int8_correct": 9, "total": 10},
        {"class": 1, "correct": 8, "int8_correct": 8, "total": 10}]
    assert res.per_class["before"] == []
    assert res.class_accuracy("after", [1]) == pytest.approx(0.8)
    assert res.class_accuracy("after", [0, 1], int8=True) == pytest.approx(0.85)
    assert res.class_accuracy("after", [5]) is None
    peer.stop.set()


@pytest.mark.parametrize("on_reset", ["stop", "retry"])
def test_device_reset_mid_run(tmp_path, on_reset):
    from tinysift.stages.device import TrainParams, run_on_device

    peer = Peer(on_connect=BOOT, script=train_script(resets_at_epoch=2))
    peer.start()
    run = make_run(tmp_path)
    if on_reset == "stop":
        with pytest.raises(DeviceError, match="reset"):
            run_on_device(run, "qemu-mps2-an386", port=peer.url, params=TrainParams(epochs=3),
                          on_reset="stop", timeout=5.0)
        res = DeviceResults.load(run / "device" / "results.json")
        assert res.status == "device-reset" and len(res.epochs) == 1  # kept
    else:
        res = run_on_device(run, "qemu-mps2-an386", port=peer.url,
                            params=TrainParams(epochs=3), on_reset="retry", timeout=5.0)
        assert res.status == "complete" and len(res.epochs) == 3
    assert any("device_reset" in e for e in res.events)
    log = [json.loads(line) for line in (run / "device" / "log.jsonl").read_text().splitlines()]
    assert [r["type"] for r in log].count("boot") == 2  # append-only: both boots kept
    peer.stop.set()


def test_host_killed_mid_run_leaves_partial_results(tmp_path):
    peer = Peer(on_connect=BOOT, script=train_script(stall_after=2))
    peer.start()
    run = make_run(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "tinysift.cli.app", "device", "run", "--run",
                             str(run), "--port", peer.url, "--epochs", "3"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    results = run / "device" / "results.json"
    deadline = time.time() + 60
    while time.time() < deadline:
        if results.exists() and len(json.loads(results.read_text())["epochs"]) == 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    doc = json.loads(results.read_text())
    assert doc["status"] == "partial" and len(doc["epochs"]) == 2
    peer.stop.set()


def test_integrate_windows_joulescope_like_capture():
    fs = 1_000_000.0  # 1 Msample/s as a JS220 streams
    t = np.arange(int(0.6 * fs)) / fs
    current = np.full_like(t, 0.001)
    marker = np.zeros_like(t)
    win = (t >= 0.1) & (t < 0.4)
    current[win] = 0.010  # 10 mA while the phase runs
    marker[win] = 3.3
    voltage = np.full_like(t, 3.3)
    (w,) = integrate_windows(t, current, voltage, marker)
    assert w.duration_s == pytest.approx(0.3, abs=2e-6)
    assert w.energy_mj == pytest.approx(3.3 * 0.010 * 0.3 * 1e3, rel=1e-4)
    assert w.mean_current_ma == pytest.approx(10.0)
    assert w.start_s == pytest.approx(0.1, abs=2e-6)  # where it begins, not where it ends


def test_a_marker_at_the_threshold_is_low():
    """High is above the threshold: samples exactly at it open no window."""
    t = np.arange(10) / 1000.0
    marker = np.array([0, 0.5, 0.5, 1, 1, 1, 0.5, 0, 0, 0])
    (w,) = integrate_windows(t, np.full_like(t, 0.01), np.full_like(t, 3.3), marker)
    assert w.start_s == pytest.approx(0.003) and w.duration_s == pytest.approx(0.002)
    assert integrate_windows(t, np.full_like(t, 0.01), np.full_like(t, 3.3),
                             np.full_like(t, 0.5)) == []


def test_integrate_windows_by_hand():
    """A three-sample window, by hand: power V x I integrated as trapezoids between its
    first and last marker-high samples (0.02, 0.04, 0.06 W over 1 ms steps: 0.08 mJ, not the
    0.12 of a sum of rectangles), 2 ms long, starting at its first high sample, its mean
    current 20 mA."""
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0]) / 1000.0
    current = np.array([0.005, 0.010, 0.020, 0.030, 0.005])
    (w,) = integrate_windows(t, current, np.full_like(t, 2.0), np.array([0, 1, 1, 1, 0]))
    assert w.complete and w.start_s == pytest.approx(0.001)
    assert w.duration_s == pytest.approx(0.002)
    assert w.energy_mj == pytest.approx(0.08)
    assert w.mean_current_ma == pytest.approx(20.0)


def test_stream_limits_derive_from_the_board_and_the_model():
    """`db stream` and `db kept` get the device stage's bounds (tinysift.device.limits):
    silent until the last sample, so the silence limit covers the whole stream, longer with
    the coverage policy (a pass through the frozen layers a sample) and on a slower board;
    at least the 0.4 s a 28x28 sample took on the emulated M4 of a busy 2-core machine; a
    bounded number of records."""
    from tinysift.boards import load_board
    from tinysift.device.limits import RECORD_SLACK, ModelCost, SessionLimits

    cost = ModelCost.from_export({
        "layers": [{"op": "CONV_2D", "in": [28, 28, 1], "out": [14, 14, 16], "macs": 28224},
                   {"op": "CONV_2D", "in": [14, 14, 16], "out": [7, 7, 64], "macs": 472608},
                   {"op": "AVERAGE_POOL_2D", "in": [7, 7, 64], "out": [1, 1, 64], "macs": 0},
                   {"op": "FULLY_CONNECTED", "in": [1, 1, 64], "out": [1, 1, 10],
                    "macs": 640}],
        "head_layer": 3, "input": {"shape": [28, 28, 1]}, "num_classes": 10,
        "feature_dim": 64, "test_samples": 200})
    qemu = SessionLimits(load_board("qemu-mps2-an386"), cost, timeout=20)
    cov, res = qemu.db_stream(1437, coverage=True), qemu.db_stream(1437, coverage=False)
    assert cov.silence > res.silence > 20 and cov.deadline >= cov.silence
    assert cov.silence >= 0.4 * 1437
    assert cov.records == res.records == 2 + cost.classes + RECORD_SLACK
    assert qemu.db_stream(10, coverage=True).silence < cov.silence
    assert qemu.db_kept(1050).records == 1051 + RECORD_SLACK


def test_session_timeout_must_be_positive_and_finite():
    """`device run --timeout inf` (or 1e308, doubled into inf) made every limit infinite: a
    silent port hung the host for ever. Zero, negative, NaN and timeouts over a day are
    refused in one line naming --timeout."""
    from tinysift.boards import load_board
    from tinysift.device.limits import ModelCost, SessionLimits
    from tinysift.errors import TinysiftError

    cost = ModelCost.from_export({
        "layers": [{"op": "FULLY_CONNECTED", "in": [1, 1, 64], "out": [1, 1, 10],
                    "macs": 640}],
        "head_layer": 0, "input": {"shape": [1, 1, 64]}, "num_classes": 10,
        "feature_dim": 64, "test_samples": 10})
    board = load_board("qemu-mps2-an386")
    assert SessionLimits(board, cost, timeout=0.5).simple().silence >= 0.5
    assert SessionLimits(board, cost, timeout=86_400).simple().deadline < 2 * 86_400 + 60
    for bad in (0.0, -1.0, float("nan"), float("inf"), 1e308, 86_401.0):
        with pytest.raises(TinysiftError, match="--timeout must be a positive number of "
                                                "seconds up to 86400") as err:
            SessionLimits(board, cost, timeout=bad)
        assert "\n" not in str(err.value)


def test_integrate_windows_refuses_arrays_of_other_lengths():
    """A current or voltage of one sample is not broadcast over the capture (V x I would
    take it as constant): every array must have one value per sample time, in one dimension;
    an empty capture is no windows, not an IndexError."""
    t = np.arange(4) / 1000.0
    marker = np.array([0, 1, 1, 0])
    for current, voltage in ((np.array([0.01]), np.full(4, 2.0)),
                             (np.full(4, 0.01), np.array([2.0])),
                             (np.full(4, 0.01), np.full((4, 1), 2.0))):
        with pytest.raises(ValueError, match="same length, got shapes"):
            integrate_windows(t, current, voltage, marker)
    with pytest.raises(ValueError, match="same length"):
        integrate_windows(t, np.full(4, 0.01), np.full(4, 2.0), marker[:3])
    # arrays of one shape, but not 1-D: not read as one capture along an axis of them
    with pytest.raises(ValueError, match="must be 1-D"):
        integrate_windows(t[None, :], np.full((1, 4), 0.01), np.full((1, 4), 2.0),
                          marker[None, :])
    # a capture of no samples (stopped before any came) has no windows
    assert integrate_windows(t[:0], t[:0], t[:0], marker[:0]) == []


def test_session_limits_by_hand():
    """docs/protocol.md's limits, computed by hand for a small export: silence = --timeout +
    4 x the longest window, deadline = 2 x --timeout + 4 x all the windows, records + 8
    (64 + 8 before @boot); windows in cycles over the board's clock (an emulated board's at
    most 5 MHz) at 4 (DSP) or 12 cycles an int8 MAC, 10 (FPU) or 100 a float MAC, three
    float passes a trained MAC; `db load` lines (2 hex digits a byte + 16) at 115200 baud
    (10 bits a byte), or 5,000 bytes a second into an emulated board, 100 cycles a byte."""
    from tinysift.boards import load_board
    from tinysift.device.limits import ModelCost, SessionLimits
    from tinysift.device.session import TrainParams

    cost = ModelCost.from_export({
        "layers": [{"op": "CONV_2D", "in": [8, 8, 1], "out": [8, 8, 4]},  # 8*8*4 * 9*1
                   {"op": "DEPTHWISE_CONV_2D", "in": [8, 8, 4], "out": [8, 8, 4]},  # *9
                   {"op": "CONV_2D", "in": [8, 8, 4], "out": [4, 4, 8], "macs": 1000},
                   {"op": "AVERAGE_POOL_2D", "in": [4, 4, 8], "out": [1, 1, 8]},
                   {"op": "RESHAPE", "in": [1, 1, 8], "out": [1, 1, 8]},
                   {"op": "FULLY_CONNECTED", "in": [1, 1, 8], "out": [1, 1, 3]}],  # 8*3
        "head_layer": 5, "input": {"shape": [8, 8, 1]}, "num_classes": 3,
        "test_samples": 10})
    assert cost == ModelCost(backbone_macs=2304 + 2304 + 1000, head_macs=24, block_macs=1000,
                             classes=3, test_samples=10, sample_bytes=64)

    def check(lim, longest_s, total_s, records, timeout=20.0):
        assert lim.silence == pytest.approx(timeout + 4 * longest_s, rel=1e-12)
        assert lim.deadline == pytest.approx(2 * timeout + 4 * total_s, rel=1e-12)
        assert lim.records == records + 8

    f411 = SessionLimits(load_board("nucleo_f411re"), cost)  # 100 MHz, DSP and FPU
    check(f411.simple(), 0, 0, 4)
    check(f411.boot(), 0, 0, 64)
    check(f411.db_kept(5), 0, 0, 6)
    summary = 2 * (1 + 3) + 4 + 1 + 1
    check(f411.results(), 0, 0, 64 + summary)
    evaluation = 10 * (5608 * 4 + 24 * 10) / 100e6
    check(f411.eval(), evaluation, evaluation, 2 + 3)
    size = 100 * (2 * 64 + 16)
    load = size * 100 / 100e6 + size * 10 / 115200
    check(f411.db_load(100), load, load, 2)

    qemu = SessionLimits(load_board("qemu-mps2-an386"), cost)  # 25 MHz, taken as 5 MHz
    stream = (size * 100 + 100 * 5608 * 4) / 5e6 + size / 5000
    check(qemu.db_stream(100, coverage=True), stream, stream, 2 + 3)
    check(qemu.db_load(100), size * 100 / 5e6 + size / 5000, size * 100 / 5e6 + size / 5000, 2)

    pico = SessionLimits(load_board("pico"), cost, timeout=7)  # 125 MHz, neither
    head = 24 * 3 * 100
    evaluation = 10 * (5608 * 12 + 2 * 24 * 100)
    # update=head: the features of the 50 training and 10 test samples, 2 epochs of heads
    features = (50 + 10) * 5608 * 12
    check(pico.train(TrainParams(epochs=2), 50), features / 125e6,
          (features + 2 * 50 * head + evaluation) / 125e6, 1 + 2 + summary, timeout=7)
    # update=last-block, 5 steps of 16: 4 steps a window (ceil(50/16)), so 2 windows of 64
    per_sample = 5608 * 12 + head + 1000 * 3 * 100
    features = 10 * 5608 * 12
    check(pico.train(TrainParams(steps=5, batch=16, update="last-block"), 50),
          64 * per_sample / 125e6, (features + 2 * 64 * per_sample + evaluation) / 125e6,
          1 + 2 + summary, timeout=7)
    # update=bias: every layer below the head in float as well
    per_sample = head + 5608 * 3 * 100
    check(pico.train(TrainParams(epochs=1, update="bias"), 50), 50 * per_sample / 125e6,
          (features + 50 * per_sample + evaluation) / 125e6, 1 + 1 + summary, timeout=7)


def _small_export(**extra) -> dict:
    """The export of test_session_limits_by_hand: 5,608 backbone MACs, a head of 24."""
    return {"layers": [{"op": "CONV_2D", "in": [8, 8, 1], "out": [8, 8, 4]},
                       {"op": "DEPTHWISE_CONV_2D", "in": [8, 8, 4], "out": [8, 8, 4]},
                       {"op": "CONV_2D", "in": [8, 8, 4], "out": [4, 4, 8], "macs": 1000},
                       {"op": "AVERAGE_POOL_2D", "in": [4, 4, 8], "out": [1, 1, 8]},
                       {"op": "RESHAPE", "in": [1, 1, 8], "out": [1, 1, 8]},
                       {"op": "FULLY_CONNECTED", "in": [1, 1, 8], "out": [1, 1, 3]}],
            "input": {"shape": [8, 8, 1]}, "num_classes": 3, "test_samples": 10, **extra}


def test_an_export_without_its_head_layer_has_its_last_layer_as_the_head():
    """An export.json written before `head_layer` was recorded: its last layer is the head
    (the classifier), so the cost is the one of the same export naming that layer: the
    limits of such a run are neither looser nor tighter than the recorded head's."""
    from tinysift.device.limits import ModelCost

    assert ModelCost.from_export(_small_export()) == ModelCost.from_export(
        _small_export(head_layer=5))
    assert ModelCost.from_export(_small_export()).head_macs == 24


def test_int8_work_costs_by_the_dsp_and_float_work_by_the_fpu():
    """The two per-core costs are the board's own, each by its own feature: the ESP32-S3 has
    an FPU but no Arm DSP instructions, so its evaluation is 12 cycles an int8 MAC and 10 a
    float one (docs/protocol.md's limits)."""
    from tinysift.boards import load_board
    from tinysift.device.limits import ModelCost, SessionLimits

    esp = SessionLimits(load_board("esp32-s3"), ModelCost.from_export(_small_export()))
    evaluation = 10 * (5608 * 12 + 24 * 10) / 240e6
    assert esp.eval().silence == pytest.approx(20.0 + 4 * evaluation, rel=1e-12)


def test_a_train_on_no_samples_in_steps_still_gets_its_limits():
    """SessionLimits.train of an empty training set in steps (its callers pass at least one
    sample today, but train() itself takes any count): the windows are counted as of one
    sample, one step each, so the limits are finite, not a ZeroDivisionError."""
    from tinysift.boards import load_board
    from tinysift.device.limits import RECORD_SLACK, ModelCost, SessionLimits
    from tinysift.device.session import TrainParams

    pico = SessionLimits(load_board("pico"), ModelCost.from_export(_small_export()))
    limits = pico.train(TrainParams(steps=5, batch=16), 0)
    assert limits.records == 1 + 5 + pico.train_summary_records() + RECORD_SLACK
    assert math.isfinite(limits.silence) and limits.deadline >= limits.silence


# -- the Joulescope monitor, against tests/fake_joulescope.py (no Joulescope here) --------

def _drive_marker(wire, highs_s, gap_s=0.05):
    """The firmware's marker: high for each duration in ``highs_s``, low ``gap_s`` between;
    returns the (rise, fall) times."""
    edges = []
    for k, high_s in enumerate(highs_s):
        if k:
            time.sleep(gap_s)
        rise = wire.set(True)
        time.sleep(high_s)
        edges.append((rise, wire.set(False)))
    return edges


def _assert_window(w, rise, fall, fs, time_scale=1.0):
    seconds = (fall - rise) / time_scale
    assert w.complete
    assert w.duration_s == pytest.approx(seconds, abs=2 / fs)
    assert w.energy_mj == pytest.approx(3.3 * 10e-3 * seconds * 1e3, rel=1e-3, abs=1e-3)
    assert w.mean_current_ma == pytest.approx(10.0)


@pytest.mark.parametrize("model,backend", [("js220", "v1"), ("js110", "v1"), ("js110", "v0")])
def test_joulescope_monitor_reads_the_marker_from_gpi0(monkeypatch, model, backend):
    """pyjoulescope has no "in0" field: the marker on IN0/GPI0 comes back as current_lsb
    (after current_lsb=gpi0 on a JS110); asking for "in0" fails (v0: ValueError, v1: the
    field is missing from the result)."""
    from fake_joulescope import FakeJoulescope, MarkerWire, install
    from tinysift.device.energy import JoulescopeMonitor

    wire = MarkerWire()
    dev = FakeJoulescope(wire, model=model, backend=backend)
    install(monkeypatch, dev)
    mon = JoulescopeMonitor(duration_s=5.0)  # stop() ends it
    mon.start()
    time.sleep(0.05)
    edges = _drive_marker(wire, [0.15, 0.1])
    windows = mon.stop()
    assert dev.reads[0]["fields"] == ["current", "voltage", "current_lsb"]
    if model == "js110":  # its current LSB carries GPI0 only when routed there
        assert dev.parameters["current_lsb"] == "gpi0"
    assert not dev.is_open
    assert len(windows) == 2
    for w, (rise, fall) in zip(windows, edges, strict=True):
        _assert_window(w, rise, fall, dev.fs)


def test_joulescope_monitor_starts_the_command_inside_the_capture(monkeypatch):
    """The firmware raises the features marker as soon as `train` arrives, and the driver's
    samples begin a while after read(): start() returns only once samples flow, so the first
    window is captured whole (not cut and reported as the phase's energy)."""
    from fake_joulescope import FakeJoulescope, MarkerWire, install
    from tinysift.device.energy import JoulescopeMonitor

    wire = MarkerWire()
    dev = FakeJoulescope(wire, startup_s=0.3)
    install(monkeypatch, dev)
    mon = JoulescopeMonitor(duration_s=5.0)  # stop() ends it
    mon.start()
    edges = _drive_marker(wire, [0.1, 0.1])  # at once, as the firmware does on `train`
    windows = mon.stop()
    assert dev.capture_start <= edges[0][0]
    assert len(windows) == 2
    for w, (rise, fall) in zip(windows, edges, strict=True):
        _assert_window(w, rise, fall, dev.fs)


def test_integrate_windows_flags_windows_cut_by_the_capture():
    """A marker high at the first sample (the capture began inside the window) or at the
    last (it ended inside one) gives a window marked incomplete, in its place."""
    fs = 1000.0
    t = np.arange(1000) / fs
    marker = ((t < 0.1) | ((t >= 0.3) & (t < 0.5)) | (t >= 0.9)).astype(np.uint8)
    current = np.where(marker, 0.010, 0.001)
    windows = integrate_windows(t, current, np.full_like(t, 3.3), marker)
    assert [w.complete for w in windows] == [False, True, False]
    assert windows[1].duration_s == pytest.approx(0.2, abs=2 / fs)
    (whole,) = integrate_windows(t, current, np.full_like(t, 3.3), (t >= 0.3) & (t < 0.5))
    assert whole.complete


def test_a_cut_window_keeps_the_estimate(monkeypatch):
    """When the capture still begins inside the features window (marker already high), the
    windows stay aligned with the phases, but features keeps its estimate and says why; the
    epochs and the evaluation are measured."""
    from fake_joulescope import FakeJoulescope, MarkerWire, install
    from tinysift.device.energy import JoulescopeMonitor
    from tinysift.device.results import EpochResult, PhaseResult
    from tinysift.device.session import _apply_measurements

    wire = MarkerWire(high=True)  # features window open before the capture
    dev = FakeJoulescope(wire)
    install(monkeypatch, dev)
    mon = JoulescopeMonitor(duration_s=5.0)  # stop() ends it
    mon.start()
    time.sleep(0.05)
    wire.set(False)
    time.sleep(0.05)
    edges = _drive_marker(wire, [0.08, 0.08, 0.05])
    windows = mon.stop()
    assert [w.complete for w in windows] == [False, True, True, True]
    doc = DeviceResults(board="nucleo_f411re", clock_hz=100_000_000, params={},
                        energy_model={}, started="",
                        phases={"features": PhaseResult(10**6, 0.01, 0.4),
                                "evaluation": PhaseResult(10**6, 0.01, 0.4)},
                        epochs=[EpochResult(n, 1.0, 0.5, 10**6, 0.01, 0.4) for n in (1, 2)])
    _apply_measurements(doc, windows)
    assert doc.phases["features"].energy_kind == "estimated"
    assert doc.phases["features"].energy_mj == 0.4
    assert [ep.energy_kind for ep in doc.epochs] == ["measured", "measured"]
    assert doc.phases["evaluation"].energy_kind == "measured"
    (event,) = [e["monitor"] for e in doc.events if "monitor" in e]
    assert "features" in event and "estimated" in event
    for ep, (rise, fall) in zip(doc.epochs, edges, strict=False):
        assert ep.seconds == pytest.approx(fall - rise, abs=2 / dev.fs)


def test_a_window_of_no_positive_energy_keeps_the_estimate():
    """A Joulescope wired backwards (or bypassed) integrates to a negative (or zero) energy:
    it went into results.json as the epoch's measured millijoules."""
    from tinysift.device.energy import Window
    from tinysift.device.results import EpochResult, PhaseResult
    from tinysift.device.session import _apply_measurements

    doc = DeviceResults(board="nucleo_f411re", clock_hz=100_000_000, params={},
                        energy_model={}, started="",
                        phases={"features": PhaseResult(10**6, 0.01, 0.4),
                                "evaluation": PhaseResult(10**6, 0.01, 0.4)},
                        epochs=[EpochResult(n, 1.0, 0.5, 10**6, 0.01, 0.4) for n in (1, 2)])
    _apply_measurements(doc, [Window(0.0, 0.01, 0.5, 15.0), Window(0.1, 0.01, -0.3, -9.0),
                              Window(0.2, 0.01, 0.0, 0.0), Window(0.3, 0.01, 0.6, 18.0)])
    assert [(ep.energy_mj, ep.energy_kind) for ep in doc.epochs] == [
        (0.4, "estimated"), (0.4, "estimated")]
    assert doc.phases["features"].energy_kind == "measured"
    assert doc.phases["evaluation"].energy_mj == 0.6
    (event,) = [e["monitor"] for e in doc.events if "monitor" in e]
    assert "no positive energy in the marker window of epoch 1, epoch 2" in event
    assert "through the Joulescope" in event


def test_calibrate_refuses_a_cut_window(monkeypatch):
    from tinysift.device import calibrate as cal
    from tinysift.device.energy import Window

    class Monitor:
        name = "joulescope"

    monkeypatch.setattr(cal, "run_workload", lambda port, ms, monitor, board=None: (
        1000, [Window(0.0, 1.2, 40.0, 10.0, complete=False)]))
    with pytest.raises(DeviceError, match="only part"):
        cal.calibrate("nucleo_f411re", port="/dev/null", monitor=Monitor(), ms=2000)


@pytest.mark.parametrize("mean_ma", [0.0, -12.5])
def test_calibrate_refuses_a_current_no_running_board_draws(monkeypatch, tmp_path, mean_ma):
    """A Joulescope wired backwards (or bypassed) reads a negative (or zero) mean current:
    it went into the profile as the board's current, and the profile then failed to load."""
    from tinysift.boards import load_board
    from tinysift.device import calibrate as cal
    from tinysift.device.energy import Window

    class Monitor:
        name = "joulescope"

    monkeypatch.setenv("TINYSIFT_CONFIG_DIR", str(tmp_path))
    monkeypatch.setattr(cal, "run_workload", lambda port, ms, monitor, board=None: (
        1000, [Window(0.0, 2.0, -80.0, mean_ma)]))
    with pytest.raises(DeviceError, match=r"not a running board's current: check that the "
                                          r"board's supply runs through the Joulescope"):
        cal.calibrate("nucleo_f411re", port="/dev/null", monitor=Monitor(), ms=2000)
    assert not load_board("nucleo_f411re").user_profile  # nothing written


def test_calibrate_writes_one_whole_windows_current_and_waits_out_the_workload(monkeypatch,
                                                                               tmp_path):
    """With a power monitor: exactly one marker window (none or two are refused, naming the
    marker wire); its mean current, 0.0001..3,000 mA with both ends taken, goes into the
    profile (4 decimals, measured, the window's length said); the workload is 2,000 ms
    unless --ms says, and `calib` is waited for the workload on top of the timeout."""
    from tinysift.boards import load_board
    from tinysift.device import calibrate as cal
    from tinysift.device import link as link_mod
    from tinysift.device.energy import Window

    class Monitor:
        name = "joulescope"

    monkeypatch.setenv("TINYSIFT_CONFIG_DIR", str(tmp_path))
    asked, windows = [], []
    run_workload = cal.run_workload

    def workload(port, ms, monitor, board=None):
        asked.append(ms)
        return 1000, list(windows)

    monkeypatch.setattr(cal, "run_workload", workload)
    for seen in ([], [Window(0.0, 2.0, 80.0, 12.0)] * 2):
        windows[:] = seen
        with pytest.raises(DeviceError, match=rf"saw {len(seen)} marker windows during "
                                              r"`calib`, expected 1: check the marker wire"):
            cal.calibrate("nucleo_f411re", port="/dev/null", monitor=Monitor())
    assert not load_board("nucleo_f411re").user_profile
    for mean in (0.0001, 3000.0):
        windows[:] = [Window(0.0, 2.0, 80.0, mean)]
        cal.calibrate("nucleo_f411re", port="/dev/null", monitor=Monitor())
        assert load_board("nucleo_f411re").active_current_ma == mean
    windows[:] = [Window(0.0, 2.0, 80.0, 3000.5)]
    with pytest.raises(DeviceError, match="measured 3000.5 mA during `calib`"):
        cal.calibrate("nucleo_f411re", port="/dev/null", monitor=Monitor())
    windows[:] = [Window(0.5, 0.501, 80.0, 12.34567)]
    res = cal.calibrate("nucleo_f411re", port="/dev/null", monitor=Monitor(), ms=500)
    assert (res.cycles, res.window_s, res.measured_ma) == (1000, 0.501, 12.34567)
    assert asked == [2000] * 5 + [500]
    board = load_board("nucleo_f411re")
    assert board.active_current_ma == 12.3457 and not board.current_is_estimate
    assert "(joulescope, one 0.50 s marker window of `calib`)" in board.current_source

    class Link:  # the board's side of run_workload: `calib` answers, its timeout noted
        timeouts = []

        def __init__(self, port):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def wait_boot(self, timeout):
            raise DeviceError("booted before the port opened")

        def command(self, line, timeout):
            self.timeouts.append((line, timeout))
            return [parse_record("@phase name=calib cycles=300000000"),
                    parse_record("@ready cmd=calib status=0")]

    monkeypatch.setattr(link_mod, "SerialLink", Link)
    assert run_workload("/dev/null", 3000, None, timeout=5.0) == (300_000_000, [])
    assert Link.timeouts == [("calib ms=3000", 8.0)]


def test_run_workload_reads_the_calib_phase_and_closes_the_monitor_when_calib_fails(
        monkeypatch):
    """run_workload takes the cycles of the `@phase name=calib` record, not of another phase
    sent before it; an answer without that phase is not the host's firmware (flash the
    current one), nor are negative cycles; a `calib` that fails leaves the power monitor
    closed, not open and capturing (PowerMonitor.close's contract)."""
    from tinysift.device import calibrate as cal
    from tinysift.device import link as link_mod
    from tinysift.device.energy import PowerMonitor
    from tinysift.device.protocol import RecordError

    answers: list = []

    class Link:  # the board's side: `calib` answers the next of ``answers``, or raises it
        def __init__(self, port: str):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def wait_boot(self, timeout: float):
            raise DeviceError("booted before the port opened")

        def command(self, line: str, timeout: float):
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return [parse_record(payload) for payload in answer]

    class Monitor(PowerMonitor):
        def __init__(self):
            self.calls: list[str] = []

        def start(self, longest_s: float | None = None) -> None:
            self.calls.append("start")

        def stop(self) -> list:
            self.calls.append("stop")
            return []

        def close(self) -> None:
            self.calls.append("close")

    monkeypatch.setattr(link_mod, "SerialLink", Link)
    ready = "@ready cmd=calib status=0"
    answers.append(["@phase name=features cycles=5", "@phase name=calib cycles=300", ready])
    assert cal.run_workload("/dev/null", 100, None) == (300, [])
    answers.append(["@phase name=features cycles=5", ready])
    with pytest.raises(DeviceError, match=r"did not run `calib` \(records: \['phase', "
                                          r"'ready'\]\); flash the current firmware"):
        cal.run_workload("/dev/null", 100, None)
    answers.append(["@phase name=calib cycles=-300", ready])
    with pytest.raises(RecordError, match="cycles='-300', not a finite number of at least 0"):
        cal.run_workload("/dev/null", 100, None)
    monitor = Monitor()
    answers.append(DeviceError("the port went away"))
    with pytest.raises(DeviceError, match="the port went away"):
        cal.run_workload("/dev/null", 100, monitor)
    assert monitor.calls == ["start", "close"]


def test_joulescope_monitor_sizes_the_stream_buffer_to_the_capture(monkeypatch):
    """The driver's stream buffer holds 30 s unless set, and read() refuses a longer
    capture: the monitor sizes it to the capture (here 120 s, on a fake whose captured
    second takes 10 ms and which samples at 1 kHz, one of the driver's sampling_frequency
    values)."""
    from fake_joulescope import FakeJoulescope, MarkerWire, install
    from tinysift.device.energy import JoulescopeMonitor

    wire = MarkerWire()
    dev = FakeJoulescope(wire, sampling_frequency=1000, time_scale=0.01)
    assert dev.buffer_duration == 30  # the driver's default
    install(monkeypatch, dev)
    # 1.2 s of real time, ended by stop() (no longer to run): a 45 s capture lasted 0.45 s,
    # and this test's marker, 0.12 s in, was cut where it started 0.33 s late
    mon = JoulescopeMonitor(duration_s=120.0)
    mon.start()
    assert len(dev.stream_buffer) / dev.fs >= 120.0
    time.sleep(0.02)
    ((rise, fall),) = _drive_marker(wire, [0.1])
    (w,) = mon.stop()
    _assert_window(w, rise, fall, dev.fs, time_scale=0.01)


def test_joulescope_capture_is_sized_from_the_command(monkeypatch):
    """start(longest_s) (a session's deadline for `train`) sizes the capture and the
    driver's stream buffer, at most max_s (default: 4 GB of buffer at a JS110's 2 MHz,
    133 s); without it the capture is duration_s (`device calibrate`). A cap that is not a
    positive number of seconds is refused in one line."""
    from fake_joulescope import FakeJoulescope, MarkerWire, install
    from tinysift.device.energy import JoulescopeMonitor

    dev = FakeJoulescope(MarkerWire(), sampling_frequency=1000, time_scale=0.001)
    install(monkeypatch, dev)
    mon = JoulescopeMonitor(duration_s=5.0)
    assert mon.max_s == pytest.approx(4e9 / (15 * 2e6))
    for longest, capture in ((90.0, 90.0), (500.0, mon.max_s), (None, 5.0)):
        mon.start(longest)
        mon.stop()
        assert dev.reads[-1]["contiguous_duration"] == pytest.approx(capture)
        assert dev.buffer_duration >= capture
    # a cap below the 60 s default (device run --joulescope-max-s 30) is the capture
    assert JoulescopeMonitor(max_s=30.0).duration_s == 30.0
    assert JoulescopeMonitor(duration_s=30.0, max_s=30.0).duration_s == 30.0  # at the cap
    with pytest.raises(DeviceError, match="a 40 s Joulescope capture is over its 30 s cap"):
        JoulescopeMonitor(duration_s=40.0, max_s=30.0)
    mon = JoulescopeMonitor(max_s=600.0)
    mon.start(450.0)
    mon.stop()
    assert dev.reads[-1]["contiguous_duration"] == 450.0 and dev.buffer_duration == 451
    mon.start(90.5)  # whole seconds, rounded up, with one to spare
    mon.stop()
    assert dev.buffer_duration == 92
    for bad in (0.0, -3.0, float("nan"), float("inf")):
        with pytest.raises(DeviceError, match="positive, finite cap") as err:
            JoulescopeMonitor(max_s=bad)
        assert "\n" not in str(err.value)


def test_calibrate_refuses_a_capture_over_the_buffer_cap(monkeypatch, capsys, tmp_path):
    """`device calibrate --joulescope --ms 600000` asked the driver for a 602 s buffer (18 GB
    at a JS110's 2 MHz), allocated when it opens: a MemoryError said as "no Joulescope found
    or it failed to open". Refused before anything is opened, in one line naming --ms."""
    from fake_joulescope import FakeJoulescope, MarkerWire, install
    from tinysift.cli import main

    monkeypatch.setenv("TINYSIFT_CONFIG_DIR", str(tmp_path))
    dev = FakeJoulescope(MarkerWire())
    install(monkeypatch, dev)
    assert main(["device", "calibrate", "--board", "nucleo_f411re", "--port", "/dev/null",
                 "--joulescope", "--ms", "600000"]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "602 s Joulescope capture" in lines[0], lines
    assert "--ms" in lines[0]
    assert not dev.reads and not dev.is_open and not list(tmp_path.iterdir())


def test_joulescope_capture_ends_with_the_command(monkeypatch):
    """The longest capture is a cap, not the length: stop() ends the streaming through the
    driver's stream_notify (True stops it) and read() returns what was captured; it used to
    wait for the whole fixed-length capture (60 s after every `device run`)."""
    from fake_joulescope import FakeJoulescope, MarkerWire, install
    from tinysift.device.energy import JoulescopeMonitor

    wire = MarkerWire()
    dev = FakeJoulescope(wire)
    install(monkeypatch, dev)
    mon = JoulescopeMonitor(duration_s=20.0)
    began = time.monotonic()
    mon.start()
    edges = _drive_marker(wire, [0.1, 0.1])
    windows = mon.stop()
    assert time.monotonic() - began < 5.0
    assert not dev.is_open and dev.reads[0]["contiguous_duration"] == 20.0
    assert len(windows) == 2
    for w, (rise, fall) in zip(windows, edges, strict=True):
        _assert_window(w, rise, fall, dev.fs)


def test_a_joulescope_capture_that_ran_out_before_stop_says_so(monkeypatch):
    """A capture whose longest length ran out before stop() (the command outlasted it) is
    ``ended_early``: its windows are the command's first ones, and the session keeps the
    estimates of the phases it did not see. One that stop() ended is not."""
    from fake_joulescope import FakeJoulescope, MarkerWire, install
    from tinysift.device.energy import JoulescopeMonitor

    dev = FakeJoulescope(MarkerWire())
    install(monkeypatch, dev)
    mon = JoulescopeMonitor(duration_s=0.2)
    mon.start()
    deadline = time.monotonic() + 10.0
    while dev.is_streaming and time.monotonic() < deadline:  # its 0.2 s run out
        time.sleep(0.01)
    # read() has returned to the monitor: its thread joined, not 0.1 s slept (a read that
    # took longer to hand back its samples was then ended by stop(), not early)
    mon._thread.join(timeout=10.0)
    mon.stop()
    assert mon.ended_early
    mon.start()
    mon.stop()
    assert not mon.ended_early


def test_integrate_windows_flags_dropped_samples():
    """The driver fills dropped samples with NaN: the window holding them is incomplete
    (its phase keeps the estimate) and its energy a number, not NaN."""
    fs = 1000.0
    t = np.arange(1000) / fs
    marker = (((t >= 0.1) & (t < 0.3)) | ((t >= 0.5) & (t < 0.7))).astype(np.uint8)
    current = np.where(marker, 0.010, 0.001)
    current[550:560] = np.nan
    first, second = integrate_windows(t, current, np.full_like(t, 3.3), marker)
    assert first.complete and not second.complete
    assert np.isfinite(second.energy_mj) and second.energy_mj < first.energy_mj
    assert np.isfinite(second.mean_current_ma) and second.mean_current_ma < 10.0


def test_joulescope_monitor_refuses_before_the_command_when_no_samples_come(monkeypatch):
    from fake_joulescope import FakeJoulescope, MarkerWire, install
    from tinysift.device.energy import JoulescopeMonitor

    dev = FakeJoulescope(MarkerWire(), startup_s=30.0)
    install(monkeypatch, dev)
    mon = JoulescopeMonitor(duration_s=1.0)
    mon.start_timeout_s = 0.2
    with pytest.raises(DeviceError, match="did not start"):
        mon.start()
    assert not dev.is_open


def _framed_raw(body: bytes) -> bytes:
    """``body`` (payload and the byte before ``*``) with a valid CRC, built by hand: what
    frame() refuses to make."""
    return body + f"*{crc16(body):04X}".encode()


@pytest.mark.parametrize("line", [
    _framed_raw(b"@ready cmd=x status=0"),  # no space before '*': CRC over the payload only
    _framed_raw(b"@ready cmd=x status=0_"),  # another byte where the space goes
], ids=["no space", "another byte for the space"])
def test_a_line_without_the_space_before_the_checksum_is_refused(line):
    """TSP/1 puts one space before `*` and the CRC covers it (docs/protocol.md): a line
    without it, even with a CRC that matches its bytes, is not a record; read as one it
    lost its last character (`status=0` became `status=`)."""
    with pytest.raises(FrameError, match="no ' \\*XXXX' checksum"):
        unframe(line)


def test_a_line_of_the_longest_length_is_read_and_one_byte_more_is_not():
    """``max_len`` bounds a line (the firmware's line buffer, MAX_LINE): a line of exactly
    that length is read; one byte more is refused as too long."""
    payload = "@x v=" + "a" * (MAX_LINE - len("@x v=") - len(" *XXXX"))
    line = frame(payload)[:-1]
    assert len(line) == MAX_LINE
    assert unframe(line) == payload
    longer = frame(payload + "a")[:-1]
    with pytest.raises(FrameError, match=f"line of {MAX_LINE + 1} bytes exceeds {MAX_LINE}"):
        unframe(longer)


def test_a_line_of_non_ascii_bytes_with_a_matching_crc_is_dropped():
    """Line noise that happens to leave a valid CRC (1 in 65,536 garbled lines) over bytes
    outside printable ASCII: the line is dropped and counted like any corrupt one, not a
    UnicodeDecodeError that ends the session."""
    bad = _framed_raw(b"@info proto=\xb1 ") + b"\n"

    def script(cmd, send):
        send(bad + rec("@info proto=1") + rec("@ready cmd=info status=0"))

    with pytest.raises(FrameError, match="non-printable byte"):
        unframe(bad[:-1])
    peer = Peer(script=script)
    peer.start()
    with SerialLink(peer.url) as link:
        records = link.command("info", timeout=5.0)
        assert [r.type for r in records] == ["info", "ready"]
        assert records[0].fields == {"proto": "1"}
        assert link.stats.dropped_lines == 1 and link.stats.dropped_bytes == len(bad)
    peer.stop.set()


def test_the_printable_range_ends_at_space_and_tilde():
    """TSP/1 lines are printable ASCII, 0x20..0x7E: a CRC-valid line holding the byte just
    below (0x1F) or just above (0x7F, DEL) is refused as non-printable, like line noise;
    the range's own ends, a space and a '~', are read."""
    for outside in (b"\x1f", b"\x7f"):
        with pytest.raises(FrameError, match="non-printable byte"):
            unframe(_framed_raw(b"@info note=" + outside + b" "))
    assert unframe(_framed_raw(b"@info note=~ ")) == "@info note=~"


def test_a_payload_with_a_newline_cannot_be_framed():
    """A newline ends a TSP/1 line: a payload holding one would reach the other side as two
    lines, neither with its checksum, so frame() refuses it as it refuses a '*'; so is every
    byte unframe() refuses as non-printable (a tab or CR was framed, then dropped there) and
    a non-ASCII one (a UnicodeEncodeError)."""
    for payload in ("@info note=a\nb", "@info note=a\tb", "@info note=a\rb", "@info note=\x7f",
                    "@info note=é"):
        with pytest.raises(ValueError, match=r"may not contain '\*' or a newline, and holds "
                                             r"printable ASCII only \(0x20\.\.0x7E\), got "):
            frame(payload)
    assert unframe(frame("@info note=~ !")[:-1]) == "@info note=~ !"


def test_a_record_the_host_cannot_use_names_the_record_and_the_fix():
    """A RecordError says which record and which field was wrong, with the record's fields,
    and the fix: the firmware and this host disagree on TSP/1, so the firmware is rebuilt
    and flashed from this checkout; the record travels with the error. A field bounded above
    only says its upper bound."""
    from tinysift.device.protocol import RecordError

    epoch = parse_record("@epoch n=x loss=1")
    with pytest.raises(RecordError) as err:
        epoch.int("n")
    message = str(err.value)
    assert message.startswith("the device sent @epoch that has n='x', not an integer "
                              "(n=x loss=1); ")
    assert message.endswith("rebuild and flash the firmware from this checkout "
                            "(`tinysift device flash`)")
    assert err.value.record is epoch
    with pytest.raises(RecordError, match=r"has loss='2', not a finite number of at most 1 "):
        parse_record("@epoch loss=2").float("loss", high=1)


def test_a_reset_after_noise_holding_an_at_sign_is_still_seen():
    """A device that resets while sending a line starts its @boot right after the cut; the
    cut line may hold noise with an `@` in it before the partial record. Every `@` of the
    corrupt line is tried, so the @boot is found and the reset reported, not lost (the host
    then waited for a @ready that never came)."""
    cut = b"x@y" + rec("@epoch n=1")[:9]
    stats = _reset_after(cut, timeout=3.0)
    assert stats.dropped_lines == 1 and stats.dropped_bytes == len(cut)


def test_a_device_that_keeps_talking_without_finishing_stops_at_the_deadline():
    """Records that keep coming (each within the silence limit, fewer than the record bound)
    without the command's @ready: the command fails at its deadline, naming it, instead of
    waiting as long as the device keeps talking."""
    from tinysift.device.limits import Limits

    def script(cmd, send):
        for n in range(40):  # 8 s of progress, well past the 2 s deadline
            if peer.stop.is_set():
                return
            send(rec(f"@epoch n={n}"))
            time.sleep(0.2)

    peer = Peer(script=script)
    peer.start()
    with SerialLink(peer.url) as link:
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match=r"`train` did not finish by its deadline"):
            link.command("train", limits=Limits(1.0, 2.0, 1000))
        assert time.monotonic() - t0 < 3.5
    peer.stop.set()


def test_an_unreadable_db_use_is_sent_again():
    """`db use` only selects the data set (harmless twice, docs/protocol.md): unread, it is
    sent once more after a second of silence, not failed after the command's whole silence
    limit as a `train` is."""
    def script(cmd, send):
        if cmd.startswith("db use"):
            send(rec("@db loaded=20 source=flash") + rec("@ready cmd=db status=0"))

    peer = GarblingPeer(1, script=script)
    peer.start()
    with SerialLink(peer.url) as link:
        t0 = time.monotonic()
        records = link.command("db use flash", timeout=5.0)
        assert time.monotonic() - t0 < 4.0
        assert [r.type for r in records] == ["db", "ready"]
        assert peer.received == ["db use flash"] and link.stats.garbled_host_lines == 1
    peer.stop.set()


# ---- link.py's bounds (mutation audit) -------------------------------------------------------

def test_the_highest_tcp_port_is_a_socket_url():
    """Port 65535 is a port (1..65535): not refused as a malformed URL, it is tried and,
    with nothing listening, fails as a port that cannot be opened."""
    with pytest.raises(DeviceError, match=r"^cannot open socket://127\.0\.0\.1:65535: "):
        SerialLink("socket://127.0.0.1:65535", connect_timeout=0.2)


def test_a_max_line_below_the_protocol_s_still_reads_its_lines():
    """``max_line`` only raises the accepted length: below MAX_LINE a record of the
    protocol's own length limit is still read."""
    peer = Peer(on_connect=rec("@boot proto=1 resets=0 board=qemu-mps2-an386"))
    peer.start()
    with SerialLink(peer.url, max_line=10) as link:
        assert link.wait_boot(timeout=2.0).fields["board"] == "qemu-mps2-an386"
        assert link.stats.dropped_lines == 0
    peer.stop.set()


def test_a_write_whose_deadline_has_passed_still_gets_its_short_timeout():
    """A command sent after its deadline (a slow earlier step) gets the 50 ms floor as its
    write timeout, not a negative one that pyserial refuses: the bytes are written."""
    peer = Peer()
    peer.start()
    with SerialLink(peer.url) as link:
        link.write_line("info", deadline=time.monotonic() - 5.0)
        assert link.port.write_timeout == pytest.approx(0.05)
        for _ in range(100):
            if peer.received:
                break
            time.sleep(0.01)
        assert peer.received == ["info"]
    peer.stop.set()


def test_an_overflow_keeps_the_last_at_sign_of_its_tail_only():
    """More than max_line bytes without a newline, with an `@` in the noise before the
    partly arrived @boot: the noise up to the @boot's own `@` is dropped in one go (one
    dropped line), and the @boot read whole."""
    noise = bytearray((b"\xff\x00 noise " * 500)[:4080])
    noise[4000] = ord("@")  # within the last MAX_LINE bytes kept when the buffer overflows
    stats = _reset_after(bytes(noise), timeout=3.0)
    assert stats.dropped_bytes == 4080 and stats.dropped_lines == 1


@pytest.mark.parametrize("garbage", [b"x" * 5000, b"@" + b"x" * 4999],
                         ids=["no @", "an @ more than a record back"])
def test_garbage_without_newline_is_dropped_while_waiting(garbage: bytes):
    """4097 bytes without a newline (one more than max_line) are dropped as soon as they
    are there, counted as one line, even if no newline ever comes; the timeout says so. An
    `@` more than one record (MAX_LINE bytes) back is no partly arrived record: dropped with
    the rest (kept, it was kept at every overflow and nothing was ever dropped)."""
    peer = Peer(script=lambda cmd, send: send(garbage))
    peer.start()
    with SerialLink(peer.url) as link:
        with pytest.raises(DeviceError, match=r"no valid record .* \(1 corrupt lines dropped\)"):
            link.command("info", timeout=1.0)
        assert link.stats.dropped_lines == 1 and link.stats.dropped_bytes == 4097
    peer.stop.set()


def test_a_command_may_send_exactly_its_record_bound():
    """``limits.records`` is the most a command can send, its @ready included: exactly that
    many is a finished command, one more is refused."""
    from tinysift.device.limits import Limits

    peer = Peer(script=answer_info)  # @info, @mem, @ready: three records
    peer.start()
    with SerialLink(peer.url) as link:
        records = link.command("info", limits=Limits(5.0, 10.0, 3))
        assert [r.type for r in records] == ["info", "mem", "ready"]
        with pytest.raises(DeviceError, match=r"sent 3 records for `info` without ending it "
                                              r"\(it can send at most 2; last: @ready "):
            link.command("info", limits=Limits(5.0, 10.0, 2))
    peer.stop.set()


def test_wait_boot_takes_its_record_bound_of_other_records_first():
    """``wait_boot``'s bound counts the records other than @boot: that many before it are
    passed over, one more is refused naming how many came."""
    from tinysift.device.limits import Limits

    chatter = rec("@log msg=a") + rec("@log msg=b")
    peer = Peer(on_connect=chatter + rec("@boot proto=1 resets=0"))
    peer.start()
    with SerialLink(peer.url) as link:
        assert link.wait_boot(limits=Limits(2.0, 4.0, 2)).fields["resets"] == "0"
    peer.stop.set()
    peer = Peer(on_connect=chatter + rec("@log msg=c") + rec("@boot proto=1 resets=0"))
    peer.start()
    with SerialLink(peer.url) as link, pytest.raises(DeviceError,
                                                     match=r"sent 3 records but no @boot"):
        link.wait_boot(limits=Limits(2.0, 4.0, 2))
    peer.stop.set()


def test_records_sent_just_before_the_emulator_closes_are_all_read():
    """A peer that sends its last records and closes at once (QEMU exiting): every record
    is read before the link reports the close (a read of many bytes lost the partial read
    when the peer closed)."""
    def script(cmd, send):
        send(rec("@info proto=1") + rec("@mem stack=8192") + rec("@ready cmd=info status=0"))
        peer.conn.shutdown(socket.SHUT_RDWR)
        peer.conn.close()

    peer = Peer(script=script)
    peer.start()
    with SerialLink(peer.url) as link:
        assert [r.type for r in link.command("info", timeout=5.0)] == ["info", "mem", "ready"]
    peer.stop.set()


def test_a_refusal_names_every_err_of_the_command():
    """Every @err the command sent is in its refusal, in order, not only the last ones."""
    def script(cmd, send):
        send(rec("@err code=5 msg=first") + rec("@err code=5 msg=second")
             + rec("@log msg=cleanup") + rec("@ready cmd=bogus status=5"))

    peer = Peer(script=script)
    peer.start()
    with SerialLink(peer.url) as link, pytest.raises(
            DeviceError, match=r"^device refused 'bogus': status 5 \(first; second\)$"):
        link.command("bogus", timeout=5.0)
    peer.stop.set()


def test_on_idle_runs_only_while_no_bytes_come():
    """``on_idle`` (the session writes pending results then) runs when a read finds nothing,
    not for every byte read: a @boot already waiting in the socket is read without it."""
    idle = []
    peer = Peer(on_connect=rec("@boot proto=1 resets=0"))
    peer.start()
    with SerialLink(peer.url, on_idle=lambda: idle.append(1)) as link:
        # The @boot is in the socket before the read starts: waited for, not slept for (a
        # fixed 0.3 s lost the race to a peer thread scheduled late); one small send on
        # loopback arrives whole.
        deadline = time.monotonic() + 10.0
        while not link.port.in_waiting and time.monotonic() < deadline:
            time.sleep(0.01)
        assert link.wait_boot(timeout=2.0).fields["resets"] == "0"
        assert idle == []
    peer.stop.set()


def test_a_socket_that_listens_late_is_retried_until_it_does():
    """An emulator still binding its TCP port when the host connects: a refused socket
    connect is retried within connect_timeout, and the link then reads its @boot."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # a free port, nothing listening yet
    done = threading.Event()

    def emulator():
        time.sleep(0.3)
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(1)
        conn, _ = srv.accept()
        conn.sendall(rec("@boot proto=1 resets=0"))
        done.wait(5.0)
        conn.close()
        srv.close()

    thread = threading.Thread(target=emulator, daemon=True)
    thread.start()
    try:
        with SerialLink(f"socket://127.0.0.1:{port}", connect_timeout=5.0) as link:
            assert link.wait_boot(timeout=2.0).fields["resets"] == "0"
    finally:
        done.set()
        thread.join(5.0)
