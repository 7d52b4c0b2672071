"""What each command is asked to do: typed requests, checked once when they are made.

The command line (:mod:`recbole_ext.cli`) parses ``argv`` into one of these and hands it to the
command; a library caller makes one directly. Every check of a request is written here, in its
``__post_init__``, so a request that exists is valid: a mistake is a one-line
:class:`~recbole_ext.errors.UserError` before any work starts.

One module per family of commands: :mod:`.training` (train, compare, tune, reproduce),
:mod:`.checkpoints` (evaluate, recommend), :mod:`.files` (report, convert, data, models);
:mod:`.options` holds the option values they share. Every name is importable from here.
"""

from recbole_ext.command.checkpoints import EVAL_KEYS, EvaluateRequest, RecommendRequest
from recbole_ext.command.files import ConvertRequest, DataRequest, ModelsRequest, ReportRequest
from recbole_ext.command.options import option_key, parse_devices, parse_seeds, split_list
from recbole_ext.command.training import CompareRequest, ReproduceRequest, RunRequest, TrainRequest, TuneRequest

__all__ = [
    "EVAL_KEYS",
    "CompareRequest",
    "ConvertRequest",
    "DataRequest",
    "EvaluateRequest",
    "ModelsRequest",
    "RecommendRequest",
    "ReportRequest",
    "ReproduceRequest",
    "RunRequest",
    "TrainRequest",
    "TuneRequest",
    "option_key",
    "parse_devices",
    "parse_seeds",
    "split_list",
]
