"""Errors a user can act on. Each message is one line: the problem, then the fix."""


class InputspaceError(Exception):
    """Base class: the workflow prints these as one line, never as a traceback."""


class ConfigError(InputspaceError):
    """The configuration does not match the schema or refers to something undefined."""


class ModelUnavailable(InputspaceError):
    """A configured model source cannot be materialised on this machine."""


class PromptError(InputspaceError):
    """A prompt or prompt-pairs file is malformed."""


class InputspaceWarning(UserWarning):
    """Something a user should know about their config; shown on the console and in the log."""


class DamagedFile(InputspaceError):
    """A file that does not read back as what was written (truncated, changed)."""


class WriteFailed(InputspaceError):
    """An output that could not be written (full disk, no permission)."""


def first_line(error: object, limit: int = 160) -> str:
    """The first line of an error's message (its type's name if it has none), shortened
    to `limit` characters: the part of a library's explanation a one-line message quotes."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
