"""What each `method` switches on. ZeroDiff++ = ZeroDiff + DiffTTA + DiffGen; its two test-time
components can each be switched off (tta.enabled, diffgen.enabled), and under tta.gate 'validation'
the validation pass keeps them only where they help on its validation classes (`with_components`).
With both off it is ZeroDiff, inductive. f-CLSWGAN and ZeroDiff never use test features."""


def uses_tta(method: str, tta_enabled: bool) -> bool:
    return method == "zerodiffpp" and bool(tta_enabled)


def uses_diffgen(method: str, diffgen_enabled: bool) -> bool:
    return method == "zerodiffpp" and bool(diffgen_enabled)


def is_transductive(method: str, tta_enabled: bool, diffgen_enabled: bool) -> bool:
    return uses_tta(method, tta_enabled) or uses_diffgen(method, diffgen_enabled)


def with_components(p: dict, comps: dict | None) -> dict:
    """`p` with tta.enabled / diffgen.enabled as the validation pass's gate chose them (`comps`, the
    calibrate stage's record['components']; None: as params.yaml says). Sections `p` lacks stay out."""
    if not comps:
        return p
    out = dict(p)
    if "tta" in p:
        out["tta"] = dict(p["tta"], enabled=comps["tta"])
    if "diffgen" in p:
        out["diffgen"] = dict(p["diffgen"], enabled=comps["diffgen"])
    return out


def self_trains_on_test_seen(method: str, diffgen_enabled: bool, diffgen_classes: str) -> bool:
    """DiffGen with diffgen.classes 'all' partially synthesises features from test-seen features too,
    so the GZSL classifier trains its seen classes on them: self-training on the test-seen set,
    beyond the usual transductive use of unlabelled test features for the unseen classes."""
    return uses_diffgen(method, diffgen_enabled) and diffgen_classes == "all"
