"""The pipeline configuration: a dataclass, read from TOML, overridden by flags."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from tinysift.errors import TinysiftError


class TomlConfig:
    """A dataclass config read from a TOML pipeline file (its sections only group keys for
    readability) and overridden by flags; subclasses implement ``validate``."""

    @classmethod
    def from_toml(cls, path: str | Path):
        p = Path(path)
        if not p.exists():
            raise TinysiftError(f"pipeline file {p} not found")
        try:
            with open(p, "rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise TinysiftError(f"{p} is not valid TOML: {exc}") from exc
        data.pop("kind", None)
        flat: dict = {}
        for key, value in data.items():
            if isinstance(value, dict):  # sections are only for readability
                flat.update(value)
            else:
                flat[key] = value
        return cls().override(**flat)

    def override(self, **values):
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TinysiftError(f"unknown pipeline settings {unknown}; known: {sorted(known)}")
        data = asdict(self)
        data.update({k: v for k, v in values.items() if v is not None})
        cfg = type(self)(**data)
        cfg.validate()
        return cfg

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

    name: str = "demo"
    out: str = "runs/demo"
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

    @classmethod
    def quick(cls) -> PipelineConfig:
        """digits, small budgets: under 2 minutes after set-up."""
        return cls(name="demo-quick", out="runs/demo-quick", dataset="digits", base_keep="1.0",
                   base_epochs=30, budgets=[20, 50, 150], test_samples=200, proxy_epochs=2,
                   method_params={"flow": {"flow": {"steps": 200}}})

    def validate(self) -> None:
        if self.head_init not in ("zero", "export"):
            raise TinysiftError(f"head_init must be 'zero' or 'export', got {self.head_init!r}")
        if not self.budgets or any(int(b) < 1 for b in self.budgets):
            raise TinysiftError(f"budgets must be positive sample counts, got {self.budgets}")
        if self.epochs < 1:
            raise TinysiftError("epochs must be >= 1")
