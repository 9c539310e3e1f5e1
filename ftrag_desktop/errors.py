"""The error hierarchy: known errors carry a message fit for people; anything else is a bug.

`UserError` and its subclasses are caused by the environment (Ollama down, a file unreadable,
a model missing).  They carry `message` (what happened) and `hint` (what to do next).  The CLI
prints them without a traceback and exits 1; the GUI shows them in a dialog or status line.
"""

from __future__ import annotations


class FtragError(Exception):
    """Base class of every error this package raises on purpose."""


class UserError(FtragError):
    """An error the user can fix; `str()` gives the message plus the hint."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class ConfigError(UserError):
    """Settings or data directory unusable."""


class ParseError(UserError):
    """One file could not be turned into text; `reason` is the short status text."""

    def __init__(self, reason: str, hint: str = "") -> None:
        super().__init__(reason, hint)
        self.reason = reason


class IndexBusyError(UserError):
    """Another process holds the index writer lock."""


class IndexDamaged(UserError):
    """A sync met a damaged index file; the index was moved aside, the next sync rebuilds it."""


class OllamaError(UserError):
    """Base class of every failure talking to Ollama."""


class OllamaUnavailable(OllamaError):
    """No Ollama server answers at the configured host."""


class OllamaTimeout(OllamaError):
    """The server accepted the request but did not answer in time."""


class ModelNotFound(OllamaError):
    """The requested model is not present on the server."""

    def __init__(self, model: str, message: str = "", hint: str = "") -> None:
        super().__init__(
            message or f"Model '{model}' is not available in Ollama.",
            hint or f"Pull it with `ollama pull {model}`, or choose another model.",
        )
        self.model = model


class StreamInterrupted(OllamaError):
    """The answer stream stopped before the server said it was done."""


class ContextOverflow(OllamaError):
    """The prompt does not fit the model's context window."""


class OllamaServerError(OllamaError):
    """The server answered with an error; `server_message` is its text, word for word."""

    def __init__(self, server_message: str, status_code: int = -1, hint: str = "") -> None:
        super().__init__(f"Ollama reported an error: {server_message}", hint)
        self.server_message = server_message
        self.status_code = status_code


class AdaptersUnsupported(OllamaServerError):
    """The server refused to create a model with a LoRA adapter (Ollama 0.34.1 and later)."""


class ModelFileError(UserError):
    """A file or folder offered for import is not a usable model or adapter."""


class ModelImportFailed(UserError):
    """An import cannot go ahead (name taken, base missing, no disk space) or did not verify."""


class Cancelled(FtragError):
    """The user cancelled the operation; never shown as an error."""
