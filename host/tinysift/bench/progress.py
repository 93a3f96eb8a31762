"""Append-only progress log of a benchmark: every finished training, one JSON line each.

A bench keyed by the same configuration and data finds its log again, so a killed run resumes
where it stopped and a rerun with more seeds only adds the missing ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np

WALL = "_wall"  # records of a whole seed's wall time (only seeds run in one go have one)
FORGET = "forget"  # a marker line: the methods' records above it no longer count


def append_json_line(path: Path, record: dict) -> None:
    """``record`` as one JSON line at the end of ``path`` (its folder made if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_json_lines(path: Path, required: dict[str, type] | None = None) -> list[dict]:
    """The records of a JSON-lines file written by :func:`append_json_line` (none when it
    does not exist): see :func:`read_records`, whose skipped count this drops."""
    return read_records(path, required)[0]


def read_records(path: Path, required: dict[str, type] | None = None,
                 also: tuple[str, ...] = ()) -> tuple[list[dict], int]:
    """The records of a JSON-lines file and how many of its lines were skipped.

    A last line torn by a kill is skipped, and ended in the file, so the next line appended
    starts on a line of its own instead of being glued onto it (and lost with it). A line
    that is not a JSON object holding every ``required`` field with its type (a hand edit,
    a merge marker, ``42``) is skipped too: its training runs again, instead of a bare
    KeyError or TypeError ending the bench. A record holding a field of ``also`` (a marker
    line) is kept as it is.
    """
    if path is None or not path.exists():
        return [], 0
    text = path.read_text()
    if text and not text.endswith("\n"):  # end a torn line before appending
        with open(path, "a") as f:
            f.write("\n")
    out, skipped = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill: that training reruns
            rec = None
        if isinstance(rec, dict) and (any(k in rec for k in also) or all(
                isinstance(rec.get(k), t) and not isinstance(rec.get(k), bool)
                for k, t in (required or {}).items())):
            out.append(rec)
        else:
            skipped += 1
    return out, skipped


def _finite(value) -> bool:
    """``value`` is a finite number (not a bool): what a record's accuracy must be."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and bool(np.isfinite(value)))


def code_and_machine() -> dict[str, str]:
    """What every new progress record carries beside its numbers: the tinysift sources that
    produced it (:func:`tinysift.runs.code_identity`: their hash and git commit) and the
    machine (:func:`machine_label`). Not part of any key: a resumed bench keeps the rows of
    other versions and machines, and its results file says which it mixes
    (:func:`origins`)."""
    from tinysift.runs import code_identity, machine_info

    return {**code_identity(), "machine": machine_label(machine_info())}


def machine_label(facts: dict) -> str:
    """One line naming a machine from :func:`tinysift.runs.machine_info`'s facts (or a Dask
    worker's): host, CPU model, the CPU's family where recorded (a model name such as "AMD
    EPYC" can stand for two generations), CPUs."""
    cpu = facts.get("cpu_model") or facts.get("processor") or "?"
    family = f", {facts['cpu_family']}" if facts.get("cpu_family") else ""
    return f"{facts.get('hostname', '?')} ({cpu}{family}, {facts.get('cpus', '?')} CPUs)"


#: The fields of :func:`code_and_machine`, as :func:`origins` groups the rows by them.
ORIGIN_FIELDS = ("tinysift_source", "git", "machine")


def origins(rows) -> list[dict]:
    """The distinct (source hash, git commit, machine) sets that ``rows`` (progress records)
    came from, each with its number of rows, the most rows first; a record written before
    records were stamped counts under ``"unrecorded"``."""
    counts: dict[tuple, int] = {}
    for r in rows:
        key = tuple(r.get(f, "unrecorded") for f in ORIGIN_FIELDS)
        counts[key] = counts.get(key, 0) + 1
    return [{**dict(zip(ORIGIN_FIELDS, k, strict=True)), "rows": n}
            for k, n in sorted(counts.items(), key=lambda t: -t[1])]


def point_labels(values, flag: str) -> list[str]:
    """Each budget's label in the progress log and the results (``f"{v:g}"``), refusing
    budgets whose labels collide: two of them would share one record."""
    from tinysift.errors import BudgetError

    labels = [f"{v:g}" for v in values]
    same = sorted({lab for lab in labels if labels.count(lab) > 1})
    if same:
        raise BudgetError(f"{flag} {', '.join(map(str, values))}: "
                          + ", ".join(f"{[v for v in values if f'{v:g}' == lab]} are all "
                                      f"{lab}" for lab in same)
                          + " (6 significant digits); give each budget once")
    return labels


def distinct(values: Iterable, flag: str) -> None:
    """Refuse a list of methods, sizes or modes naming one twice: a bench would train (and
    log) its points twice, or count their rows twice in its results."""
    from tinysift.errors import BudgetError

    values = list(values)
    twice = [v for i, v in enumerate(values) if v in values[:i]]
    if twice:
        raise BudgetError(f"{flag} {','.join(map(str, values))} names "
                          f"{', '.join(map(str, dict.fromkeys(twice)))} more than once: "
                          "give each once")


class ProgressLog:
    """Finished trainings of one bench configuration, keyed by (seed, method, point).

    Parameters
    ----------
    key : dict
        What identifies the configuration (everything that changes a result: recipe, data
        hash, budgets' meaning); hashed into the file name.
    directory : Path or None
        Folder of the log; ``None`` keeps it in memory only (nothing to resume).
    prefix : str
        Start of the file name (the results stem), before the configuration hash.
    point : str
        Name of the budget field in a record (``keep`` for pruning, ``per_class`` for
        condensation).
    stamp : dict, optional
        Fields every record written carries and a logged record must match to count as
        done, e.g. the firmware sources' hash of a device bench: a changed firmware reruns
        the device points (their cycles and energy change) without orphaning the log.
        Records without the stamp's fields predate it and count as not done.
    method_params : dict, optional
        Per method, the parameters it runs with (defaults included): a record carries its
        method's as ``params`` and counts as done only while they are the same, so changing
        a method's defaults reruns that method's points and no other.
    unstamped_params : dict, optional
        Per method, the parameters its records written before ``params`` were stamped ran
        with (the defaults of that time): such a record counts as done while they are the
        method's parameters now (default: it never does).
    key_defaults : dict, optional
        Options the ``key`` leaves out at these values (added later: the logs written before
        keep their names): what a results file whose ``config`` predates them ran with, for
        :func:`check_results_owner`.
    fields : tuple of str
        The numbers every record of a training holds, which the bench's results and lines
        read (its schema): a record missing one, or holding something else than a finite
        number there, is skipped as edited and its training runs again (until 2026-12-05
        only ``acc`` was checked, so a record that lost another field, ``count`` say, ended
        the bench with a bare KeyError).
    fields_by_method : dict, optional
        Per method, other fields than ``fields`` (a reference row that logs less).
    points : tuple, optional
        The points this command asks for, where the key pins its ``point`` option at a
        default (condense's Ks): a results table written before results named their log
        holding a point this command leaves out is refused by :func:`check_results_owner`
        (its numbers are in no log).

    Every record written also carries :func:`code_and_machine` (not compared on reading).
    """

    def __init__(self, key: dict, directory: Path | None, prefix: str,
                 point: str = "keep", stamp: dict | None = None,
                 method_params: dict[str, dict] | None = None,
                 unstamped_params: dict[str, dict] | None = None,
                 key_defaults: dict | None = None, fields: tuple[str, ...] = ("acc",),
                 fields_by_method: dict[str, tuple[str, ...]] | None = None,
                 points: tuple | None = None) -> None:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode())
        self.key = key
        self.key_defaults = dict(key_defaults or {})
        self.point = point
        self.fields = tuple(fields)
        self.fields_by_method = dict(fields_by_method or {})
        self.points = None if points is None else tuple(points)
        self.stamp = dict(stamp or {})
        # JSON round trip: a logged record's params compare equal to the live ones.
        self.method_params = json.loads(json.dumps(method_params or {}, sort_keys=True))
        self.unstamped_params = json.loads(json.dumps(unstamped_params or {}, sort_keys=True))
        self.origin = code_and_machine()
        self.stale = 0  # trainings logged only with another stamp: they train again
        self.path = (Path(directory) / f"{prefix}_{digest.hexdigest()[:12]}.jsonl"
                     if directory else None)
        if self.path is not None:
            # a file standing where the folder goes ended the bench with an unexpected
            # FileExistsError once its first training was done: refused before any
            from tinysift.runs import out_folder

            out_folder(self.path.parent, "the progress log's folder", create=False,
                       fix="move it away, or pass another --out-dir")
        self.done: dict[tuple, dict] = {}
        self.asked: set[tuple[str, str]] = set()  # the (method, point)s the bench looked up
        stale: set[tuple] = set()
        records, self.unreadable = read_records(
            self.path, {"seed": int, "method": str, point: str}, also=(FORGET,))
        for r in records:
            if FORGET in r:  # a --rerun began here: earlier records of these no longer count
                self._drop(r[FORGET], r.get("seeds"))
                continue
            if not self.holds_fields(r):
                # edited: no accuracy (or a wall time, or another field the results read),
                # or not a number (a string, null, NaN): it ended the bench writing its
                # results with "unexpected KeyError: 'acc'" or wrote NaN into them; skipped
                # and said, its training runs again
                self.unreadable += 1
                continue
            method = r.get("method")
            params = r.get("params", self.unstamped_params.get(method))
            if any(r.get(k) != v for k, v in self.stamp.items()) or not self.current(
                    method, params):
                stale.add((r.get("seed"), method, r.get(point)))
                continue
            self._keep(r)
        # A stale record whose point was trained again since is not waiting for a rerun.
        self.stale = len(stale - self.done.keys())

    def holds_fields(self, rec: dict) -> bool:
        """``rec`` holds each numeric field of its method's records as a finite number (a
        wall time: its seconds)."""
        method = rec["method"]
        fields = ("seconds",) if method == WALL else self.fields_by_method.get(method,
                                                                               self.fields)
        return all(_finite(rec.get(f)) for f in fields)

    def _keep(self, rec: dict) -> None:
        """Count ``rec`` as done. A training logged after its seed's wall time means the
        seed was not run in one go (resumed, or a method rerun since): that time no longer
        describes the seed's records, so it stops counting."""
        if rec["method"] != WALL:
            self.done.pop((rec["seed"], WALL, "seed"), None)
        self.done[(rec["seed"], rec["method"], rec[self.point])] = rec

    def current(self, method: str | None, params: dict | None) -> bool:
        """``params`` are what ``method`` runs with now (always, for a method without any)."""
        return method not in self.method_params or params == self.method_params[method]

    def get(self, seed: int, method: str, at: str) -> dict | None:
        """The record of a training counted as done (None: not done). The (method, point)
        asked is remembered: what a bench reports, for :meth:`unreported`."""
        self.asked.add((method, at))
        return self.done.get((seed, method, at))

    def unreported(self, seeds: Iterable[int]) -> list[tuple[str, str]]:
        """The (method, point)s of ``seeds`` logged as done that the bench never asked for:
        a run with fewer methods or budgets than the folder's results had rewrote them
        without those rows (still in the log)."""
        seeds = set(seeds)
        return sorted({(m, at) for s, m, at in self.done
                       if s in seeds and m != WALL and (m, at) not in self.asked})

    def resuming(self) -> str | None:
        """The line a bench says when its log already holds trainings (None when it holds
        none and none of its lines was skipped)."""
        trainings = sum(k[1] != WALL for k in self.done)  # a seed's wall time is none
        if not trainings and not self.unreadable:
            return None
        line = f"resuming: {trainings} trainings already in {self.path}"
        if self.unreadable:
            line += (f"; {self.unreadable} line(s) of it are not progress records (torn by a "
                     "kill, edited, or without a number this bench reads) and were skipped: "
                     "their trainings run again")
        return line

    def forget(self, methods: tuple[str, ...], seeds: int | None = None) -> int:
        """Count the logged trainings of ``methods`` as not done: they train again; with
        ``seeds``, only those of seeds 0..seeds-1 (the run's: ``--rerun vq --seeds 1``
        forgot vq's seed 1 too, which a later ``--seeds 2`` then trained again).

        Their records stay in the file; a marker line appended after them says they no longer
        count, so a rerun killed halfway resumes by opening the log again (without
        forgetting again): the records written since the marker count, the older ones not.
        A marker without seeds (written before they were recorded) covers every seed.
        """
        marker = {FORGET: list(methods)}
        if seeds is not None:
            marker["seeds"] = list(range(seeds))
        self._append(marker)
        return self._drop(methods, marker.get("seeds"))

    def _append(self, line: dict) -> None:
        """One JSON line at the end of the log file (nothing in memory-only mode)."""
        if self.path is not None:
            append_json_line(self.path, line)

    def _drop(self, methods, seeds=None) -> int:
        gone = [k for k in self.done if k[1] in methods and (seeds is None or k[0] in seeds)]
        for k in gone:
            del self.done[k]
        return len(gone)

    def add(self, seed: int, method: str, at: str, **values) -> dict:
        rec = {"seed": seed, "method": method, self.point: at, **self.origin,
               **{k: v if isinstance(v, str) else int(v) if k == "count" else float(v)
                  for k, v in values.items()}, **self.stamp}
        if method in self.method_params:
            rec["params"] = self.method_params[method]
        self._append(rec)
        self._keep(rec)
        return rec

    def provenance(self, seeds: int, rows=()) -> dict:
        """What a results file records beside its numbers: the data's content hash (the key's
        ``data``), the seeds (0..seeds-1: a seed is an index, the same for every method), the
        log the numbers come from, when the file was written, and the code versions and
        machines its ``rows`` (the records behind its numbers) came from (:func:`origins`)."""
        import datetime

        return {"data_hash": self.key.get("data"), "seed_values": list(range(seeds)),
                "progress_log": self.path.name if self.path is not None else None,
                "written": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "origins": origins(rows)}

    def seeds_logged(self) -> list[int]:
        """The seeds with at least one training that counts as done, in order."""
        return sorted({k[0] for k in self.done if k[1] != WALL})

    def is_fresh(self, seed: int) -> bool:
        """No training of ``seed`` counts as done: its wall time can be measured whole (an
        earlier wall time of the seed, whose trainings were all forgotten or changed
        parameters since, does not describe them)."""
        return not any(k[0] == seed and k[1] != WALL for k in self.done)

    def add_seed_wall(self, seed: int, seconds: float) -> None:
        self.add(seed, WALL, "seed", seconds=seconds)

    def seed_walls(self, seeds: int) -> list[float | None]:
        """Wall time of each of the first ``seeds`` seeds; ``None`` where it was resumed."""
        return [r["seconds"] if r else None
                for r in (self.get(s, WALL, "seed") for s in range(seeds))]


def check_results_owner(log: ProgressLog, out_dir: Path, stem: str) -> None:
    """Refuse, before any training, a bench whose results file ``out_dir/stem.json`` holds
    the results of another configuration of it: another progress log (another recipe, data,
    label noise or option such as ``--epochs``, ``--batch``, ``--keep-steps``,
    ``--method-params``, ``--steps``), whose table the run would replace without a word (the
    docs then printed a one-epoch table under the committed command). Results written before
    results files named their log (most committed ones) are refused when their ``config``
    differs from this configuration (they ran with ``--epochs 20``, this command with 2).
    A file of a ``--quick`` run, unreadable, of the same log or of the same configuration
    is no obstacle: it is rewritten from a log.
    """
    from tinysift.errors import BudgetError

    path = Path(out_dir) / f"{stem}.json"
    if log.path is None or not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(old, dict):
        return
    theirs = old.get("progress_log")
    if theirs == log.path.name:
        return
    # an option the key leaves out at its default (log.key_defaults) is compared too: a
    # config without it (written before it existed) ran with the default
    key = json.loads(json.dumps({**log.key_defaults, **log.key}, default=str))
    config = old.get("config") if isinstance(old.get("config"), dict) else {}
    config = {**json.loads(json.dumps(log.key_defaults, default=str)), **config}
    # results without a log name recorded a table of parameters (a replay rule) with the
    # entries set then; one the key adds later (pinned at what they ran with) is no change
    same = (lambda a, b: a == b) if isinstance(theirs, str) else _ran_as
    # the log's point (condense's per_class, pinned in its key at the default whatever the
    # command's) is no configuration: the log records each point, a table any subset; its
    # pinned value named a legacy table of other Ks as "another configuration"
    changed = [f"{k} {config[k]!r} -> {key[k]!r}" for k in sorted(key)
               if k in config and k != log.point and not same(config[k], key[k])]
    ours = {str(p) for p in log.points or ()}
    if (not isinstance(theirs, str) and log.points is not None
            and isinstance(config.get(log.point), list)
            and any(str(p) not in ours for p in config[log.point])):
        # but a legacy table's points are in no log: one this command leaves out is lost
        changed.append(f"{log.point} {config[log.point]!r} -> {list(log.points)!r}")
    if "data" in key and old.get("data_hash") not in (None, key["data"]):
        changed.append("the data's contents")
    what = f" ({'; '.join(changed)})" if changed else ""
    move = f"pass another --out-dir, or move {path.name} and its .md/.png away"
    if not isinstance(theirs, str):
        # no log named: a --quick run's (nothing to keep), or results written before files
        # named their log, whose config still tells another configuration (a committed
        # 20-epoch table was replaced by a 2-epoch one without a word)
        if config.get("quick") is True or not changed:
            return
        raise BudgetError(f"{path} holds the results of another configuration of this bench"
                          f"{what}, written before results named their progress log; this "
                          f"run would replace them: {move}")
    raise BudgetError(f"{path} holds the results of another configuration of this bench"
                      f"{what}, logged in {theirs} (this command's log: {log.path.name}); "
                      f"this run would replace them: {move} (its trainings stay in {theirs})")


def _ran_as(old, new) -> bool:
    """Whether a results config's value ``old`` is ``new``, or per-method parameter tables
    ``new`` only extends (the same methods, each entry of theirs the same): `bench device`'s
    committed new-classes results recorded vq's replay rule before it named ``within``,
    ``hard_cut`` and ``hard_above`` (pinned at the values it ran with), and their own command
    was refused. A method added or removed (``--method-params``) is a change."""
    if isinstance(old, dict) and isinstance(new, dict) and old.keys() == new.keys():
        return all(old[k] == new[k] or (isinstance(old[k], dict) and isinstance(new[k], dict)
                                        and old[k].items() <= new[k].items())
                   for k in old)
    return old == new


@contextlib.contextmanager
def results_claim(log: ProgressLog | None, out_dir: Path, stem: str,
                  check_owner: bool = True) -> Iterator[None]:
    """Hold the lock of the results ``out_dir/stem.*`` while a bench runs, then refuse
    results of another configuration (:func:`check_results_owner`, unless not
    ``check_owner``: a pipeline's results follow its file; or no ``log``: a bench without
    one, whose results are always its own). A second bench writing
    the same results (the same command twice, or another recipe of it) is refused naming the
    first: both appended the same trainings to one log, ran each twice, and the last to
    finish replaced the other's table; a recipe that started before the other wrote its
    results passed the owner check. The lock file ``.STEM.lock`` goes when the bench ends."""
    from tinysift.runs import file_lock, held_by, out_folder

    out_dir = out_folder(Path(out_dir), "--out-dir", create=True)
    path = out_dir / f".{stem}.lock"
    with file_lock(
            path, "a bench",
            lambda holder: (f"{out_dir / stem}.json is being written by another tinysift bench "
                            f"({held_by(holder)}); one bench per results file: wait for it "
                            "to finish, stop it, or pass another --out-dir"),
            lambda reason: (f"cannot write in the results folder {out_dir} ({reason}): "
                            "pass a writable --out-dir")):
        if check_owner and log is not None:
            check_results_owner(log, out_dir, stem)
        yield


def user_data_key(specs: dict[str, str | None]) -> dict:
    """``{"data": {option: fingerprint}}`` for the ``specs`` (a bench's dataset options) that
    name the user's files (``npz:PATH``, ``folder:PATH``), for a log key; ``{}`` when none
    does (a registry dataset's contents are fixed by its name, and the committed logs were
    keyed without this). Without it, a bench rerun after the file changed reported the old
    file's numbers as current, and one with more points mixed both files in one table.

    The fingerprint hashes the bytes (of every file under a folder, with its relative path):
    any change reruns, also one the loader would not see."""
    from tinysift.data.registry import user_data

    out = {}
    for option, spec in specs.items():
        user = user_data(spec) if spec else None
        if user is None:
            continue
        path = Path(user[1])  # without a size suffix (@28x28: in the spec, so in the key)
        h = hashlib.sha256()
        try:
            files = ([path] if path.is_file() else
                     sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [])
            for f in files:
                h.update(str(f.relative_to(path) if f != path else f.name).encode() + b"\0")
                with open(f, "rb") as stream:
                    for block in iter(lambda s=stream: s.read(1 << 20), b""):
                        h.update(block)
        except OSError:  # missing, unreadable, a name too long: the loader says which
            continue
        out[option] = h.hexdigest()[:16]
    return {"data": out} if out else {}


def device_provenance(plog: ProgressLog, seeds: int, rows: Iterable[dict]) -> dict:
    """What an on-device bench's results file records of :meth:`ProgressLog.provenance`:
    the seeds 0..seeds-1, the log, when it was written and the code versions and machines
    of its ``rows``; the data's fingerprints only for the user's files
    (:func:`user_data_key`: the key of a registry dataset holds none)."""
    prov = plog.provenance(seeds, rows)
    if prov["data_hash"] is None:
        del prov["data_hash"]
    return prov


def summarize(runs: list[dict], seconds: tuple[str, ...], count: bool = False) -> dict:
    """Mean and std of accuracy over seeds, mean of each ``seconds`` field, the per-seed
    accuracies, and the kept ``count`` (the same for every seed) when asked.

    The std is numpy's default, ddof 0 (the population std): every committed table uses it,
    and docs/benchmarks.md says so; the paired intervals (``bench.stats``) use ddof 1."""
    accs = [r["acc"] for r in runs]
    out = {"acc_mean": float(np.mean(accs)), "acc_std": float(np.std(accs))}
    out.update({f: float(np.mean([r[f] for r in runs])) for f in seconds})
    if count:
        out["count"] = runs[0]["count"]
    out["runs"] = accs
    return out


def config_dict(cfg) -> dict:
    """A bench config dataclass as JSON-ready values (paths as strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}


def write_results(results: dict, out: Path, stem: str, markdown, plot=None) -> None:
    """``stem``.json, its markdown table (``markdown(results)``) and plot
    (``plot(results, path)``; none when ``plot`` is None), all from ``results``."""
    from tinysift.runs import atomic_write_json, atomic_write_text

    atomic_write_json(out / f"{stem}.json", results)
    atomic_write_text(out / f"{stem}.md", markdown(results))
    if plot is not None:
        plot(results, out / f"{stem}.png")


def run_record(cfg, seeds_done: int, log: ProgressLog, wall_seconds: float) -> dict:
    """The fields every results file carries: seeds done and planned, the configuration,
    the machine and versions, wall times."""
    from tinysift.runs import machine_info, package_versions

    return {"seeds": seeds_done, "seeds_planned": cfg.seeds, "config": config_dict(cfg),
            "machine": machine_info(), "versions": package_versions(),
            "wall_seconds": wall_seconds, "seed_wall_seconds": log.seed_walls(seeds_done)}
