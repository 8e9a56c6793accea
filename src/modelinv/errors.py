"""User-facing errors: one line, naming the bad field or file; the CLI exits with code 2."""


class ModelinvError(Exception):
    """An error caused by the user's input (config, file, option), reported as one line."""


class QueryBudgetExceeded(ModelinvError):
    """The attacker asked an oracle for more queries than its budget allows."""


class AccessDenied(ModelinvError):
    """An attack was given a threat model weaker than the one it requires."""
