"""The faults a user meets on the device link, what the host does about each, and the table
the fault-injection tests fill in (benchmarks/results/faults.{json,md}).

Each fault has an id; tests/test_faults.py (a scripted fake device over socket://, and the
CLI under signals) and tests/test_faults_qemu.py (the real firmware under QEMU) run them and
add a row: the outcome, the seconds to the result or to a clear failure, and the records
lost. With TINYSIFT_WRITE_FAULTS=1 the session rewrites the table from its rows (rows of
faults not run this session are kept from the committed file);
tests/test_faults.py::test_fault_table_is_current checks the committed table covers every
fault and every row passed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE_JSON = ROOT / "benchmarks" / "results" / "faults.json"
TABLE_MD = ROOT / "benchmarks" / "results" / "faults.md"

# id: (device, the fault, what the host does)
FAULTS: dict[str, tuple[str, str, str]] = {
    "silence-info": ("fake", "no answer to `info`",
                     "fails after --timeout: no valid record, names the port and causes"),
    "silence-window": ("fake", "silent after `@phase features` (a hung train)",
                       "fails after --timeout + 4x the longest expected window"),
    "garbage": ("fake", "noise bytes, a boot-ROM banner, unframed lines between records",
                "drops and counts them (link.dropped_lines), completes"),
    "bad-crc": ("fake", "an `@epoch` record with a wrong CRC",
                "drops it, asks `results` for the train's records again, completes"),
    "bad-crc-long-train": ("fake", "epoch 80 of 100 corrupt (`results` repeats epochs 37-100)",
                           "merges the repeat into the epochs kept by number: all 100, "
                           "completes"),
    "bad-crc-old-epoch": ("fake", "epoch 10 of 100 corrupt (older than `results` repeats)",
                          "fails naming `@epoch n=10` and the 64-epoch repeat: status failed, "
                          "the other 99 epochs kept"),
    "bad-crc-class": ("fake", "an `@class` record with a wrong CRC",
                      "one `@class` per class and `when` is required: asks `results`, "
                      "completes"),
    "bad-value": ("fake", "a valid CRC but `cycles=lots`",
                  "fails naming the record (firmware and host disagree on TSP/1)"),
    "reset-info": ("fake", "reset during `info`",
                   "sets the session up again (info, db load, db use), re-sends train"),
    "reset-db-load": ("fake", "reset after 7 of 12 `db load` data lines",
                      "re-streams the whole set, `db use`, train; trains on the 12"),
    "reset-db-use": ("fake", "reset during `db use ram`", "re-streams the set, completes"),
    "reset-features": ("fake", "reset inside the features window",
                       "re-streams the set, re-sends train, completes on the streamed set"),
    "reset-epoch": ("fake", "reset after epoch 2",
                    "re-streams the set, re-sends train, completes on the streamed set"),
    "reset-eval": ("fake", "reset while the evaluation records arrive",
                   "re-streams the set, re-sends train, completes"),
    "reset-mid-line": ("fake", "reset while a record is half sent (the `@boot` follows the cut)",
                       "drops the cut line, reads the `@boot`, sets up again, completes"),
    "reset-twice": ("fake", "a second reset during the retry",
                    "fails: status device-reset, every record kept"),
    "reset-stop": ("fake", "reset with --on-reset stop",
                   "fails: status device-reset, every record kept"),
    "endless-records": ("fake", "valid `@epoch` records forever",
                        "fails at the command's record bound"),
    "no-boot": ("fake", "valid records but never `@boot`", "fails at the boot record bound"),
    "link-loss": ("fake", "the connection closes after epoch 2", "fails: the link closed"),
    "stop-reading": ("fake", "stops reading during `db load`",
                     "fails at the load's derived limit"),
    "wrong-model": ("fake", "firmware holds another model than the export",
                    "refuses before training: names both hashes and `device flash`"),
    "stale-ram-set": ("fake", "board left on a streamed set by an earlier session",
                      "sends `db use flash` and checks `@db`: trains on the flash set"),
    "omitted-class": ("fake", "the device leaves one `@class` out (no line lost on the link)",
                      "records it (`events` `records_not_sent`): a firmware disagreeing on "
                      "TSP/1; completes with the records sent"),
    "garbled-data-line": ("fake", "data line 6 of 12 of `db load` arrives garbled (the device "
                          "ends the load, status 103)",
                          "sends the whole load once more (the device dropped the rest), "
                          "completes on the 12"),
    "small-db-buffer": ("fake", "firmware's RAM buffer (8 samples) smaller than the set (12)",
                        "refuses before streaming: names both counts and the export/flash "
                        "fix"),
    "stream-bad-crc": ("fake", "`db stream` session: an `@epoch` with a wrong CRC",
                       "asks `results` as the session does, completes"),
    "stream-wrong-set": ("fake", "`db stream` session: the device trains on the flash set",
                         "fails: `@epoch samples` is not the buffer plus the flash set; "
                         "not complete (the stage records `failed`)"),
    "stream-db-use": ("fake", "`db stream` session: `db use both` reports another count",
                      "refuses before training; not complete (the stage records "
                      "`failed`)"),
    "stream-garbled-data-line": ("fake", "`db stream` session: data line 6 of 12 arrives "
                                 "garbled (the device ends the stream, status 103)",
                                 "sends the whole stream once more (the policy starts again "
                                 "from its seed), completes on the buffer"),
    "host-sigkill": ("fake", "host killed (SIGKILL) mid-train",
                     "nothing to do: log.jsonl holds every record read, results.json "
                     "partial and readable"),
    "host-sigterm": ("fake", "SIGTERM to the host mid-train",
                     "exits 143 with a message, status interrupted"),
    "host-ctrl-c": ("fake", "Ctrl-C (SIGINT) mid-train",
                    "exits 130 with a message, status interrupted"),
    "qemu-reset-db-load": ("QEMU", "system reset (QMP) during `db load`",
                           "re-streams the set, completes on the 30 streamed samples"),
    "qemu-reset-features": ("QEMU", "system reset as `train` arrives (features window)",
                            "re-streams the set, re-sends train, completes"),
    "qemu-reset-epoch": ("QEMU", "system reset after epoch 1",
                         "re-streams the set, re-sends train, completes"),
    "qemu-killed": ("QEMU", "emulator killed mid-train (link loss)", "fails: the link closed"),
    "qemu-host-sigkill": ("QEMU", "host killed (SIGKILL) while QEMU runs",
                          "QEMU dies with it (parent-death signal); log.jsonl kept"),
    "qemu-host-sigterm": ("QEMU", "SIGTERM to the host while QEMU runs",
                          "stops QEMU, exits 143, status interrupted"),
}


@dataclass
class Row:
    id: str
    outcome: str
    seconds: float
    records_lost: int
    passed: bool

    def cells(self) -> list[str]:
        device, fault, host = FAULTS[self.id]
        return [self.id, device, fault, host, self.outcome, f"{self.seconds:.1f}",
                str(self.records_lost), "yes" if self.passed else "**no**"]


class FaultTable:
    def __init__(self):
        self.rows: dict[str, Row] = {}

    def add(self, row: Row) -> None:
        assert row.id in FAULTS, row.id
        self.rows[row.id] = row

    def write(self) -> None:
        rows = {r["id"]: Row(**r) for r in load_rows()}
        rows.update(self.rows)
        ordered = [rows[i] for i in FAULTS if i in rows]
        TABLE_JSON.write_text(json.dumps([asdict(r) for r in ordered], indent=1) + "\n")
        TABLE_MD.write_text(render(ordered))


def load_rows() -> list[dict]:
    return json.loads(TABLE_JSON.read_text()) if TABLE_JSON.exists() else []


def render(rows: list[Row]) -> str:
    head = ["fault", "device", "what happens", "what the host does", "outcome",
            "seconds", "records lost", "passed"]
    lines = [
        "# Faults on the device link, each survived",
        "",
        "Written by the fault-injection tests (`TINYSIFT_WRITE_FAULTS=1 .venv/bin/pytest "
        "tests/test_faults.py tests/test_faults_qemu.py`; tests/fault_table.py). `fake`: a "
        "scripted TSP/1 device over `socket://` (tests/fake_device.py) with `--timeout 2`; "
        "`QEMU`: the real firmware (digits export) under QEMU, resets injected with QMP "
        "`system_reset`, `--timeout 20`. *seconds*: from the start of the session to its "
        "result or to the clear failure (for signals: from the signal to the exit). *records "
        "lost*: valid records the device sent, up to the last one the host read, that are "
        "missing from `log.jsonl` (or, for a corrupt line, from `results.json`).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def logged_payloads(log: Path, session: str | None = None) -> list[str]:
    """The records of log.jsonl (of one session) as payloads."""
    out = []
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if session is not None and entry.get("session") != session:
            continue
        fields = {k: v for k, v in entry.items() if k not in ("t", "session", "type")}
        out.append(" ".join([f"@{entry['type']}"] + [f"{k}={v}" for k, v in fields.items()]))
    return out


def records_lost(sent: list[str], logged: list[str]) -> int:
    """Records the device sent, up to the last one the host logged, missing from the log
    (the host logs every record it reads, in order: the log is a prefix of what was sent).

    A logged record the relay never saw whole (the host salvages a record from a line a reset
    cut; the relay's framing check drops that line) matches nothing and is skipped: it must
    not make every later record count as lost."""
    lost, j = 0, 0
    for payload in logged:
        try:
            k = sent.index(payload, j)
        except ValueError:
            continue
        lost += k - j
        j = k + 1
    return lost
