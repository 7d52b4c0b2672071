"""Errors a user can cause. The command line prints their message as one line and exits 2."""


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
