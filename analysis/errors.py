"""The one error type the analysis commands raise for problems a user can act on."""


class AnalysisError(Exception):
    """A bad flag, a missing table or result, or data an analysis cannot use.

    The message is one line that names the lake, layer or flag and says what to do;
    the CLI prints it and exits with status 2.
    """
