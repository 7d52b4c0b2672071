"""Every model's run of a comparison or a tuning, resolved together (:func:`resolve_all`), and
the entries of a comparison: a model name, or ``Model@variant`` (:func:`canonical_entry`)."""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from recbole_ext.command import option_key
from recbole_ext.errors import ConfigError
from recbole_ext.pipeline.run import Run
from recbole_ext.registry import canonical_model_name

_VARIANT = re.compile(r"^[A-Za-z0-9_.-]+$")


def split_entry(entry: str) -> Tuple[str, Optional[str]]:
    """``"GLINTRU@no_gru"`` -> ``("GLINTRU", "no_gru")``; a plain name -> ``(name, None)``.

    A variant is the same model with settings of its own (an ablation): its label names its
    row, record and config file (``<model-configs>/GLINTRU@no_gru.yaml``, read after the model's
    own ``GLINTRU.yaml``).
    """
    model, at, variant = entry.partition("@")
    if not at:
        return entry, None
    if not variant or not _VARIANT.match(variant):
        raise ConfigError(f"'{entry}': a variant is written Model@name (letters, digits, _ . -)")
    return model, variant


def canonical_entry(entry: str) -> str:
    """The entry with the model's canonical spelling (``glintru@light`` -> ``GLINTRU@light``)."""
    model, variant = split_entry(entry)
    model = canonical_model_name(model)
    return f"{model}@{variant}" if variant else model


def model_of(entry: str) -> str:
    """The model class name of a canonical entry (``GLINTRU@light`` -> ``GLINTRU``)."""
    return entry.partition("@")[0]


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
        models: the names as given (case-insensitive), or ``Model@variant`` entries.
        dataset: the data set's name.
        files_for: each model's config files (the comparison's, then its own).
        config_dict, cmd_args: for every model.

    Returns:
        ``{canonical entry: Run}`` in the order given.
    """
    cmd_args = list(cmd_args)
    keys = {k for k in map(option_key, cmd_args) if k is not None}
    runs: Dict[str, Run] = {}
    for name in models:
        entry = canonical_entry(name)
        runs[entry] = Run.resolve(model_of(entry), dataset, files_for(entry), config_dict, cmd_args, lenient_keys=keys)
    unknown = set.intersection(*(set(r.config.unknown_cmd_keys) for r in runs.values())) if runs else set()
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"--{key} is a key of none of {', '.join(runs)}, their data set or RecBole")
    check_rows_differ(runs)
    return runs


def effective_settings(run: Run) -> Dict[str, Any]:
    """What a run trains with: its resolved configuration without the list of files read and
    without the keys no default knows (they change nothing)."""
    config = run.config
    ignored = {"config_files"} | set(config.unknown_keys)
    return {k: v for k, v in config.final_config_dict.items() if k not in ignored}


def check_rows_differ(runs: Dict[str, Run]) -> None:
    """Two rows of the same model (``Model`` and ``Model@variant``, or two variants) that would
    train with equal settings are a one-line ConfigError naming the keys their files set that
    change nothing (a misspelt key makes a variant its model again)."""
    seen: List[Tuple[str, str]] = []
    for entry, run in runs.items():
        text = repr(sorted(effective_settings(run).items(), key=lambda kv: kv[0]))
        twin = next((other for other, known in seen if known == text and model_of(other) == model_of(entry)), None)
        seen.append((entry, text))
        if twin is None:
            continue
        unknown = sorted(run.config.unknown_keys - runs[twin].config.unknown_keys)
        why = f": its settings' {', '.join(unknown)} is no key of {model_of(entry)}" if unknown else ""
        warnings = [w for w in getattr(run.config, "unknown_key_warnings", []) if "did you mean" in w]
        hint = f" ({warnings[0].split('; ', 1)[1]})" if unknown and warnings else ""
        raise ConfigError(
            f"{entry} would train with the same settings as {twin}{why}{hint}; change its file or drop the row"
        )
