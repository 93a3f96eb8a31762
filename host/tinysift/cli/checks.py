"""Checks of the command line's input that every command shares: bad input is one clear line
and exit 2 before any stage runs (a seed out of range, a count below 1, a run folder that is
not one, an array file that does not hold an array)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

# numpy's and scikit-learn's seeds are unsigned 32-bit; stages derive seeds by adding small
# offsets (seed + 1 for the device, seed + class, seed + 7919 * class + epoch), so the CLI
# takes the lower half and every derived seed stays in range.
SEED_MAX = 2**31 - 1
#: every --dataset option's help (and `data info`'s argument)
DATASET_HELP = "dataset name, npz:PATH or folder:PATH (any may end in @HxW or @HxWxC: resized)"


def seed_option(default: int | None = 0, help: str | None = None) -> Any:  # noqa: A002
    """A ``--seed`` option: a whole number in [0, 2**31 - 1] (typer refuses others, exit 2).
    Without ``help`` it says what every seed is (the option had no help at all)."""
    return typer.Option(default, min=0, max=SEED_MAX,
                        help=help or "the random seed: the same seed gives the same result")


def positive_ints(text: str, flag: str, what: str = "whole numbers >= 1") -> tuple[int, ...]:
    """``"5,10,20"`` -> ``(5, 10, 20)``; anything else (a word, an empty item, 0, a negative
    number) is one BudgetError naming ``flag``."""
    from tinysift.errors import BudgetError

    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise BudgetError(f"{flag} takes comma-separated {what}, e.g. 5,10,20; got "
                          f"{text!r}") from None
    bad = [v for v in values if v < 1]
    if bad:
        raise BudgetError(f"{flag} values must be {what}, got {', '.join(map(str, bad))} "
                          f"in {text!r}")
    return values


def require_run(run: Path, flag: str = "--run") -> Path:
    """``run`` when it is a run folder (a folder with ``manifest.json``); otherwise one
    TinysiftError, before any stage can create or lock the folder."""
    from tinysift.errors import TinysiftError
    from tinysift.runs import MANIFEST

    fix = f"create it with `tinysift train --dataset D --out {run}` (then quantize, export)"
    try:
        exists = run.exists()
    except OSError as exc:  # a name over 255 bytes: was an unexpected OSError (exit 1)
        raise TinysiftError(f"not a run folder: {run} ({flag}: {exc.strerror or exc}); pass "
                            "the folder a `tinysift train --out` wrote") from None
    if not exists:
        raise TinysiftError(f"not a run folder: {run} does not exist ({flag}); {fix}")
    if not run.is_dir():
        raise TinysiftError(f"not a run folder: {run} is a file, not a folder ({flag}); pass "
                            "the folder a `tinysift train --out` wrote")
    if not (run / MANIFEST).is_file():
        if (run / "base" / MANIFEST).is_file():  # it was told to `tinysift train` it again
            raise TinysiftError(f"not a run folder: {run} is the folder of `tinysift adapt` "
                                f"(or of a pipeline), whose base model is the run folder "
                                f"{run / 'base'}: pass {flag} {run / 'base'}")
        if (run.parent / MANIFEST).is_file():  # RUN/export: was told to train a run there
            raise TinysiftError(f"not a run folder: {run} is the {run.name}/ folder inside "
                                f"the run folder {run.parent}: pass {flag} {run.parent}")
        raise TinysiftError(f"not a run folder: {run} has no {MANIFEST} ({flag}); {fix}")
    return run


def load_array(path: Path, flag: str, tflite: Path | None = None):
    """The one array a ``.npy`` holds, or one TinysiftError saying what the file holds
    instead (an ``.npz`` archive, pickled objects, not numpy at all) and what is expected;
    for an archive of uint8 images, how to save them as ``tflite``'s inputs."""
    from tinysift.data.sources import open_numpy
    from tinysift.errors import TinysiftError

    expected = ("a .npy of one numeric array of inputs, (N, then the model's input shape), "
                "written by np.save")
    try:
        is_file = path.is_file()
    except OSError as exc:  # a name over 255 bytes: was an unexpected OSError (exit 1)
        raise TinysiftError(f"{flag} {path}: {exc.strerror or exc}; give {expected}") from None
    if not is_file:
        raise TinysiftError(f"{flag} {path}: file not found; give {expected}")
    try:
        loaded = open_numpy(path)
    except Exception as exc:  # noqa: BLE001 - pickles, bad headers, I/O errors alike
        raise TinysiftError(f"{flag} {path} is not a readable .npy ({type(exc).__name__}: "
                            f"{exc}); give {expected}") from None
    if hasattr(loaded, "files"):
        with loaded as npz:
            names = list(npz.files)
            # the images, where the archive has them: a run's trainset.npz suggested its
            # 'indices', the first array, as the inputs
            pick = next((n for n in ("x", "x_test", "inputs") if n in names),
                        (names or [""])[0])
            pixels = bool(names) and _member_dtype(npz, pick) == "uint8"
        holds = f"arrays {', '.join(names)}" if names else "no arrays"
        array = f"np.load('{path.name}')['{pick}']"
        example = (f", e.g. np.save('inputs.npy', {array})" if names else "")
        if pixels:  # as saved, the engine refused them next: "takes int8 inputs; got uint8"
            example = _pixels_example(array, tflite) or example
        raise TinysiftError(f"{flag} {path} is an .npz archive ({holds}), not one array; "
                            f"give {expected}{example}")
    if loaded.dtype.kind not in "biuf":
        raise TinysiftError(f"{flag} {path} holds {loaded.dtype} values of shape "
                            f"{loaded.shape}; give {expected}")
    if loaded.ndim == 0 or len(loaded) == 0:
        raise TinysiftError(f"{flag} {path} holds no inputs (shape {loaded.shape}); give "
                            f"{expected}, N >= 1")
    return loaded


def _member_dtype(npz, name: str) -> str | None:
    """The dtype of array ``name`` of an open ``.npz``, read from its header alone (an
    archive of images need not be loaded for a hint); None where it cannot be read (an
    object array, a damaged member: the hint is then the plain one)."""
    import numpy as np

    try:
        with npz.zip.open(f"{name}.npy") as member:
            version = np.lib.format.read_magic(member)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            return read(member)[2].name
    except Exception:  # noqa: BLE001 - any unreadable member: no dtype, the plain hint
        return None


def _pixels_example(array: str, tflite: Path | None) -> str | None:
    """How to save uint8 pixels (``array``, as Python) as ``tflite``'s inputs, for a model
    trained on pixels / 255 as tinysift's are: int8 by the model's own input scale and zero
    point (TFLM's rounding), or float32; None without a readable model."""
    if tflite is None:
        return None
    try:
        from tinysift.export.tflite_reader import parse_tflite

        parsed = parse_tflite(Path(tflite).read_bytes(), tflite)
    except Exception:  # noqa: BLE001 - the command refuses the model itself, with its reason
        return None
    trained = "for a model trained on pixels / 255, as tinysift's are"
    if parsed.input_float is not None:
        return (f", e.g. np.save('inputs.npy', ({array} / 255).astype(np.float32)) (the "
                f"model takes float inputs; {trained})")
    scale, zero = float(parsed.input.scale), int(parsed.input.zero_point)
    return (f", e.g. np.save('inputs.npy', quantize_images({array}, {scale!r}, {zero})) "
            f"(from tinysift.quantize.tflm import quantize_images: the uint8 pixels as this "
            f"model's int8 inputs, its input scale and zero point; {trained})")


def random_count(count: int | None, inputs: Path | None, default: int = 200) -> int:
    """How many random inputs to draw: ``--count`` or its default; refused beside
    ``--inputs``, which gives the inputs (the count was ignored without a word)."""
    from tinysift.errors import TinysiftError

    if count is not None and inputs is not None:
        raise TinysiftError(f"--count {count} sets how many random inputs to draw, and "
                            f"--inputs {inputs} gives the inputs: give one")
    return default if count is None else count


def json_object(option: str, text: str | None, example: str = '{"judge": "knn"}'
                ) -> dict | None:
    """``text`` parsed as a JSON object (None when not given); anything else is a clear error
    that names ``option`` and shows ``example``."""
    import json
    import math

    from tinysift.errors import TinysiftError

    if text is None:
        return None

    def no_repeats(pairs: list[tuple]) -> dict:
        # JSON keeps the last of two equal keys: '{"flow": {...}, "flow": {}}' ran flow
        # with its defaults, silently
        keys = [k for k, _ in pairs]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise TinysiftError(f"{option} names {', '.join(map(repr, twice))} twice: give "
                                "each key once")
        return dict(pairs)

    def finite_only(constant: str) -> float:
        # Python's json reads NaN and Infinity (not JSON): '{"c": NaN}' ran ucb's bound as
        # NaN, silently
        raise TinysiftError(f"{option} holds {constant}, which is not a JSON number; give "
                            "finite numbers")

    def finite_float(number: str) -> float:
        # a number beyond a float's range is JSON, read as inf: '{"alpha": 1e400}' trained
        # vq on an infinite exponent, silently, as Infinity did
        value = float(number)
        if not math.isfinite(value):
            raise TinysiftError(f"{option} holds {number}, beyond a float's range (it reads "
                                "as infinity); give finite numbers")
        return value

    try:
        value = json.loads(text, object_pairs_hook=no_repeats, parse_constant=finite_only,
                           parse_float=finite_float)
    except json.JSONDecodeError as exc:
        raise TinysiftError(f"{option} is not JSON ({exc.msg} at character {exc.pos}); give "
                            f"an object such as '{example}'") from exc
    except ValueError:  # an integer of over 4,300 digits: Python's own limit
        import sys

        raise TinysiftError(f"{option} holds an integer too long to read (over "
                            f"{sys.get_int_max_str_digits():,} digits); give numbers of "
                            "ordinary size") from None
    if not isinstance(value, dict):
        raise TinysiftError(f"{option} must be a JSON object such as '{example}', got "
                            f"{type(value).__name__}")
    return value
