"""The split methods ``eval_args: {split: {METHOD: ARGUMENT}, order: ...}`` may name, and what
each one's argument and order may be: one table, :data:`SPLIT_METHODS`. The configuration's
checks (:func:`check_eval_split`, run with the other ``eval_args`` checks before any data is
read) and the data-set classes that carry the splits out read it; a new method is one entry
here and its implementation in the data-set class."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, Optional, Tuple

from recbole_ext.errors import ConfigError

#: the orders ``eval_args.order`` may name: random (RO) or by time (TO)
ORDERS = ("RO", "TO")


@dataclasses.dataclass(frozen=True)
class SplitMethod:
    """One split method of ``eval_args.split``.

    Attributes:
        allowed: what its argument may be, as the error line says it.
        accepts: whether a value is such an argument.
        orders: the ``eval_args.order`` values it runs under.
        problem: what is wrong with an argument it does not accept, in words (``None``: say
            ``allowed``).
        sequential_only: only sequential models' data sets carry it out.
    """

    allowed: str
    accepts: Callable[[Any], bool]
    orders: Tuple[str, ...] = ORDERS
    problem: Optional[Callable[[Any], Optional[str]]] = None
    sequential_only: bool = False


def _ratios(value: Any) -> bool:
    """1 to 3 finite numbers >= 0 with a positive sum (train, valid, test shares)."""
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 3:
        return False
    numbers = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) != len(value) or not all(math.isfinite(v) and v >= 0 for v in numbers):
        return False
    return sum(numbers) > 0


#: the global temporal split of sequential models (:mod:`recbole_ext.data.temporal_split`)
GT = "GT"


def gt_cut_problem(cuts: object) -> Optional[str]:
    """What is wrong with the value of ``split: {GT: ...}`` (``None``: nothing): two numbers,
    increasing, both quantiles in ``(0, 1)`` or both times (>= 1)."""
    if not isinstance(cuts, (list, tuple)) or len(cuts) != 2:
        return f"GT takes two cut points [valid_cut, test_cut], got {cuts!r}"
    if any(isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) for c in cuts):
        return f"GT's cut points are numbers, got {list(cuts)!r}"
    low, high = cuts
    if not low < high:
        return f"GT's cut points must increase (valid_cut < test_cut), got {list(cuts)!r}"
    if low <= 0:
        return f"GT's cut points are quantiles in (0, 1) or times >= 1, got {list(cuts)!r}"
    if low < 1 <= high:
        return f"GT's cut points are both quantiles (below 1) or both times (1 and above), got {list(cuts)!r}"
    return None


#: the arguments of a leave-one-out split (LS)
LEAVE_ONE_OUT = ("valid_and_test", "valid_only", "test_only")
#: RecBole 1.2.1's methods (``Dataset.build``)
SPLIT_METHODS: Dict[str, SplitMethod] = {
    "RS": SplitMethod("a list of 1 to 3 ratios >= 0 (e.g. [0.8, 0.1, 0.1])", _ratios),
    "LS": SplitMethod("valid_and_test, valid_only or test_only", lambda v: v in LEAVE_ONE_OUT),
    "TS": SplitMethod("a list of 1 to 3 ratios >= 0 (by time, each user's last ones held out)", _ratios),
    GT: SplitMethod(
        "[valid_cut, test_cut], two increasing quantiles in (0, 1) or times >= 1 (sequential models)",
        lambda v: gt_cut_problem(v) is None,
        orders=("TO",),
        problem=gt_cut_problem,
        sequential_only=True,
    ),
}
#: the ``eval_args.group_by`` values a ratio split (RS) takes
GROUP_BY = (None, "none", "user")


def check_eval_split(eval_args: Any, sequential: bool = True) -> None:
    """``eval_args``'s ``split`` names one method of :data:`SPLIT_METHODS` with an argument it
    takes, under an ``order`` of :data:`ORDERS` the method runs under, for a model whose data set
    carries it out (``sequential``: the model is a sequential one); a one-line ConfigError
    otherwise (RecBole fails later with a traceback)."""
    if not isinstance(eval_args, dict):
        return
    split, order = eval_args.get("split"), eval_args.get("order")
    methods = "; ".join(f"{name}: {m.allowed}" for name, m in SPLIT_METHODS.items())
    if split is not None and (not isinstance(split, dict) or len(split) != 1):
        raise ConfigError(f"invalid configuration: eval_args split {split!r}; allowed: one method, {{{methods}}}")
    if order is not None and order not in ORDERS:
        raise ConfigError(f"invalid configuration: eval_args order {order!r}; allowed: {', '.join(ORDERS)}")
    if split is None:
        return
    ((name, value),) = split.items()
    method = SPLIT_METHODS.get(name)
    if method is None:
        raise ConfigError(f"invalid configuration: eval_args split method {name!r} is unknown; allowed: {methods}")
    if not method.accepts(value):
        why = (method.problem(value) if method.problem else None) or f"allowed: {method.allowed}"
        raise ConfigError(f"invalid configuration: eval_args split {{{name}: {value!r}}}; {why}")
    if method.sequential_only and not sequential:
        raise ConfigError(f"invalid configuration: eval_args split {name} is for sequential models only")
    if order is not None and order not in method.orders:
        raise ConfigError(f"invalid configuration: eval_args split {name} needs order: {' or '.join(method.orders)}")
    group_by = eval_args.get("group_by")
    if name == "RS" and group_by not in GROUP_BY:
        raise ConfigError(f"invalid configuration: eval_args group_by {group_by!r}; allowed with RS: none or user")
