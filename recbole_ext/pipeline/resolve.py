"""Every model's run of a comparison or a tuning, resolved together (:func:`resolve_all`)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional

from recbole_ext.errors import ConfigError
from recbole_ext.pipeline.run import Run
from recbole_ext.registry import canonical_model_name


def resolve_all(
    models: Iterable[str],
    dataset: str,
    files_for: Callable[[str], Optional[List[str]]],
    config_dict: Optional[Dict[str, Any]] = None,
    cmd_args: Iterable[str] = (),
) -> Dict[str, Run]:
    """Every model's run of a comparison (or a tuning), resolved before any of them works: an
    unknown model name or a bad setting of any model is a UserError now, not after the others
    trained. A command-line key applies to every model: it must be a key of at least one of
    them (``--n_layers`` of SASRec beside GLINTRU); a key none knows is a one-line error.

    Args:
        models: the names as given (case-insensitive).
        dataset: the data set's name.
        files_for: each model's config files (the comparison's, then its own).
        config_dict, cmd_args: for every model.

    Returns:
        ``{canonical name: Run}`` in the order given.
    """
    cmd_args = list(cmd_args)
    keys = {a[2:].split("=", 1)[0] for a in cmd_args if a.startswith("--") and "=" in a}
    runs: Dict[str, Run] = {}
    for name in models:
        model = canonical_model_name(name)
        runs[model] = Run.resolve(model, dataset, files_for(model), config_dict, cmd_args, lenient_keys=keys)
    unknown = set.intersection(*(set(r.config.unknown_cmd_keys) for r in runs.values())) if runs else set()
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"--{key} is a key of none of {', '.join(runs)}, their data set or RecBole")
    return runs
