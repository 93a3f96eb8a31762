"""`db stream` and `db kept` (docs/protocol.md) in the firmware app, in QEMU mps2-an386 over
TCP serial and built for the host with ASan + UBSan: the kept set equals the numpy
reference's (tests/replay_reference.py) for the same stream and seed, both policies; the
buffer trains with `db use both`; it survives a reset (a `db load` and an interrupted stream
do not).

The export: a digits run (300 kept samples) with a per-class VQ codebook fit on the base
model's features of classes 0-7 only, so classes 8 and 9 exercise the device's online
codewords; built and cached under runs/_scratch/stream-digits. The stream: 240 samples of the
digits training split in a fixed shuffled order; the reference gets their int8 features from
the TFLM runtime (the engine is bit-exact with it).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import replay_reference as ref
from test_device_firmware import (  # noqa: F401  (fixtures: _tools_present is autouse)
    ROOT,
    Rec,
    _tools_present,
    build_app,
    by_type,
    data_lines,
    frame,
    ok,
    start_device,
    unframe,
)

pytestmark = pytest.mark.qemu

N, SEED = 240, 7
# above 1,000: the host's test below keeps a whole stream longer than the link's default
# bound on a command's records
DB_CAPACITY = 1100
# (policy, cap): a buffer smaller than the stream, and for coverage one smaller than the
# codewords seen (some codewords then keep nothing); reservoir with a buffer larger than the
# stream keeps everything
CASES = [("reservoir", 40), ("coverage", 40), ("coverage", 8), ("reservoir", 300)]


@pytest.fixture(scope="module")
def export_dir() -> Path:
    from scratch import scratch_run
    from tinysift.pipeline.upkeep import fit_run_codebook
    from tinysift.runs import Run
    from tinysift.stages.export import export
    from tinysift.stages.quantize import quantize
    from tinysift.stages.train import load_run_dataset, load_trainset, train

    with scratch_run("stream-digits") as run:  # held against other workers while built
        train("digits", run, keep=300, epochs=None, seed=0, progress=False)
        quantize(run)
        x, y = load_trainset(run, load_run_dataset(Run(run)))
        old = y < 8
        cb = fit_run_codebook(run, x[old], y[old], 10, 4, seed=0)
        assert cb.counts[:8].min() >= 1 and cb.counts[8:].sum() == 0
        export(run, db_capacity=DB_CAPACITY, codebook=cb)
    return run / "export"


class Stream:
    """The stream (int8 inputs, labels, int8 features) and the export's codebook."""

    def __init__(self, export_dir: Path):
        from tinysift.data import load_dataset
        from tinysift.export.golden import layer_outputs
        from tinysift.quantize import tflm

        tflite = (export_dir.parent / "model.tflite").read_bytes()
        head = json.loads((export_dir / "export.json").read_text())["head_layer"]
        ds = load_dataset("digits")
        order = np.random.default_rng(3).permutation(len(ds.y_train))[:N]
        scale, zp = tflm.input_quant(tflite)
        x = tflm.quantize_images(ds.x_train[order], scale, zp)
        self.x = x.reshape(N, -1).astype(np.int8)
        self.y = ds.y_train[order].astype(int)
        self.features = layer_outputs(tflite, x)[head - 1].astype(np.int8)
        g = np.load(export_dir / "golden.npz")
        self.codebook, self.counts, self.radius2 = (g["vq_codewords"], g["vq_counts"],
                                                    g["vq_radius2"])
        self.flash_train = len(g["y_train"])

    def lines(self, idx=None) -> list[str]:
        idx = range(N) if idx is None else idx
        return [f"{self.y[i]}:{self.x[i].tobytes().hex().upper()}" for i in idx]

    def reference(self, policy: str, cap: int) -> ref.ReplayBuffer:
        return ref.run_stream(policy, cap, SEED, self.y, self.features, 10, self.codebook,
                              self.counts, self.radius2)


@pytest.fixture(scope="module")
def stream(export_dir) -> Stream:
    return Stream(export_dir)


@pytest.fixture(scope="module")
def elf(export_dir, tmp_path_factory) -> Path:
    return build_app(export_dir, "qemu-m4", tmp_path_factory.mktemp("pio-stream")) / \
        "firmware.elf"


@pytest.fixture(scope="module")
def dev(elf):
    d = start_device(elf)
    yield d
    d.close()


def test_memory_plan_counts_the_stream(elf, export_dir):
    """The image's `db stream` buffers (their symbols' sizes) are what the memory plan
    counts: the workspace exactly (TS_REPLAY_WORKSPACE_BYTES's twin), the rest within the
    plan's allowance; the codebook's flash likewise."""
    from tinysift.export.codebook import vq_flash_bytes
    from tinysift.export.memory import replay_workspace_bytes

    out = subprocess.run(["arm-none-eabi-nm", "-S", "--size-sort", str(elf)],
                         capture_output=True, text=True, check=True).stdout
    sizes = {w[3]: int(w[1], 16) for w in (line.split() for line in out.splitlines())
             if len(w) == 4}
    stream = {k: v for k, v in sizes.items() if k.startswith("s_stream")}
    assert set(stream) == {"s_stream", "s_stream_ws", "s_stream_saved", "s_stream_scratch",
                           "s_stream_features"}, stream
    assert stream["s_stream_ws"] == replay_workspace_bytes(DB_CAPACITY, 10, 4, 64)
    plan = json.loads((export_dir / "export.json").read_text())["memory_plan"]
    counted = plan["ram"]["db stream upkeep"]
    assert sum(stream.values()) <= counted <= sum(stream.values()) + 64, (stream, counted)
    flash = sum(sizes[k] for k in ("ts_export_vq_codebook", "ts_export_vq_count",
                                   "ts_export_vq_radius2"))
    assert plan["flash"]["VQ codebook (db stream coverage)"] == vq_flash_bytes(10, 4, 64)
    assert vq_flash_bytes(10, 4, 64) <= flash <= vq_flash_bytes(10, 4, 64) + 3 * 16  # aligned


# ---- the checks, the same for QEMU and the native build ---------------------------------------

def check_stream(recs: list[Rec], kept: list[Rec], s: Stream, policy: str, cap: int) -> None:
    """The stream's records against the reference: @db, one @dbclass per class, then
    `db kept`'s @kept records (stream index, class, codeword of each RAM sample)."""
    buf = s.reference(policy, cap)
    want = buf.compact()
    db = recs[0]
    assert db.type == "db" and db["source"] == "ram" and db["policy"] == policy, recs
    assert (db.int("loaded"), db.int("seen"), db.int("cap"), db.int("codewords"),
            db.int("evicted")) == (len(want), N, cap, buf.codewords, buf.evicted), db
    cls = by_type(recs, "dbclass")
    assert [c.int("class") for c in cls] == list(range(10))
    assert [c.int("seen") for c in cls] == np.bincount(s.y, minlength=10).tolist()
    kept_y = [s.y[i] for i, _ in want]
    assert [c.int("kept") for c in cls] == np.bincount(kept_y, minlength=10).tolist()
    stats = [buf.class_stats(k) for k in range(10)]
    assert [(c.int("codewords"), c.int("covered")) for c in cls] == stats
    assert db.int("covered") == sum(cov for _, cov in stats)
    assert [r.type for r in kept] == ["kept"] * len(want)
    assert [(r.int("pos"), r.int("idx"), r.int("class"), r.int("cw")) for r in kept] == [
        (p, i, int(s.y[i]), cw) for p, (i, cw) in enumerate(want)]
    assert db.int("loaded") == min(cap, N)  # both policies keep the buffer full
    if policy == "coverage":
        counts = [c.int("kept") for c in cls]
        lost = [k for k, c in enumerate(cls) if c.int("kept") < c.int("seen")]
        assert all(counts[k] >= max(counts) - 1 for k in lost), counts  # classes balanced
    if policy == "coverage":
        online = [k for k in range(10) if s.counts[k] == 0]
        assert all(stats[k][0] >= 1 for k in online)  # the device opened codewords online


def stream_command(policy: str, cap: int) -> str:
    return f"db stream {N} cap={cap} policy={policy} seed={SEED}"


# ---- QEMU -------------------------------------------------------------------------------------

@pytest.mark.parametrize("policy,cap", CASES)
def test_kept_set_equals_reference_on_qemu(dev, stream, policy, cap):
    dev.send(stream_command(policy, cap))
    dev.write(b"".join(frame(line) for line in stream.lines()))
    recs = ok(dev.until_ready("db", timeout=300))
    check_stream(recs, ok(dev.command("db kept"))[:-1], stream, policy, cap)


def test_buffer_trains_with_the_replay_set(dev, stream):
    """The last stream's buffer after the flash set (`db use both`): a balanced training."""
    dev.send(stream_command("coverage", 40))
    dev.write(b"".join(frame(line) for line in stream.lines()))
    ok(dev.until_ready("db", timeout=300))
    recs = ok(dev.command("db use both"))
    assert recs[0].payload == f"@db loaded={stream.flash_train + 40} source=both"
    recs = ok(dev.command("train steps=20 balance=1 schedule=cosine init=zero lr=0.1"))
    assert by_type(recs, "eval")[1].float("int8_acc") > 0.5


def test_db_use_both_is_the_flash_set_then_the_ram_set(dev, stream, export_dir):
    """`db use both` trains on the flash set followed by the RAM set: the same train on a RAM
    set that holds both, in that order (this export's buffer takes 1,100 samples), has the
    same epochs and evaluations, bit for bit (the sample order is drawn over the whole)."""
    flash = data_lines(export_dir)
    extra = stream.lines(range(20))

    def train() -> list[str]:
        recs = ok(dev.command("train epochs=2 seed=3 init=zero lr=0.1"))
        return [r.payload.split(" cycles=")[0] for r in recs if r.type in ("epoch", "eval")]

    dev.send(f"db load {len(extra)}")
    dev.write(b"".join(frame(line) for line in extra))
    ok(dev.until_ready("db"))
    assert ok(dev.command("db use both"))[0]["loaded"] == str(len(flash) + len(extra))
    both = train()
    dev.send(f"db load {len(flash) + len(extra)}")
    dev.write(b"".join(frame(line) for line in flash + extra))
    ok(dev.until_ready("db", timeout=300))
    assert both == train()


def test_errors(dev, stream):
    recs = dev.command(f"db stream 5 cap={DB_CAPACITY + 1}")
    assert [r.payload for r in recs] == ["@err code=105 msg=above_db_capacity",
                                         "@ready cmd=db status=105"]
    dev.send(f"db stream 1 cap={DB_CAPACITY}")  # the whole buffer is a buffer it takes
    dev.write(frame(stream.lines([0])[0]))
    assert ok(dev.until_ready("db"))[0].int("cap") == DB_CAPACITY
    recs = dev.command("db stream 5 cap=3 policy=nearest")
    assert recs[0].payload == "@err code=101 msg=bad_value:policy"
    # a malformed data line ends the stream; the RAM set is then empty
    dev.send("db stream 3 cap=2")
    dev.write(frame(stream.lines([0])[0]) + frame("11:00"))
    assert [r.payload for r in dev.until_ready("db")] == [
        "@err code=104 msg=malformed_data_line", "@ready cmd=db status=104"]
    assert dev.command("db kept")[0].payload == "@err code=106 msg=no_data_loaded"


def test_stream_cycles_count_every_sample(dev, stream):
    """@db cycles: the ticks of every sample's features and policy, summed over the stream
    (coverage runs the frozen layers for each sample, about the same work each): 40 samples
    take about 40 times what one does."""
    cycles = []
    for n in (1, 40):
        dev.send(f"db stream {n} cap=40 policy=coverage seed={SEED}")
        dev.write(b"".join(frame(line) for line in stream.lines(range(n))))
        cycles.append(ok(dev.until_ready("db", timeout=300))[0].int("cycles"))
    assert 30 * cycles[0] < cycles[1] < 50 * cycles[0], cycles


def test_a_label_changed_across_a_reset_drops_the_buffer(elf, stream):
    """The CRC that guards a kept buffer across a reset covers its labels too: the first
    label of the RAM set changed while the board resets (QEMU's generic loader writes the
    byte at every system reset, as a fault of the no-init RAM would) and nothing is restored
    (`@boot db=0`); test_buffer_survives_a_reset restores the same kind of buffer intact."""
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    addr = {w[2]: int(w[0], 16) for w in map(str.split, out.splitlines()) if len(w) == 3}
    loader = f"loader,addr={addr['app_db_y']:#x},data=0xff,data-len=1"  # no label is 255
    d = start_device(elf, extra=("-device", loader))
    try:
        assert d.boot["db"] == "0"
        d.send(f"db stream 40 cap=40 seed={SEED}")  # reservoir: a buffer of 40 keeps all
        d.write(b"".join(frame(line) for line in stream.lines(range(40))))
        assert ok(d.until_ready("db"))[0].int("loaded") == 40
        kept = by_type(ok(d.command("db kept")), "kept")
        assert kept[0].int("class") == stream.y[kept[0].int("idx")] != 255
        d.send("reset")
        assert d.record().payload == "@ready cmd=reset status=0"
        boot = d.record(timeout=30)
        assert boot.type == "boot" and boot["db"] == "0", boot
        assert d.command("db kept")[0].payload == "@err code=106 msg=no_data_loaded"
    finally:
        d.close()


def test_host_reads_back_a_kept_set_of_more_than_1000(elf, export_dir, stream, tmp_path):
    """The host's side (tinysift.device.stream.stream_set) over the emulator's serial port:
    a stream kept whole (1,050 samples, the upkeep bench's `all` point keeps 1,437) comes
    back with every @kept record, although `db kept` then sends more records than the
    link's default bound of 1,000 (the bench stopped there)."""
    from tinysift.boards import load_board
    from tinysift.device.limits import ModelCost, SessionLimits
    from tinysift.device.link import SerialLink
    from tinysift.device.qemu import qemu_serial
    from tinysift.device.session import DeviceSession, TrainParams
    from tinysift.device.stream import StreamParams, stream_set

    n = 1050
    order = np.arange(n) % N  # the stream's samples again and again
    brd = load_board("qemu-mps2-an386")
    session = DeviceSession(brd, tmp_path / "session", TrainParams(epochs=1))
    info = json.loads((export_dir / "export.json").read_text())
    limits = SessionLimits(brd, ModelCost.from_export(info), timeout=60)
    with qemu_serial(brd, elf) as (url, _proc), SerialLink(url) as link:
        link.wait_boot(timeout=30)
        report = stream_set(link, session, stream.x[order], stream.y[order],
                            StreamParams(count=n, cap=n, policy="reservoir", seed=SEED),
                            limits)
        # cap 0 is the firmware's whole buffer (the cap= argument left out: the firmware
        # refuses cap=0, 101 bad_value:cap, and the host sent it)
        whole = stream_set(link, session, stream.x[order], stream.y[order],
                           StreamParams(count=n, cap=0, policy="reservoir", seed=SEED),
                           limits)
    session.close()
    assert report.kept == n and report.kept_index == list(range(n))
    assert report.kept_class == stream.y[order].tolist()
    assert whole.kept == min(n, DB_CAPACITY) and whole.db["cap"] == DB_CAPACITY


def test_buffer_survives_a_reset(dev, stream):
    """A finished stream's buffer is kept in no-init RAM across `reset` (@boot db=<kept>);
    a `db load` set and an interrupted stream are not."""
    dev.send(stream_command("coverage", 40))
    dev.write(b"".join(frame(line) for line in stream.lines()))
    ok(dev.until_ready("db", timeout=300))
    before = [r.payload for r in ok(dev.command("db kept"))[:-1]]
    dev.send("reset")
    assert dev.record().payload == "@ready cmd=reset status=0"
    boot = dev.record(timeout=30)
    assert boot.type == "boot" and boot["db"] == "40", boot
    assert [r.payload for r in ok(dev.command("db kept"))[:-1]] == before
    assert ok(dev.command("db use ram"))[0].payload == "@db loaded=40 source=ram"
    ok(dev.command("train epochs=1"))
    # a db load replaces it: nothing survives the next reset
    dev.send("db load 2")
    dev.write(b"".join(frame(line) for line in stream.lines([0, 1])))
    ok(dev.until_ready("db"))
    assert [r.int("idx") for r in by_type(ok(dev.command("db kept")), "kept")] == [0, 1]
    dev.send("reset")
    dev.record()
    assert dev.record(timeout=30)["db"] == "0"
    assert dev.command("db use ram")[0].payload == "@err code=106 msg=no_data_loaded"
    # an interrupted stream leaves nothing either
    dev.send("db stream 10 cap=4")
    dev.write(b"".join(frame(line) for line in stream.lines([0, 1, 2])))
    recs = dev.command("name")
    assert recs[0].payload == "@err code=104 msg=load_interrupted"
    dev.send("reset")
    dev.record()
    assert dev.record(timeout=30)["db"] == "0"


# ---- the host build (ASan + UBSan) -------------------------------------------------------------

def test_kept_set_equals_reference_natively(export_dir, stream, tmp_path):
    """The same app built for the host: every case's kept set equals the reference's, the
    buffer trains, and survives the in-process restart of `reset`."""
    exe = build_app(export_dir, "native-asan", tmp_path / "pio") / "program"
    cmds = []
    for policy, cap in CASES:
        cmds += [stream_command(policy, cap), *stream.lines(), "db kept"]
    cmds += ["db use both", "train steps=10 balance=1", "reset", "db kept"]
    p = subprocess.run([str(exe)], input=b"".join(frame(c) for c in cmds),
                       capture_output=True, timeout=1200,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
    assert p.returncode == 0, p.stderr.decode()[-4000:]
    assert b"runtime error" not in p.stderr and b"Sanitizer" not in p.stderr
    recs = [Rec(unframe(line)) for line in p.stdout.splitlines()]
    # split into the replies of each command: every reply ends with @ready (the boots apart)
    replies, cur = [], []
    for r in recs:
        if r.type == "boot":
            replies.append([r])
            continue
        cur.append(r)
        if r.type == "ready":
            replies.append(cur)
            cur = []
    assert replies[0][0].type == "boot" and replies[0][0]["db"] == "0"
    body = replies[1:]
    for i, (policy, cap) in enumerate(CASES):
        stream_reply, kept_reply = body[2 * i], body[2 * i + 1]
        assert ok(stream_reply) and ok(kept_reply)
        check_stream(stream_reply, kept_reply[:-1], stream, policy, cap)
    tail = body[2 * len(CASES):]
    assert [r[-1]["cmd"] for r in tail if r[-1].type == "ready"][:3] == ["db", "train", "reset"]
    boot = [r[0] for r in tail if r[0].type == "boot"]
    last = CASES[-1]
    assert boot and boot[0]["db"] == str(min(last[1], N)), boot
    assert len(by_type(tail[-1], "kept")) == min(last[1], N)
