"""`method`, the one switch: which generator trains and which of ZeroDiff++'s test-time parts run.

ZeroDiff++ = the ZeroDiff generator + DiffTTA + DiffGen. Its ablations are methods of their own
(`zerodiff+difftta`, `zerodiff+diffgen`), so a run's method says everything it computes. Under
tta.gate 'validation' the validation pass may keep a lighter method than the configured one (the
calibrate stage's record['components']['method']; `with_components`). f-CLSWGAN and ZeroDiff never
read test features."""

METHODS = {  # method: (generator, DiffTTA, DiffGen)
    "fclswgan": ("fclswgan", False, False),
    "zerodiff": ("zerodiff", False, False),
    "zerodiffpp": ("zerodiff", True, True),
    "zerodiff+difftta": ("zerodiff", True, False),
    "zerodiff+diffgen": ("zerodiff", False, True),
}


def generator(method: str) -> str:
    """'fclswgan' or 'zerodiff': the generator the train stage trains."""
    return METHODS[method][0]


def uses_tta(method: str) -> bool:
    return METHODS[method][1]


def uses_diffgen(method: str) -> bool:
    return METHODS[method][2]


def is_transductive(method: str) -> bool:
    return uses_tta(method) or uses_diffgen(method)


def named(generator_kind: str, tta: bool, diffgen: bool) -> str:
    """The method with this generator and these test-time parts."""
    return next(m for m, spec in METHODS.items() if spec == (generator_kind, tta, diffgen))


def with_components(p: dict, comps: dict | None) -> dict:
    """`p` with the method the validation pass's gate kept (`comps`, the calibrate stage's
    record['components']; None: the configured one)."""
    return dict(p, method=comps["method"]) if comps else p


def self_trains_on_test_seen(method: str, diffgen_classes: str) -> bool:
    """DiffGen with diffgen.classes 'all' partially synthesises features from test-seen features too,
    so the GZSL classifier trains its seen classes on them: self-training on the test-seen set,
    beyond the usual transductive use of unlabelled test features for the unseen classes."""
    return uses_diffgen(method) and diffgen_classes == "all"
