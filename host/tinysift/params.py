"""Estimator parameters, scikit-learn style: the constructor's arguments are the public
attributes (fitted state ends in ``_``), so a stage can record every parameter, defaults
included, and key its cache on them."""

from __future__ import annotations

import dataclasses
import json


class Parameterized:
    """``get_params`` / ``plain_params`` for pruning methods and condensers."""

    def get_params(self) -> dict:
        """The constructor's parameters: attributes neither fitted (``x_``) nor private
        (``_x``, e.g. a condenser's working arrays)."""
        return {k: v for k, v in vars(self).items()
                if not k.endswith("_") and not k.startswith("_")}

    def plain_params(self) -> dict:
        """:meth:`get_params` as JSON values (nested configs as dicts), the seed left out:
        what a cache key or a results record needs to tell a changed default apart."""

        def plain(value):
            if dataclasses.is_dataclass(value):
                return dataclasses.asdict(value)
            raise TypeError(f"{type(value).__name__} is not a plain parameter")

        params = self.get_params()
        params.pop("seed", None)
        return json.loads(json.dumps(params, sort_keys=True, default=plain))
