"""recbole_ext: new recommender models that RecBole drives as if they were its own.

Public API:

- :func:`get_model`, :func:`get_trainer`: resolve names, ours first, then RecBole's.
- :class:`Config`: RecBole's configurator with our YAML defaults and today's-stack fixes
  (it reads files and checks types; it downloads nothing and joins no process group).
- :func:`run_recbole_ext`: train and test one model (RecBole's ``run_recbole``).
- :class:`Run` (:mod:`recbole_ext.pipeline`): the steps of a run, one by one.
- :func:`recommend`: top-k items for a history of raw item tokens, from a checkpoint.

Each name loads its module when first used, so ``import recbole_ext`` (and ``recbole-ext
--help``) imports neither torch nor RecBole's modules.
"""

import importlib

__version__ = "0.1.0"

from recbole_ext._requirements import check_recbole  # noqa: E402

check_recbole()  # one line saying what to install, before anything imports RecBole's modules

#: each public name and the module that defines it
_PUBLIC = {
    "Config": "recbole_ext.config",
    "get_model": "recbole_ext.registry",
    "get_trainer": "recbole_ext.registry",
    "run_recbole_ext": "recbole_ext.quick_start",
    "recommend": "recbole_ext.serving",
    "Run": "recbole_ext.pipeline",
}


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'recbole_ext' has no attribute {name!r}")


__all__ = ["Config", "Run", "get_model", "get_trainer", "recommend", "run_recbole_ext", "__version__"]
