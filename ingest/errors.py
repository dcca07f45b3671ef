"""Errors about a job's input or flags: one line, naming the file or flag and the problem."""


class InputError(ValueError):
    """Bad input or a bad flag. The CLI prints it as one line and exits with status 2."""
