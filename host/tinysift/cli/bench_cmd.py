"""``tinysift bench ...``: results files, not tests; ``--executor`` says where trainings run."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tinysift.cli.app_console import console, say
from tinysift.cli.checks import DATASET_HELP, json_object, positive_ints

#: Where the committed benches write their results files.
DEFAULT_OUT_DIR = Path("benchmarks/results")

app = typer.Typer(help="Benchmarks: write JSON + markdown + plot under benchmarks/results.",
                  no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="bench")


_EXECUTOR = typer.Option("serial", help="where the trainings run: serial (here, one after "
                         "another), local[:N] (a Dask cluster of N workers on this machine) "
                         "or dask:ADDRESS (a running Dask scheduler); docs/scale.md")


def _executor(spec: str):
    from tinysift.bench.executor import open_executor

    return open_executor(spec, say=say)


def _out_dir_ok(out_dir: Path) -> Path:
    """--out-dir checked before any training: a file there failed as an unexpected
    NotADirectoryError once the first trainings were done."""
    from tinysift.runs import out_folder

    return out_folder(out_dir, "--out-dir", create=False)


def _quick_alone(quick: bool, what: str, **given) -> None:
    """Refuse options given with ``--quick``, whose own configuration (``what``) would
    silently replace them: ``given`` maps each option's flag name to its value (None, or
    False, when not given)."""
    # (`v not in (None, False)` took a given 0 for False)
    named = [f"--{k.replace('_', '-')}" for k, v in given.items()
             if v is not None and v is not False]
    if quick and named:
        from tinysift.errors import BudgetError

        raise BudgetError(f"--quick runs its own configuration ({what}) and would ignore "
                          f"{', '.join(named)}: drop {'them' if len(named) > 1 else 'it'} "
                          "or --quick")


@app.command("prune")
def prune_cmd(
    dataset: str = typer.Option(None, help=f"{DATASET_HELP} (default fashion-mnist)"),
    keep: str = typer.Option(None, help="fractions KEPT (default 0.5,0.3,0.1,0.03,0.01; "
                                        "equal-steps: 0.1,0.03,0.01)"),
    methods: str = typer.Option("all", help="comma-separated, or 'all' (equal-steps: "
                                            "random,ccs,d2,moderate,herding,vq,flow)"),
    seeds: int = typer.Option(None, min=1, help="seeds 0..N-1, the same for every "
                                                "method (default 3; equal-steps: 5)"),
    label_noise: float = typer.Option(0.0, help="fraction of training labels flipped at "
                                                "random to another class, in [0, 1)"),
    protocol: str = typer.Option("proportional", help="proportional: steps shrink with the "
                                 "kept set; equal-steps: every set gets the full data's "
                                 "sample-passes (steps x 128)"),
    quick: bool = typer.Option(False, help="digits, keep 0.1, 1 seed, short training"),
    out_dir: Path = typer.Option(Path("benchmarks/results"),
                                 help="folder of the results files (JSON, markdown, plot)"),
    executor: str = _EXECUTOR,
) -> None:
    """Every method at every budget, same training recipe, several seeds."""
    _out_dir_ok(out_dir)
    from tinysift.bench.prune import (
        ALL_METHODS,
        DEFAULT_KEEPS,
        EQUAL_STEPS_KEEPS,
        EQUAL_STEPS_METHODS,
        PROTOCOLS,
        PruneBenchConfig,
        bench_prune,
    )
    from tinysift.errors import BudgetError, did_you_mean

    if protocol not in PROTOCOLS:
        raise BudgetError(f"unknown --protocol {protocol!r}{did_you_mean(protocol, PROTOCOLS)}"
                          f"; choose one of {', '.join(PROTOCOLS)}")
    _quick_alone(quick, "digits, keep 0.1, 1 seed", dataset=dataset, keep=keep, seeds=seeds)
    equal = protocol == "equal-steps"
    names = ((EQUAL_STEPS_METHODS if equal else ALL_METHODS) if methods == "all"
             else tuple(methods.split(",")))
    keeps = (tuple(_fractions(keep, "--keep")) if keep is not None
             else (EQUAL_STEPS_KEEPS if equal else DEFAULT_KEEPS))
    if quick:
        cfg = PruneBenchConfig(dataset="digits", keeps=(0.1,), methods=names, seeds=1,
                               min_steps=60, subset_epochs=2, proxy_epochs=2, quick=True,
                               out_dir=out_dir, cache_dir=None, progress_dir=None,
                               label_noise=label_noise, protocol=protocol,
                               method_params={"flow": {"flow": {"steps": 100}}})
    else:
        cfg = PruneBenchConfig(dataset="fashion-mnist" if dataset is None else dataset,
                               keeps=keeps, methods=names,
                               seeds=(5 if equal else 3) if seeds is None else seeds,
                               label_noise=label_noise,
                               out_dir=out_dir, progress_dir=out_dir / "progress",
                               protocol=protocol)
    with _executor(executor) as ex:
        res = bench_prune(cfg, progress=False, executor=ex)
    say(f"wrote {out_dir}/ ({res['wall_seconds'] / 60:.1f} min)")


@app.command("guided")
def guided_cmd(
    dataset: str = typer.Option(None, help=f"{DATASET_HELP} (default fashion-mnist)"),
    budgets: str = typer.Option(None, help="fractions of the full-data recipe's "
                                           "sample-passes (default 0.3,0.5,0.7)"),
    methods: str = typer.Option("all", help="comma-separated guided methods, or 'all'"),
    seeds: int = typer.Option(None, min=1, help="seeds 0..N-1, the same for every "
                                                "method (default 5)"),
    epochs: int = typer.Option(None, min=1, help="epochs of the full-data recipe (default 10)"),
    label_noise: float = typer.Option(0.0, help="fraction of training labels flipped at "
                                                "random to another class, in [0, 1)"),
    quick: bool = typer.Option(False, help="digits, budget 0.5, 1 seed, 20 epochs"),
    out_dir: Path = typer.Option(DEFAULT_OUT_DIR,
                                 help="folder of the results files (JSON, markdown, plot)"),
    rerun: str = typer.Option("", help="comma-separated methods ('full': the recipe) to "
                              "train again though logged, e.g. to pair them with a rerun "
                              "method on one machine; earlier records stay in the log. "
                              "Killed halfway: run again WITHOUT --rerun to resume"),
    keep_steps: bool = typer.Option(False, help="budgeted runs train in batches of --batch x "
                                    "budget, as many optimizer steps as the recipe (which "
                                    "stays at --batch); results in their own log"),
    batch: int = typer.Option(None, min=1, help="the recipe's batch (a study of the recipe; the "
                              "committed benches use 128, the default)"),
    method_params: str = typer.Option(
        None, help="methods' parameters other than their defaults, a JSON object by method, "
                   "e.g. '{\"flow\": {\"judge\": \"knn\"}}'; a bench with them logs apart "
                   "from one without (give it its own --out-dir)"),
    executor: str = _EXECUTOR,
) -> None:
    """Guided training (per-epoch data selection) at fixed budgets, against its controls."""
    _out_dir_ok(out_dir)
    from tinysift.bench.guided import ALL_GUIDED, GuidedBenchConfig, bench_guided

    names = ALL_GUIDED if methods == "all" else tuple(methods.split(","))
    by_method = _method_params(method_params, names)
    if any(by_method.values()) and out_dir.resolve() == DEFAULT_OUT_DIR.resolve():
        from tinysift.errors import TinysiftError

        raise TinysiftError(f"--method-params with the default --out-dir would write its "
                            f"tables over those of the methods' defaults in {out_dir}/: give "
                            f"it a folder of its own, e.g. --out-dir {out_dir}/guided_params")
    _quick_alone(quick, "digits, budget 0.5, 1 seed, 20 epochs", dataset=dataset,
                 budgets=budgets, seeds=seeds, epochs=epochs, rerun=rerun or None,
                 keep_steps=keep_steps, batch=batch)
    if quick:
        cfg = GuidedBenchConfig(dataset="digits", budgets=(0.5,), methods=names, seeds=1,
                                epochs=20, label_noise=label_noise, out_dir=out_dir,
                                progress_dir=None, quick=True, method_params=by_method)
    else:
        cfg = GuidedBenchConfig(dataset="fashion-mnist" if dataset is None else dataset,
                                budgets=tuple(_fractions(
                                    "0.3,0.5,0.7" if budgets is None else budgets, "--budgets")),
                                methods=names, seeds=5 if seeds is None else seeds,
                                epochs=10 if epochs is None else epochs,
                                label_noise=label_noise, out_dir=out_dir,
                                progress_dir=out_dir / "progress",
                                rerun=tuple(m for m in rerun.split(",") if m),
                                keep_steps=keep_steps, batch=128 if batch is None else batch,
                                method_params=by_method)
    with _executor(executor) as ex:
        res = bench_guided(cfg, executor=ex)
    say(f"wrote {out_dir}/ ({res['wall_seconds'] / 60:.1f} min)")


def _method_params(text: str | None, methods: tuple[str, ...]) -> dict[str, dict]:
    """``--method-params`` read as ``{method: {parameter: value}}`` for methods this bench runs
    (the parameters themselves are checked against each method before any training)."""
    from tinysift.errors import TinysiftError

    example = '{"flow": {"judge": "knn"}}'
    given = json_object("--method-params", text, example) or {}
    for method, params in given.items():
        if method not in methods:
            raise TinysiftError(f"--method-params names {method!r}, which this bench does not "
                                f"run (its methods: {', '.join(methods)})")
        if not isinstance(params, dict):
            raise TinysiftError(f"--method-params: {method!r} takes a JSON object of its "
                                f"parameters, such as {example}, got {json.dumps(params)}")
    return given


def _bench_scenario(scenario: str | None, default: str, command: str) -> str:
    """The scenario of `bench device` / `bench upkeep`: shift or new-classes (``default`` when
    not given). The user scenario needs --new, which the benches have not: it was refused
    with "needs --new", an option these commands reject, and an unknown one was offered it."""
    from tinysift.errors import BudgetError

    scenario = default if scenario is None else scenario
    if scenario not in ("shift", "new-classes"):
        raise BudgetError(f"bench {command} --scenario must be shift or new-classes, got "
                          f"{scenario!r} (the user scenario, your own new data, is "
                          "`tinysift adapt --scenario user --new PATH`)")
    return scenario


@app.command("device")
def device_cmd(
    scenario: str = typer.Option(None, help="new-classes or shift (default new-classes)"),
    dataset: str = typer.Option(None, help="base dataset (fashion-mnist; shift: mnist)"),
    board: str = typer.Option(None, help="an emulated board (default qemu-mps2-an386)"),
    seeds: int = typer.Option(None, min=1, help="seeds 0..N-1 (default 3)"),
    methods: str = typer.Option(None, help="replay methods (default "
                                           "random,herding,ccs,vq,flow)"),
    sizes: str = typer.Option(None, help="replay samples per old class (default 5,10,20)"),
    updates: str = typer.Option(None, help="comma-separated: head, last-block, bias "
                                           "(default head)"),
    steps: int = typer.Option(None, min=1, help="on-device optimizer steps (default 300)"),
    new_per_class: int = typer.Option(None, min=1,
                                      help="new samples per class (100; shift: 30)"),
    test_per_class: int = typer.Option(
        None, min=1, help="exported test samples per class (the device evaluates them all; "
                          "default 100: one standard error of an accuracy ~1 point)"),
    quick: bool = typer.Option(False, help="digits, new-classes, 1 seed, sizes 5, head"),
    out_dir: Path = typer.Option(Path("benchmarks/results"),
                                 help="folder of the results files (JSON, markdown, plot)"),
    executor: str = typer.Option("serial", help="serial only: device runs drive an emulator "
                                                "here (docs/scale.md)"),
) -> None:
    """On-device adaptation: replay methods x sizes x update modes on the emulated board."""
    _out_dir_ok(out_dir)
    from tinysift.bench.device import DeviceBenchConfig, bench_device
    from tinysift.bench.executor import parse_spec

    if parse_spec(executor)[0] != "serial":
        from tinysift.errors import ClusterError

        # Refused rather than ignored: a user must not believe the runs were distributed.
        raise ClusterError(f"bench device runs only serially (--executor {executor}): each run "
                           "drives an emulator over a socket on this machine, from the firmware "
                           "and export built here; drop --executor (docs/scale.md)")
    # None is "not given": --quick refuses what it would ignore (it ignored them silently;
    # --board it takes, as bench upkeep --quick does)
    _quick_alone(quick, "digits, new-classes, 1 seed, sizes 5, head", scenario=scenario,
                 dataset=dataset, seeds=seeds, methods=methods, sizes=sizes,
                 updates=updates, steps=steps, new_per_class=new_per_class,
                 test_per_class=test_per_class)
    # an empty --sizes is refused, not read as the default
    sizes_ = positive_ints("5,10,20" if sizes is None else sizes, "--sizes",
                           "replay samples per old class >= 1")
    if quick:
        cfg = DeviceBenchConfig(dataset="digits", new_per_class=30, seeds=1,
                                methods=("random", "vq"), sizes=(5,), updates=("head",),
                                steps=150, base_epochs=30, test_per_class=15, quick=True,
                                out_dir=out_dir, progress_dir=None,
                                **({} if board is None else {"board": board}))
    else:
        scenario = _bench_scenario(scenario, "new-classes", "device")
        shift = scenario == "shift"
        # what is not given keeps DeviceBenchConfig's default
        given = {k: v for k, v in (
            ("board", board), ("seeds", seeds), ("steps", steps),
            ("test_per_class", test_per_class),
            ("methods", None if methods is None else tuple(methods.split(","))),
            ("updates", None if updates is None else tuple(updates.split(","))))
            if v is not None}
        cfg = DeviceBenchConfig(
            scenario=scenario, dataset=dataset or ("mnist" if shift else "fashion-mnist"),
            old_classes=tuple(range(10)) if shift else tuple(range(8)),
            new_per_class=(30 if shift else 100) if new_per_class is None else new_per_class,
            sizes=sizes_, out_dir=out_dir, progress_dir=out_dir / "progress", **given)
    res = bench_device(cfg, log=say)
    say(f"wrote {out_dir}/ ({res['wall_seconds'] / 60:.1f} min)")


def _fractions(text: str, flag: str) -> list[float]:
    from tinysift.errors import BudgetError

    try:
        values = [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise BudgetError(f"{flag} takes comma-separated fractions, got {text!r}") from exc
    bad = [v for v in values if not 0.0 < v <= 1.0]
    if bad:
        raise BudgetError(f"{flag} values must be fractions in (0, 1], got {bad}")
    return values


@app.command("condense")
def condense_cmd(
    dataset: str = typer.Option(None, help=f"{DATASET_HELP} (default fashion-mnist)"),
    per_class: str = typer.Option(None, help="samples made a class, comma-separated "
                                             "(default 1,10,50)"),
    methods: str = typer.Option("all", help="comma-separated condensation methods, or 'all'"),
    seeds: int = typer.Option(None, min=1, help="seeds 0..N-1 (default 3)"),
    quick: bool = typer.Option(False, help="digits, K=1,5, 1 seed"),
    out_dir: Path = typer.Option(Path("benchmarks/results"),
                                 help="folder of the results files (JSON, markdown, plot)"),
    executor: str = _EXECUTOR,
) -> None:
    """Condensation methods at K samples per class."""
    _out_dir_ok(out_dir)
    from tinysift.bench.condense import ALL_CONDENSERS, CondenseBenchConfig, bench_condense

    names = ALL_CONDENSERS if methods == "all" else tuple(methods.split(","))
    _quick_alone(quick, "digits, K=1,5, 1 seed", dataset=dataset, per_class=per_class,
                 seeds=seeds)
    # an empty --per-class is refused, not read as the default (None is "not given")
    ks = positive_ints("1,10,50" if per_class is None else per_class, "--per-class",
                       "samples per class >= 1")
    if quick:
        cfg = CondenseBenchConfig(dataset="digits", per_class=(1, 5), methods=names, seeds=1,
                                  min_steps=100, quick=True, out_dir=out_dir,
                                  progress_dir=None)
    else:
        cfg = CondenseBenchConfig(dataset="fashion-mnist" if dataset is None else dataset,
                                  per_class=ks,
                                  methods=names, seeds=3 if seeds is None else seeds,
                                  out_dir=out_dir,
                                  progress_dir=out_dir / "progress")
    with _executor(executor) as ex:
        res = bench_condense(cfg, executor=ex)
    say(f"wrote {out_dir}/ ({res['wall_seconds'] / 60:.1f} min)")


@app.command("scoring")
def scoring_cmd(
    dataset: str = typer.Option("mnist", help=DATASET_HELP),
    methods: str = typer.Option("vq,flow", help="comma-separated scoring methods"),
    out_dir: Path = typer.Option(Path("benchmarks/results"),
                                 help="folder of the results files (JSON, markdown, plot)"),
) -> None:
    """Cold-start scoring time of VQ and flow on a full dataset (targets: 60 s, 5 min)."""
    _out_dir_ok(out_dir)
    from tinysift.bench.scoring import bench_scoring

    res = bench_scoring(dataset, tuple(methods.split(",")), out_dir=out_dir)
    for name, r in res["methods"].items():
        console.print(f"{name}: {r['seconds']:.1f} s (target {r['target_seconds']} s)")
