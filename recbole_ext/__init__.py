"""recbole_ext: new recommender models that RecBole drives as if they were its own.

Public API:

- :func:`get_model`, :func:`get_trainer`: resolve names, ours first, then RecBole's.
- :class:`Config`: RecBole's configurator with our YAML defaults and today's-stack fixes
  (it reads files and checks types; it downloads nothing and joins no process group).
- :func:`run_recbole_ext`: train and test one model (RecBole's ``run_recbole``).
- :class:`Run` (:mod:`recbole_ext.pipeline`): the steps of a run, one by one.
- :func:`recommend`: top-k items for a history of raw item tokens, from a checkpoint.
"""

__version__ = "0.1.0"

from recbole_ext._requirements import check_recbole  # noqa: E402

check_recbole()  # one line saying what to install, before anything imports RecBole

from recbole_ext.config import Config  # noqa: E402
from recbole_ext.registry import get_model, get_trainer  # noqa: E402


def run_recbole_ext(*args, **kwargs):
    """See :func:`recbole_ext.quick_start.run_recbole_ext`."""
    from recbole_ext.quick_start import run_recbole_ext as _run

    return _run(*args, **kwargs)


def recommend(*args, **kwargs):
    """See :func:`recbole_ext.serving.recommend`."""
    from recbole_ext.serving import recommend as _recommend

    return _recommend(*args, **kwargs)


def __getattr__(name: str):
    if name == "Run":  # the pipeline imports the loaders and trainers: only when asked for
        from recbole_ext.pipeline import Run

        return Run
    raise AttributeError(f"module 'recbole_ext' has no attribute {name!r}")


__all__ = ["Config", "Run", "get_model", "get_trainer", "recommend", "run_recbole_ext", "__version__"]
