"""The errors a user can fix: a bad params value, bad input data, or a training run that diverged.

Each names what is wrong, where (the file, key or parameter) and what was expected. A stage prints
one as a single line and exits 1 (`runtime.run_stage`); any other exception is a bug and keeps its
traceback."""


class InputError(ValueError):
    """Bad input that the user can fix."""


class DataError(InputError):
    """Malformed or missing input data; the message names the file, the key and what was expected."""


class ParamsError(InputError):
    """A params file or value is wrong; the message names the file, the key and what was expected."""


class DivergedError(InputError):
    """Training diverged: NaN or inf weights, losses or generated features. The message names the stage
    and what was not finite; params fix it (a lower learning rate, another seed)."""
