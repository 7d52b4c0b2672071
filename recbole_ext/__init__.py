"""recbole_ext: new recommender models that RecBole drives as if they were its own.

Public API:

- :func:`get_model`, :func:`get_trainer`: resolve names, ours first, then RecBole's.
- :class:`Config`: RecBole's configurator with our YAML defaults and today's-stack fixes.
- :func:`run_recbole_ext`: train and test one model (RecBole's ``run_recbole``).
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
    """See :func:`recbole_ext.recommend.recommend`. (Once :mod:`recbole_ext.recommend` is
    imported, ``recbole_ext.recommend`` is that module, which is callable the same way.)"""
    from recbole_ext.serving import recommend as _recommend

    return _recommend(*args, **kwargs)


__all__ = ["Config", "get_model", "get_trainer", "recommend", "run_recbole_ext", "__version__"]
