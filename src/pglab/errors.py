"""pglab's errors: the CLI prints them as they are and exits with their code."""

from __future__ import annotations


class PglabError(Exception):
    """An error the CLI shows as is; ``exit_code`` 2 means bad input, 1 anything else."""

    exit_code = 1


class InputError(PglabError):
    """Bad input from the user (a file, an option, a node name): exit code 2."""

    exit_code = 2


class WaitTimeout(PglabError):
    """Something was started but its outcome did not come in time."""
