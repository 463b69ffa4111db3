"""The errors a user can cause, each with the exit code of the interface contract.

Every error says what is wrong, where (a YAML path and ``file:line``, or a file and row), what was
expected and how to fix it. ``dltrain/cli/`` renders them; library code only raises them.
"""


class DltrainError(Exception):
    """Base of every error a config, a data file or a command line can cause."""

    exit_code = 1
    label = "Error"

    def __init__(self, message, where=None, expected=None, fix=None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.expected = expected
        self.fix = fix

    def __str__(self):
        lines = [self.message]
        if self.where:
            lines.append(f"  at {self.where}")
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)

    def render(self):
        """The full text shown to a user: the kind, then the message and its details."""
        return f"{self.label}: {self}"


class ConfigError(DltrainError):
    """A config, an override or a command-line argument is wrong (exit 2)."""

    exit_code = 2
    label = "ConfigError"


class ShapeError(ConfigError):
    """A layer cannot accept the shape its input has (exit 2)."""

    label = "ShapeError"


class ConfigErrors(ConfigError):
    """Several config errors found in one pass, reported together (exit 2)."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__(f"{len(self.errors)} errors in the config")

    def __str__(self):
        return "\n\n".join(error.render() for error in self.errors)

    def render(self):
        return str(self)


class DataError(DltrainError):
    """A data file is missing, malformed or does not fit the model (exit 3)."""

    exit_code = 3
    label = "DataError"


class DivergedError(DltrainError):
    """Training produced a non-finite loss, gradient or parameter (exit 4)."""

    exit_code = 4
    label = "DivergedError"


class CheckpointError(DltrainError):
    """A checkpoint or run-directory file could not be read or written (exit 5)."""

    exit_code = 5
    label = "CheckpointError"


class Interrupted(DltrainError):
    """Training stopped on SIGINT or SIGTERM after writing a checkpoint (exit 130)."""

    exit_code = 130
    label = "Interrupted"


def join_errors(errors):
    """Raise nothing for no errors, the error itself for one, ConfigErrors for several."""
    errors = [e for e in errors if e is not None]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ConfigErrors(errors)
