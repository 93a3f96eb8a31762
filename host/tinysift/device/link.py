"""A serial link speaking TSP/1 over pyserial: real ports and ``socket://`` (QEMU)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tinysift.device.limits import Limits
from tinysift.device.protocol import MAX_LINE, FrameError, Record, frame, parse_record, unframe
from tinysift.errors import DeviceError, DeviceUnavailable

#: Commands the device may run twice without harm: sent again when the device answers that
#: it could not read a line and then stays silent (``db use`` too, by its full text).
RESENDABLE = ("info", "name", "results")
#: ts_status_t's TS_ERR_PARAM (ts_model.h): in `train`, a head that cannot be re-quantized
TS_ERR_PARAM = 6
#: Seconds of silence after an unreadable-line answer that mean a resendable command was not
#: read (the device answers a command it read within milliseconds).
UNREAD_GRACE = 1.0


@dataclass
class LinkStats:
    """What the link read and dropped (``results.json`` ``link``).

    Attributes
    ----------
    records : valid records read
    dropped_lines : corrupt or unframed lines dropped
    dropped_bytes : their bytes
    stray_records : valid records of another command (those before a ``@ready`` for a
        command other than the one waited on, that ``@ready`` included), left out of the
        command's records
    garbled_host_lines : host lines the device could not read (``@ready cmd=-``)
    """

    records: int = 0
    dropped_lines: int = 0
    dropped_bytes: int = 0
    stray_records: int = 0
    garbled_host_lines: int = 0


class DeviceReset(DeviceError):
    """An unexpected ``@boot`` arrived in the middle of a command."""

    def __init__(self, boot: Record, received: list[Record], command: str = ""):
        super().__init__(f"the device reset during `{command or 'a command'}` (boot record "
                         f"{boot.fields}); {len(received)} records received before the reset "
                         "were kept")
        self.boot = boot
        self.received = received
        self.command = command


def _check_socket_url(url: str) -> None:
    """A ``socket://`` URL must name a host and a port: a malformed one was retried for the
    whole connect timeout (as if an emulator were still binding) and then reported in
    pyserial's words (`'<=' not supported between instances of 'int' and 'NoneType'`)."""
    if not url.startswith("socket://"):
        return
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or not 1 <= port <= 65535:
        raise DeviceUnavailable(f"{url} is not a socket URL: give socket://HOST:PORT with a "
                                "port 1..65535 (e.g. socket://127.0.0.1:5555, an emulator's "
                                "serial port), or a serial port such as /dev/ttyACM0")


def _open_port(url: str, baudrate: int):
    import serial

    # a port is one session's: without the lock a second tinysift (two terminals, a
    # `device calibrate` beside a `device run`) opened it too, and each read the other's bytes
    lock = {} if "://" in url else {"exclusive": True}
    port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05, do_not_open=True,
                                 **lock)
    if url.startswith("socket://"):
        # pyserial's socket handler drains everything already received when it opens, which
        # loses an emulator's boot record (QEMU starts the guest as soon as we connect).
        port.reset_input_buffer = lambda: None
        port.open()
        del port.reset_input_buffer
    else:
        port.open()
    return port


class SerialLink:
    """Line I/O with drop counting and resynchronization.

    Parameters
    ----------
    url : a port (``/dev/ttyACM0``) or a pyserial URL (``socket://127.0.0.1:5555``)
    baudrate : for real ports
    on_record : called with every valid record as it arrives (append-only logging)
    max_line : longest accepted line
    on_idle : called while a read waits for bytes (the session writes pending results then)
    """

    def __init__(self, url: str, baudrate: int = 115200,
                 on_record: Callable[[Record], None] | None = None, max_line: int = 4096,
                 connect_timeout: float = 10.0, on_idle: Callable[[], None] | None = None):
        import serial

        self.url = url
        _check_socket_url(url)
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self.port = _open_port(url, baudrate)
                break
            except (serial.SerialException, OSError, ValueError) as exc:
                # An emulator may still be binding its TCP port: retry sockets briefly.
                if url.startswith("socket://") and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise DeviceUnavailable(f"cannot open {url}: {exc}. Check the port name "
                                        "(`tinysift device list`) and that no other program "
                                        "holds it") from exc
        self.stats = LinkStats()
        self.on_record = on_record
        self.on_idle = on_idle
        self.max_line = max(max_line, MAX_LINE)
        self._buf = bytearray()
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.port.close()
            except Exception:  # noqa: BLE001 - closing a dead socket may raise anything
                pass

    def __enter__(self) -> SerialLink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write_line(self, payload: str, deadline: float | None = None) -> None:
        self.write_raw(frame(payload), deadline)

    def write_raw(self, data: bytes, deadline: float | None = None) -> None:
        """Write ``data``; with ``deadline`` (time.monotonic()), a device that stops reading
        fails the write at the deadline instead of blocking forever."""
        import serial

        if deadline is not None:
            self.port.write_timeout = max(0.05, deadline - time.monotonic())
        try:
            self.port.write(data)
            self.port.flush()
        except serial.SerialTimeoutException as exc:
            raise DeviceError(f"{self.url} stopped reading: writing {len(data)} bytes did not "
                              "finish before the command's deadline") from exc
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"writing to {self.url} failed: {exc}; a board unplugged (or its "
                           "USB reset) or an emulator gone: check the cable, plug the board "
                           "back in and run again") from exc

    def read_record(self, timeout: float, deadline: float | None = None,
                    what: str = "") -> Record:
        """The next valid record; corrupt lines are dropped and counted.

        ``timeout``: seconds without a valid record; ``deadline``: a time.monotonic() the
        record must arrive by; ``what``: the command waited for (for the messages)."""
        import serial

        quiet_until = time.monotonic() + timeout
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[:nl + 1]
                try:
                    rec = parse_record(unframe(line, self.max_line))
                except FrameError:
                    rec = _record_after_cut(line, self.max_line)
                    self.stats.dropped_lines += 1
                    if rec is None:
                        self.stats.dropped_bytes += len(line) + 1
                        continue
                    self.stats.dropped_bytes += len(line) - len(rec[1])
                    rec = rec[0]
                self.stats.records += 1
                if self.on_record is not None:
                    self.on_record(rec)
                return rec
            if len(self._buf) > self.max_line:  # garbage without newlines: resync
                # Keep the tail from the last '@' (at most one record long): a device that
                # resets inside the noise has its @boot partly here, and losing it would
                # hide the reset.
                at = self._buf.rfind(b"@", len(self._buf) - MAX_LINE)
                cut = at if at >= 0 else len(self._buf)
                self.stats.dropped_bytes += cut
                self.stats.dropped_lines += 1
                del self._buf[:cut]
            now = time.monotonic()
            if deadline is not None and now > deadline:
                raise DeviceTimeout(
                    f"{what or 'the device'} did not finish by its deadline on {self.url} "
                    f"({self.stats.dropped_lines} corrupt lines dropped): the device is much "
                    "slower than its board profile says, or it keeps talking without "
                    "finishing; pass a larger --timeout if the board is really that slow")
            if now > quiet_until:
                raise DeviceTimeout(
                    f"no valid record from {self.url} for {timeout:.0f} s"
                    f"{' during ' + what if what else ''} "
                    f"({self.stats.dropped_lines} corrupt lines dropped). Is the board "
                    "flashed with tinysift firmware (`tinysift device flash`), the port "
                    "right and the baud rate 115200?")
            try:
                # Read byte-wise from sockets: pyserial loses a partial read when the peer
                # closes (QEMU exiting).
                chunk = self.port.read(1 if self.url.startswith("socket://") else 256)
            except (serial.SerialException, OSError) as exc:
                # the fix was left unsaid
                raise LinkLost(f"the link to {self.url} closed: {exc}; a board unplugged (or "
                               "its USB reset) or an emulator gone: check the cable, plug the "
                               "board back in (an emulator's qemu.log says why it ended) and "
                               "run again") from exc
            if chunk:
                self._buf.extend(chunk)
            elif self.on_idle is not None:
                self.on_idle()

    def command(self, cmd: str, timeout: float = 20.0,
                on_progress: Callable[[Record], None] | None = None,
                data: list[bytes] | None = None, limits: Limits | None = None
                ) -> list[Record]:
        """Send ``cmd`` and collect records up to its ``@ready``.

        Records before a ``@ready`` of another command (one still running from an earlier
        command or session) are that command's: they are left out and counted
        (``stats.stray_records``). ``@ready cmd=-`` with a nonzero status means the device
        could not read a host line (docs/protocol.md); if the command then does not run, a
        resendable one (:data:`RESENDABLE`) is sent once more, any other fails with a
        message naming the garbled direction (sending `train` twice would train twice).

        Parameters
        ----------
        cmd : the command line
        timeout : without ``limits``: seconds without a valid record, 10x that in all, and
            1000 records
        on_progress : called with every record as it arrives (before it is known to be
            stray: records of another command reach it too)
        data : lines sent right after ``cmd`` (``db load``, ``db stream``)
        limits : the command's bounds (tinysift.device.limits)

        Returns
        -------
        list of Record : the command's records, its ``@ready`` last

        Raises
        ------
        DeviceReset : a ``@boot`` arrived before ``@ready``
        DeviceTimeout : silence, or the deadline passed
        DeviceError : more records than the command can produce, the link closed,
            ``@ready`` with a nonzero status (message from ``@err``), or the device could
            not read the command (twice, for a resendable one)
        """
        limits = limits or Limits(timeout, 10 * timeout, 1000)
        name = cmd.split(" ")[0]
        resendable = name in RESENDABLE or cmd.startswith("db use")
        sends = 0
        while True:  # one pass per send: the first, and one resend of an unread command
            sends += 1
            deadline = time.monotonic() + limits.deadline
            self.write_line(cmd, deadline)
            if data:
                self.write_raw(b"".join(data), deadline)
            received, garbled = self._collect(cmd, name, limits, deadline, on_progress,
                                              resendable)
            if garbled is None:
                return received
            if resendable and sends < 2:
                continue
            raise DeviceError(
                f"{self.url} answered that it could not read a line from the host (@err "
                f"{garbled}) and then did not run `{name}`"
                + (" after it was sent twice" if resendable else "")
                + ": the bytes from the host to the device arrive garbled. Check the cable "
                "and its connectors (a shorter one, no unpowered hub), that the port's baud "
                "rate is the firmware's (115200), and electrical noise near the board; then "
                "run again")

    def _collect(self, cmd: str, name: str, limits: Limits, deadline: float,
                 on_progress: Callable[[Record], None] | None, resendable: bool
                 ) -> tuple[list[Record], str | None]:
        """Read ``cmd``'s records up to its ``@ready``.

        ``@ready cmd=-`` (the device could not read a host line) does not say which line:
        it may be this command, or noise before it. So the reading goes on: the command's
        records mean it ran; silence after it means it was not read. For a ``resendable``
        command that silence is :data:`UNREAD_GRACE` seconds (a resend costs nothing); for
        the others it is the command's own silence limit, since a second `train` or `db
        load` would run it twice.

        Returns
        -------
        records : ``cmd``'s records, its ``@ready`` last (empty with ``garbled``)
        garbled : None when ``cmd``'s ``@ready`` came; else the last ``@err`` of an
            unreadable line, after which the device stayed silent
        """
        received: list[Record] = []
        garbled: str | None = None
        while True:
            silence = (min(limits.silence, UNREAD_GRACE) if garbled is not None and resendable
                       else limits.silence)
            try:
                rec = self.read_record(silence, deadline, f"`{cmd}`")
            except DeviceTimeout:
                if garbled is None:
                    raise
                return [], garbled
            if rec.type == "boot":
                raise DeviceReset(rec, received, cmd)
            received.append(rec)
            if len(received) > limits.records:
                raise DeviceError(
                    f"the device sent {len(received)} records for `{cmd}` without ending it "
                    f"(it can send at most {limits.records}; last: @{rec.type} "
                    f"{' '.join(f'{k}={v}' for k, v in rec.fields.items())}): stopped. Records "
                    "of another command may still be arriving (a `train` an earlier session "
                    "started runs on after the host quits): wait for the device to finish, "
                    "or reset the board (its reset button or power) and run `tinysift device "
                    "run` again")
            if on_progress is not None:
                on_progress(rec)
            if rec.type != "ready":
                continue
            cmd_of = rec.fields.get("cmd")
            if cmd_of == name:
                status = rec.int("status", 0)
                if status:
                    errs = [r.fields.get("msg", "") for r in received if r.type == "err"]
                    hint = ("; a line from the host arrived garbled: check the cable, the "
                            "baud rate (115200) and noise, then run again"
                            if status in (102, 103) else "")
                    if name == "train" and status == TS_ERR_PARAM:
                        # the trainer's re-quantization (docs/trainer.md); said without a fix
                        hint = ("; the trained weights could not be re-quantized to int8 "
                                "(not finite: the training diverged, or beyond what int8 "
                                "holds): train again with a lower --lr, or fewer epochs or "
                                "steps")
                    raise DeviceRefused(f"device refused {cmd!r}: status {status} "
                                        f"({'; '.join(errs) or 'no message'}){hint}", status)
                return received, None
            if cmd_of == "-" and rec.int("status", 0):
                # An unreadable line: its @err and this @ready are not the command's, nor
                # are records before them (earlier commands').
                err = next((r for r in reversed(received) if r.type == "err"), None)
                self.stats.garbled_host_lines += 1
                self.stats.stray_records += len(received) - (2 if err is not None else 1)
                fields = err.fields if err is not None else {"status": rec.fields["status"]}
                garbled = " ".join(f"{k}={v}" for k, v in fields.items())
                received.clear()
                continue
            # Another command's @ready: it and the records before it are not ours.
            self.stats.stray_records += len(received)
            received.clear()

    def wait_boot(self, timeout: float = 20.0, limits: Limits | None = None) -> Record:
        """The next ``@boot``; other records before it are bounded like a command's."""
        limits = limits or Limits(timeout, 2 * timeout, 64)
        deadline = time.monotonic() + limits.deadline
        for _ in range(limits.records + 1):
            rec = self.read_record(limits.silence, deadline, "the boot record")
            if rec.type == "boot":
                return rec
        raise DeviceError(f"{self.url} sent {limits.records + 1} records but no @boot: is it "
                          "tinysift firmware, freshly started?")


def _record_after_cut(line: bytes, max_line: int) -> tuple[Record, bytes] | None:
    """A valid record at the end of a corrupt line, and its bytes: a device that resets
    while sending a line starts its ``@boot`` right after the cut, with no newline between
    (the @boot must not be lost: it tells the host the device reset)."""
    at = line.find(b"@", 1)
    while at > 0:
        try:
            return parse_record(unframe(line[at:], max_line)), line[at:]
        except FrameError:
            at = line.find(b"@", at + 1)
    return None


class DeviceTimeout(DeviceError):
    """Silence, or a command past its deadline."""


class DeviceRefused(DeviceError):
    """A command's ``@ready`` with a nonzero status (the code in ``status``)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class LinkLost(DeviceError):
    """The port or socket closed under the host (unplugged board, emulator gone)."""
