"""The one exception the data layer raises."""


class DataError(ValueError):
    """A data problem the user can fix: missing or corrupt files, a bad .npz, bad labels, a bad split.

    The message is one line that names the file or argument, the rule, the value, and what to do;
    the CLI prints it as is and exits with code 2.
    """
