"""The pipeline configuration: a dataclass, read from TOML, overridden by flags."""

from __future__ import annotations

import tomllib
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import ClassVar

from tinysift.errors import TinysiftError, did_you_mean
from tinysift.params import describe_annotation, parameter_names, value_fits

SEED_MAX = 2**31 - 1  # the CLI's --seed range: derived seeds (seed + 1, ...) stay in uint32


def read_toml(path: str | Path) -> dict:
    """A pipeline file's table, or one TinysiftError: missing, a folder, unreadable, not
    TOML."""
    p = Path(path)
    if not p.exists():
        raise TinysiftError(f"pipeline file {p} not found")
    if not p.is_file():
        raise TinysiftError(f"pipeline file {p} is a folder; pass a .toml file such as "
                            "pipelines/demo.toml")
    try:
        with open(p, "rb") as fh:
            return tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TinysiftError(f"{p} is not valid TOML ({exc}); fix the file (see "
                            "pipelines/demo.toml)") from exc
    except OSError as exc:
        raise TinysiftError(f"pipeline file {p} cannot be read ({exc.strerror})") from exc


class TomlConfig:
    """A dataclass config read from a TOML pipeline file (its sections only group keys for
    readability) and overridden by flags; subclasses implement ``validate``.

    Every setting is checked against its field's type first (``epochs = "ten"`` is one clear
    error, not a TypeError later); the fields of ``TEXT_FIELDS`` also take a number, as its
    text (``base_keep = 0.1`` is ``"0.1"``)."""

    TEXT_FIELDS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_toml(cls, path: str | Path):
        """The file's settings over the defaults. A table named after a setting (a table
        setting such as ``method_params``) is that setting's value, any other table a section;
        a setting given twice (in two sections, or in one and at the top) is refused: the
        later one silently replaced the earlier."""
        data = read_toml(path)
        data.pop("kind", None)
        known = {f.name for f in fields(cls)}
        flat: dict = {}
        where: dict[str, str] = {}
        for key, value in data.items():
            # sections are only for readability
            section = isinstance(value, dict) and key not in known
            for name, v in (value.items() if section else [(key, value)]):
                place = f"[{key}]" if section else "the top level"
                if name in flat:
                    raise TinysiftError(f"{path}: setting {name} is given twice ({where[name]} "
                                        f"and {place}); keep one")
                flat[name], where[name] = v, place
        return cls().override(**flat)

    def override(self, **values):
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            # one misspelt setting; among several (another kind's file), a guess misleads,
            # and a setting already given is no guess
            hint = did_you_mean(unknown[0], known - set(values)) if len(unknown) == 1 else ""
            raise TinysiftError(f"unknown pipeline settings {unknown}{hint}; known: "
                                f"{sorted(known)}")
        data = asdict(self)
        data.update(self._checked({k: v for k, v in values.items() if v is not None}))
        cfg = type(self)(**data)
        cfg.validate()
        return cfg

    def _checked(self, values: dict) -> dict:
        """``values`` with each one checked against its field's type (a whole number is a
        float's value too, a number a text field's in ``TEXT_FIELDS``)."""
        hints = typing.get_type_hints(type(self))
        out = {}
        for key, value in values.items():
            if key in self.TEXT_FIELDS and isinstance(value, int | float) and not isinstance(
                    value, bool):
                value = str(value)
            expected = hints.get(key)
            if expected is not None and not value_fits(value, expected):
                raise TinysiftError(f"pipeline setting {key} must be "
                                    f"{describe_annotation(expected)}, got {value!r}; fix it in "
                                    "the pipeline file")
            if key == "seed" and not 0 <= value <= SEED_MAX:
                raise TinysiftError(f"pipeline setting seed must be a whole number in [0, "
                                    f"{SEED_MAX}], got {value}")
            out[key] = float(value) if expected is float else value
        return out

    def validate(self) -> None:
        raise NotImplementedError

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PipelineConfig(TomlConfig):
    """Everything ``tinysift demo`` / ``tinysift run`` does, in one place.

    Parameters
    ----------
    name, out : run name and folder
    dataset : the dataset
    board : board profile (emulated boards run in QEMU)
    seed : seed of every stage
    base_keep : samples (fraction or count) the base model is trained on, on the host
    base_epochs : host training epochs for the base model (None: the subset step rule)
    methods : selection methods compared (always include ``random``)
    budgets : training-set sizes (counts) streamed to the device for each method
    epochs, lr, momentum, batch : on-device training of the head
    head_init : ``zero`` (the head is learned on the device from scratch) or ``export``
    test_samples : held-out samples the device evaluates on
    proxy_epochs : measurements of the proxy CNN behind the flow's uncertainty term
    method_params : per-method constructor settings, e.g. ``{"flow": {"flow": {"steps": 200}}}``
    """

    # not the demo's folder (an adapt pipeline's): a select file without `out` wrote its
    # report over the demo's
    name: str = "select"
    out: str = "runs/select"
    dataset: str = "fashion-mnist"
    board: str = "qemu-mps2-an386"
    seed: int = 0
    base_keep: str = "0.1"
    base_epochs: int | None = None
    methods: list[str] = field(default_factory=lambda: ["random", "vq", "flow"])
    budgets: list[int] = field(default_factory=lambda: [50, 150, 500])
    epochs: int = 10
    lr: float = 0.05
    momentum: float = 0.9
    batch: int = 32
    head_init: str = "zero"
    test_samples: int = 500
    proxy_epochs: int = 3
    method_params: dict = field(default_factory=dict)

    TEXT_FIELDS: ClassVar[tuple[str, ...]] = ("base_keep",)

    @classmethod
    def quick(cls) -> PipelineConfig:
        """digits, small budgets: under 2 minutes after set-up."""
        return cls(name="select-quick", out="runs/select-quick", dataset="digits",
                   base_keep="1.0",
                   base_epochs=30, budgets=[20, 50, 150], test_samples=200, proxy_epochs=2,
                   method_params={"flow": {"flow": {"steps": 200}}})

    def validate(self) -> None:
        if self.head_init not in ("zero", "export"):
            raise TinysiftError(f"head_init must be 'zero' or 'export', got {self.head_init!r}")
        if not self.budgets or any(int(b) < 1 for b in self.budgets):
            raise TinysiftError(f"budgets must be positive sample counts, got {self.budgets}")
        if self.epochs < 1:
            raise TinysiftError("epochs must be >= 1")
        if not self.methods:
            raise TinysiftError("methods must name at least one selection method, e.g. "
                                "[\"random\", \"vq\"]")
        from tinysift.selection import METHODS
        from tinysift.selection import methods as _registered  # noqa: F401

        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            hint = did_you_mean(unknown[0], METHODS) if len(unknown) == 1 else ""
            raise TinysiftError(f"unknown selection methods {unknown}{hint}; known: "
                                f"{', '.join(sorted(METHODS))}")
        if len(set(self.methods)) < len(self.methods):  # each row came twice
            raise TinysiftError(f"methods names a method twice: {self.methods}")
        # The ranges the stages would refuse only after the base model was trained (minutes
        # on Fashion-MNIST), or not at all: proxy_epochs 0 crashed the scoring, a negative
        # base_epochs was refused as the `--epochs` of on-device training.
        if not self.out.strip():  # Path("") is the current folder: the run wrote into it
            raise TinysiftError("out must name the run folder, e.g. \"runs/select\"")
        from tinysift.data.registry import refuse_run_inside

        refuse_run_inside(self.dataset, self.out, flag="out")  # would become its classes
        self._check_base_keep()
        if self.base_epochs is not None and self.base_epochs < 0:
            raise TinysiftError(f"base_epochs must be a whole number >= 1 (0 or absent: the "
                                f"subset step rule), got {self.base_epochs}")
        if self.test_samples < 1:
            raise TinysiftError(f"test_samples must be a whole number >= 1 (at least one per "
                                f"class), got {self.test_samples}")
        if self.proxy_epochs < 1:
            raise TinysiftError(f"proxy_epochs must be a whole number >= 1, got "
                                f"{self.proxy_epochs}")
        self._check_method_params()
        # the device's ranges (lr, momentum, batch) and its board before any stage runs
        as_pipeline_setting(self.device_params().validate)
        from tinysift.boards import check_emulated_board

        as_pipeline_setting(lambda: check_emulated_board(self.board))

    def _check_base_keep(self) -> None:
        """base_keep's form and range (against the data: :meth:`check_base_keep_holds`)."""
        from tinysift.errors import BudgetError
        from tinysift.selection.budget import parse_keep

        try:
            value = parse_keep(self.base_keep)
        except BudgetError as exc:
            raise TinysiftError(f"base_keep: {exc}") from None
        if not (0.0 < value <= 1.0 if isinstance(value, float) else value >= 1):
            raise TinysiftError(f"base_keep must be a fraction in (0, 1] (e.g. \"0.1\") or a "
                                f"count >= 1 (e.g. \"600\"), got {self.base_keep!r}")

    def check_base_keep_holds(self, samples: int, classes: int) -> None:
        """base_keep against the data (``samples`` training samples of ``classes`` classes),
        before any work, in the pipeline's words (train refused it later, naming a --keep the
        file does not have)."""
        from tinysift.selection.budget import resolve_keep

        try:
            kept = resolve_keep(self.base_keep, samples)
        except TinysiftError as exc:
            raise TinysiftError(f"base_keep = {self.base_keep!r}: {exc}") from None
        if kept < classes:
            raise TinysiftError(f"base_keep = {self.base_keep!r} keeps {kept} of {samples} "
                                f"samples, fewer than the {classes} classes (the base model's "
                                f"subset is class-balanced): set base_keep to {classes} or "
                                "more samples, or a larger fraction, in the pipeline file")

    def _check_method_params(self) -> None:
        """Each ``method_params`` entry names a selection method and holds settings its
        constructor takes: a typo'd method was silently ignored, an unknown or ill-typed
        setting crashed the selection after the base model was trained."""
        from tinysift.selection import METHODS, make_method

        for name, params in self.method_params.items():
            if name not in METHODS:
                raise TinysiftError(f"method_params names {name!r}, not a selection method; "
                                    f"known: {', '.join(sorted(METHODS))}")
            if not isinstance(params, dict):
                raise TinysiftError(f"method_params.{name} must be a table of {name}'s "
                                    f"settings (e.g. method_params = {{{name} = {{...}}}}), got "
                                    f"{params!r}")
            # what the constructor takes, those its **params pass to a base class included
            takes = sorted(parameter_names(METHODS[name]) - {"seed"})
            bad = sorted(k for k in params if k not in takes)
            if bad:
                seed = " (the pipeline's seed is every method's)" if "seed" in bad else ""
                raise TinysiftError(f"method_params.{name}: {name} has no setting "
                                    f"{', '.join(bad)}{seed}; its settings: "
                                    f"{', '.join(takes)}")
            _check_nested(f"method_params.{name}", METHODS[name].__init__, params)
            try:  # the constructor checks the values (cheap: nothing is fit)
                make_method(name, seed=self.seed, **params)
            except TinysiftError as exc:
                raise TinysiftError(f"method_params.{name}: {exc}") from None
            except (TypeError, ValueError) as exc:
                raise TinysiftError(f"method_params.{name}: {exc}; fix it in the pipeline "
                                    "file") from None

    def device_params(self):
        """The device training's parameters (:class:`tinysift.stages.device.TrainParams`)."""
        from tinysift.stages.device import TrainParams

        return TrainParams(epochs=self.epochs, lr=self.lr, momentum=self.momentum,
                           batch=self.batch, seed=self.seed + 1, init=self.head_init)


def _check_nested(where: str, init, params: dict) -> None:
    """A table given for a parameter annotated with a dataclass (flow's ``flow``:
    ``FlowConfig``) names only that dataclass's fields."""
    import dataclasses

    try:
        hints = typing.get_type_hints(init)
    except Exception:  # noqa: BLE001 - an annotation not resolvable here is not checked
        return
    for key, value in params.items():
        if not isinstance(value, dict):
            continue
        for kind in typing.get_args(hints.get(key)) or (hints.get(key),):
            if dataclasses.is_dataclass(kind):
                names = [f.name for f in dataclasses.fields(kind)]
                bad = sorted(set(value) - set(names))
                if bad:
                    raise TinysiftError(f"{where}.{key} has no setting {', '.join(bad)}; its "
                                        f"settings: {', '.join(names)}")


def as_pipeline_setting(check) -> None:
    """Run ``check()`` (a config's ``validate``), its refusal worded for a pipeline's
    settings: which file to fix."""
    try:
        check()
    except TinysiftError as exc:
        raise TinysiftError(f"pipeline setting: {exc}; fix it in the pipeline file (or its "
                            "flag)") from exc


def check_report_folder(out: str | Path, kind: str) -> None:
    """Refuse, before any work, a pipeline of ``kind`` whose run folder holds the report of a
    pipeline of another kind (``summary.json``, ``report.html``): a select file without
    ``out`` wrote over the demo's report. The kind is the summary's ``kind``, or for a
    summary written before it was recorded, its fields (an adapt summary holds ``results``
    and ``plans``, a select one ``rows``)."""
    import json

    try:
        summary = json.loads((Path(out) / "summary.json").read_text())
    except (OSError, ValueError):  # none, or torn: nothing to keep
        return
    if not isinstance(summary, dict):
        return
    theirs = summary.get("kind") or ("adapt" if {"results", "plans"} <= summary.keys() else
                                     "select" if "rows" in summary else None)
    if theirs is not None and theirs != kind:
        article = "an" if theirs == "adapt" else "a"
        raise TinysiftError(f"{out} holds the report of {article} {theirs} pipeline (summary."
                            f"json, report.html); this {kind} pipeline would replace it: set out = "
                            "\"...\" in the pipeline file or pass --out another folder")
