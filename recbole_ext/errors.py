"""Errors a user can cause. The command line prints their message as one line and exits 2."""

import argparse


class UserError(Exception):
    """A problem with the user's input (model name, data, config), not a bug."""

    exit_code = 2


class UnknownModelError(UserError, ValueError):
    pass


class DatasetNotFoundError(UserError, FileNotFoundError):
    pass


class DataFormatError(UserError, ValueError):
    pass


class ConfigError(UserError, ValueError):
    pass


class DataFetchError(UserError, OSError):
    """A registry data set could not be downloaded, verified or converted."""


class RunFailed(Exception):
    """A run that started and could not finish (its loss diverged, the disk filled up): the
    command line prints its message as one line and exits 1; what the run finished is kept."""

    exit_code = 1


class TrainingDiverged(RunFailed):
    """The training loss became NaN or infinite."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT, as Python's KeyboardInterrupt) stopped a run. ``checkpoint`` is set to
    the last finished epoch's checkpoint when there is one; the command line exits with
    ``exit_code`` (143 for SIGTERM, 130 for SIGINT)."""

    def __init__(self, signal_name: str = "SIGINT", exit_code: int = 130):
        super().__init__(signal_name)
        self.signal_name, self.exit_code = signal_name, exit_code


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message``, cut to ``limit`` characters: how a failed run, row or
    trial names its reason."""
    msg = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {msg[0]}" if msg and msg[0] else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises a :class:`UserError` (one line, exit 2) instead of printing usage,
    never takes an abbreviation of an option for the option (``--seed`` is not ``--seeds``), and
    refuses an option given an empty value."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise UserError(message)

    def parse_known_args(self, args=None, namespace=None):
        """argparse's, and an option given an empty value (``--seeds=``) is an error, not the
        option left out."""
        parsed, rest = super().parse_known_args(args, namespace)
        for action in self._actions:
            if action.option_strings and getattr(parsed, action.dest, None) == "" and action.default != "":
                name = max(action.option_strings, key=len)
                raise UserError(f"{name} is empty: give it a value, or leave the option out")
        return parsed, rest
