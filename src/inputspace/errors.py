"""Errors a user can act on. Each message is one line: the problem, then the fix."""


class InputspaceError(Exception):
    """Base class: the workflow prints these as one line, never as a traceback."""


class ConfigError(InputspaceError):
    """The configuration does not match the schema or refers to something undefined."""


class ModelUnavailable(InputspaceError):
    """A configured model source cannot be materialised on this machine."""


class PromptError(InputspaceError):
    """A prompt or prompt-pairs file is malformed."""
