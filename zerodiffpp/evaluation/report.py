"""The report stage's work: metrics JSON, per-class and confusion CSVs, PNG figures, report.md."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from zerodiffpp.evaluation import metrics as M
from zerodiffpp.evaluation.calibration import best
from zerodiffpp.generators.synth import KIND_FULL, KIND_PARTIAL, Synthesizer


def seen_probe_features(gen_ckpt: dict, drg_ckpt: dict, prep, per_class: int, sampler: str, device):
    """Generated seen-class features for the seen-spuriousness probe, from the *trained* generator
    (before any test-time adaptation, for every method: the adapted one has seen test-seen features,
    so its samples would not be new). `per_class` (report.seen_per_class) is capped at the real
    training set's mean count per seen class, so the probe's training set is never larger than the
    real part of the classifier's, at any class count (SUN: 16 per class)."""
    n = min(per_class, int(np.ceil(len(prep.y_train) / len(prep.seen))))
    return Synthesizer(gen_ckpt, drg_ckpt, prep.att, device).full(prep.seen, n, sampler)


def full_unseen(syn: dict, prep) -> np.ndarray:
    """Mask of the synthetic rows generated from pure noise for an unseen class (not DiffGen's partial ones)."""
    return (syn["kind"] == KIND_FULL) & np.isin(syn["y"], prep.unseen)


def evaluate(prep, syn: dict, seen_probe: tuple, preds: dict, pseudo: dict, ctx: dict, device) -> dict:
    """Everything in metrics/eval.json. `ctx` carries the run's settings (numbers only); `seen_probe`
    is (x, y) of `seen_probe_features`."""
    gz = M.gzsl_scores(prep.y_test_seen, preds["gzsl_test_seen"], prep.y_test_unseen, preds["gzsl_test_unseen"],
                       prep.seen, prep.unseen)
    t1 = M.mean_per_class_accuracy(prep.y_test_unseen, preds["zsl_test_unseen"], prep.unseen)
    unseen_rows = full_unseen(syn, prep)
    seen_sp = M.seen_spuriousness(*seen_probe, prep.x_train, prep.y_train, prep.x_test_seen, prep.y_test_seen,
                                  prep.seen, ctx["probe_epochs"], device)
    unseen_sp = M.unseen_spuriousness(syn["x"][unseen_rows], syn["y"][unseen_rows], prep.x_test_unseen,
                                      prep.y_test_unseen, prep.unseen, ctx["probe_epochs"], ctx["oracle_folds"],
                                      device, ctx["seed"])
    out = {
        "zsl": {"T1": t1}, "gzsl": gz, "spurious": {**seen_sp, **unseen_sp},
        "seen_ratio": ctx["seen_ratio"], "seed": ctx["seed"], "transductive": int(ctx["transductive"]),
        "self_training_seen": int(ctx.get("self_training_seen", False)),
        "validation": int(ctx.get("validation", False)),
        "n_train": int(len(prep.y_train)), "n_seen_classes": int(len(prep.seen)),
        "n_unseen_classes": int(len(prep.unseen)),
        "synthetic": {"n_full": int((syn["kind"] == KIND_FULL).sum()), "n_partial": int((syn["kind"] == KIND_PARTIAL).sum())},
    }
    calib = ctx.get("calibration")
    if calib is not None:  # the calibrate stage's record: the value used and where it was chosen
        out["calibration"] = calibration_metrics(calib)
        if calib.get("components"):  # ZeroDiff++ under tta.gate validation: what the validation pass kept
            out["gate"] = gate_metrics(calib["components"])
    if ctx.get("validation_curve"):  # validation protocol only: the value for the test run, as Chao et al. choose it
        gamma = best(ctx["validation_curve"])
        h = next(r["H"] for r in ctx["validation_curve"] if r["calibration"] == gamma)
        out.setdefault("calibration", {}).update(validation_best=gamma, validation_best_H=h)
    if len(pseudo["pred"]):
        # Diagnostic only: read here, after every choice was made, and never fed back.
        y_true = np.concatenate([prep.y_test_seen, prep.y_test_unseen])
        kept = pseudo["kept"]
        out["tta"] = {"n_kept": int(len(kept)), "n_test": int(len(y_true)),
                      "pseudo_label_acc_all": float((pseudo["pred"] == y_true).mean()),
                      "pseudo_label_acc_kept": float((pseudo["pred"][kept] == y_true[kept]).mean()) if len(kept) else 0.0}
        if len(pseudo["rec_before"]):  # one round's pair: the same kept features before and after its update
            out["tta"].update(rounds=int(len(pseudo["rec_before"])), rec_before=float(pseudo["rec_before"][-1]),
                              rec_after=float(pseudo["rec_after"][-1]))
    return out


def calibration_metrics(calib: dict) -> dict:
    """eval.json's numbers of the calibrate stage's record (pipeline/validation.py): the value used,
    whether the validation pass chose it, its U / S / H on the validation classes, how many
    validation classes, and the two leak counts (images of the validation classes in the pass's
    training set, test images it read: both 0 by construction, checked when the pass ran)."""
    clf, out = calib["classifier"], {}
    out.update(value=clf["value"], auto=int(clf["source"] == "validation pass"))
    if out["auto"]:
        out.update(validation_U=clf["U"], validation_S=clf["S"], validation_H=clf["H"])
    vp = calib.get("validation_pass")
    if vp:
        out.update(n_validation_classes=len(vp["class_ids"]),
                   validation_images_in_training=vp["validation_images_in_training"],
                   test_images_read=vp["test_images_read"])
    if calib.get("pseudo_labels"):  # a transductive run: DiffTTA's pseudo-labels have their own (tta.calibration)
        pl = calib["pseudo_labels"]
        out.update(pseudo_labels=pl["value"], pseudo_labels_auto=int(pl["source"] == "validation pass"))
    return out


def gate_metrics(comps: dict) -> dict:
    """eval.json's numbers of tta.gate: DiffTTA and DiffGen kept (1) or not, and the validation ZSL T1 and
    GZSL H of every variant the validation pass compared (configured, without_difftta, inductive)."""
    out = {"tta": int(comps["tta"]), "diffgen": int(comps["diffgen"])}
    for name, r in comps["candidates"].items():
        key = name.lower().replace(" ", "_")
        out.update({f"{key}_T1": r["T1"], f"{key}_H": r["H"]})
    return out


def gate_lines(comps: dict | None, margin: float) -> list[str]:
    if not comps:
        return []
    scores = "; ".join(f"{n}: T1 {100 * r['T1']:.1f}, H {100 * r['H']:.1f}" for n, r in comps["candidates"].items())
    return [f"- tta.gate: the validation pass kept {comps['chosen']} (DiffTTA {'on' if comps['tta'] else 'off'}, "
            f"DiffGen {'on' if comps['diffgen'] else 'off'}; validation {scores}; a transductive variant must beat "
            f"the inductive one by more than tta.gate_margin {margin:g} on the mean of T1 and H)"]


def per_class_rows(prep, preds: dict) -> list[dict]:
    rows = []
    for split, y, pred, classes in (("test_seen", prep.y_test_seen, preds["gzsl_test_seen"], prep.seen),
                                    ("test_unseen", prep.y_test_unseen, preds["gzsl_test_unseen"], prep.unseen)):
        for c, acc in M.per_class_accuracy(y, pred, classes).items():
            rows.append({"class": str(prep.class_names[c]), "split": split, "acc": acc})
    return rows


def confusion_rows(prep, preds: dict) -> list[dict]:
    names = prep.class_names
    y = np.concatenate([prep.y_test_seen, prep.y_test_unseen])
    p = np.concatenate([preds["gzsl_test_seen"], preds["gzsl_test_unseen"]])
    return [{"actual": str(names[a]), "predicted": str(names[b])} for a, b in zip(y, p)]


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def per_class_png(rows: list[dict], path: Path) -> None:
    from zerodiffpp.runtime.files import atomic_path
    plt = _plt()
    rows = sorted(rows, key=lambda r: (r["split"], r["class"]))
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1.2))
    colors = ["tab:blue" if r["split"] == "test_seen" else "tab:orange" for r in rows]
    ax.barh([f'{r["class"]} ({"S" if r["split"] == "test_seen" else "U"})' for r in rows],
            [r["acc"] for r in rows], color=colors)
    ax.set_xlim(0, 1)
    ax.set_xlabel("GZSL per-class top-1 accuracy (blue: seen, orange: unseen)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


DIAGNOSTICS = ("gen_seen_acc", "gen_mean_gap")  # scores of about 0-1 (diagnostics.py), drawn apart from the losses
GP_WEIGHT = "lambda_gp"  # the adaptive GP weight: on the diagnostics panel, on its own (right) axis


def typical(vals) -> float:
    return float(np.median(np.abs(vals)))


def scale_groups(curves: dict) -> list[list[str]]:
    """The loss curves' names in panels by scale: sorted by typical size (median |value|, which the first
    epochs' transient does not set), each panel holds the curves up to 10x its smallest, so that no
    curve lies flat under one 100x larger (the VAE term, ~250, beside the decoder's ~1e-3)."""
    scale = {k: typical(v) for k, (_, v) in curves.items()}
    groups: list[list[str]] = []
    for k in sorted(scale, key=scale.get):
        if groups and scale[k] <= 10 * scale[groups[-1][0]]:
            groups[-1].append(k)
        else:
            groups.append([k])
    return groups


def _draw(ax, curves: dict, keys: list[str], **style) -> None:
    for k in keys:
        steps, vals = curves[k]
        # few points (the diagnostics run every few epochs) would not show as a line alone
        ax.plot(steps, vals, label=k, marker="o" if len(vals) < 30 else None, markersize=3, **style)


def curves_figure(stages: dict[str, dict]):
    """One row per training stage ({stage: live.read_curve(...)}): the learning diagnostics on a panel of
    their own, then the losses grouped by scale_groups. NaN (the epochs a diagnostic skips) is dropped,
    so sparse curves are drawn point to point."""
    plt = _plt()
    rows = []
    for stage, raw in stages.items():
        curves = {}
        for k, (steps, vals) in raw.items():
            ok = np.isfinite(vals)
            if ok.any():
                curves[k] = (np.asarray(steps)[ok], np.asarray(vals)[ok])
        diag = [k for k in DIAGNOSTICS if k in curves]
        gp = [GP_WEIGHT] if GP_WEIGHT in curves else []
        losses = {k: c for k, c in curves.items() if k not in diag + gp}
        panels = ([("diagnostics", diag, gp)] if diag or gp else []) + [
            (f"losses ~{typical(losses[g[-1]][1]):.2g}", g, []) for g in scale_groups(losses)]
        rows.append((stage, curves, panels or [("nothing logged", [], [])]))
    ncols = max(len(panels) for *_, panels in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(3.6 * ncols, 2.6 * len(rows)), squeeze=False)
    for (stage, curves, panels), row in zip(rows, axes):
        for ax in row[len(panels):]:
            ax.axis("off")
        for ax, (title, left, right) in zip(row, panels):
            ax.set_title(f"{stage}: {title}", fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
            _draw(ax, curves, left)
            twin = ax.twinx() if left and right else ax  # the GP weight (10 -> ~0.3) on a scale of its own
            _draw(twin, curves, right, color="tab:gray", linestyle="--")
            if twin is not ax:
                twin.set_ylabel(GP_WEIGHT, fontsize=8)
            handles = list(ax.lines) + (list(twin.lines) if twin is not ax else [])
            if handles:
                ax.legend(handles=handles, fontsize=7, ncol=2 if len(handles) > 4 else 1)
    fig.tight_layout()
    return fig


def curves_png(curve_dirs: list[Path], path: Path) -> None:
    """The training stages' DVCLive curves (curves_figure), for reading offline."""
    from zerodiffpp.runtime.files import atomic_path
    from zerodiffpp.runtime.live import read_curve
    plt = _plt()
    fig = curves_figure({Path(d).name: read_curve(d) for d in curve_dirs})
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def setting(m: dict) -> str:
    if not m["transductive"]:
        return "inductive (no test feature used before evaluation)"
    text = "transductive (unlabelled test features used by DiffTTA/DiffGen)"
    if m["self_training_seen"]:
        text += ("; with diffgen.classes all the GZSL classifier also trains its seen classes on features partially "
                 "synthesised from test-seen features (self-training on the test-seen set)")
    return text


def comparability(data: dict) -> str:
    """What the printed numbers may be compared with."""
    if data["name"] == "embedded":
        return "the embedded 10-class toy (CPU demo and smoke test), not a benchmark"
    if data["x_file"] == "res101.mat":
        return ("xlsa17 res101.mat features (ImageNet ResNet-101, not fine-tuned): NOT comparable with the ZeroDiff / "
                "ZeroDiff++ papers, which use fine-tuned features (ce_ce.mat as data.x_file, con_paco.mat as data.r_file)")
    return f"features {data['x_file']}" + (f", SC representations {data['r_file']}" if data["r_file"] else "")


def calibration_lines(c: dict | None, calib: dict | None = None) -> list[str]:
    """The calibrated-stacking value used and where it came from (`calib`, the calibrate stage's
    record, names the validation classes); under the validation protocol, the value these
    validation classes choose for the test run."""
    if not c:
        return []
    vp = (calib or {}).get("validation_pass") or {}
    names = ", ".join(vp.get("classes", [])[:8]) + (", ..." if len(vp.get("classes", [])) > 8 else "")
    where = (f"chosen by the validation pass on {c.get('n_validation_classes', '?')} validation classes ({names}; "
             f"their U {100 * c['validation_U']:.1f}, S {100 * c['validation_S']:.1f}, H {100 * c['validation_H']:.1f}; "
             f"images of them in its training: {c.get('validation_images_in_training', '?')}, test images read: "
             f"{c.get('test_images_read', '?')})" if c.get("auto") else "classifier.calibration")
    lines = [f"- calibrated stacking: {c['value']:+.2f}, {where}"]
    if "pseudo_labels" in c:
        lines.append(f"- DiffTTA's pseudo-labels: calibrated stacking {c['pseudo_labels']:+.2f} (tta.calibration"
                     f"{': auto, chosen by the validation pass' if c['pseudo_labels_auto'] else ''})")
    if "validation_best" in c:
        lines.append(f"- calibrated stacking chosen on these validation classes: {c['validation_best']:+.2f} (H "
                     f"{100 * c['validation_best_H']:.1f}); for the test run set classifier.calibration to it "
                     f"(per seen ratio: {{1.0: ..., 0.3: ...}})")
    return lines


def baseline_lines(m: dict, baselines: dict | None, baselines_md: str | None) -> list[str]:
    """This run against the strongest simple baseline of its split (the baselines stage), and the panel."""
    if not baselines:
        return []
    b = baselines["strongest"]
    return ["", "## Simple baselines on this split", "",
            f"Against the strongest simple baseline on each metric (ESZSL or ridge; metrics/baselines.json): ZSL T1 "
            f"{100 * (m['zsl']['T1'] - b['T1']):+.1f} points ({100 * m['zsl']['T1']:.1f} vs {100 * b['T1']:.1f}), "
            f"GZSL H {100 * (m['gzsl']['H'] - b['H']):+.1f} points ({100 * m['gzsl']['H']:.1f} vs {100 * b['H']:.1f})"
            + ("; this run reads unlabelled test features, the baselines do not." if m["transductive"] else "."),
            *transductive_line(m, baselines), "", (baselines_md or "").strip()]


def transductive_line(m: dict, baselines: dict) -> list[str]:
    """A transductive run is also set against the simple transductive baseline (ridge + k-means)."""
    k = baselines.get("ridge_kmeans")
    if not m["transductive"] or not k:
        return []
    return ["", f"Against the simple transductive baseline (the ridge regression's means refined by k-means on the "
                f"unlabelled test-unseen features, metrics/baselines.json ridge_kmeans): ZSL T1 "
                f"{100 * (m['zsl']['T1'] - k['T1']):+.1f} points ({100 * m['zsl']['T1']:.1f} vs {100 * k['T1']:.1f})."]


def report_markdown(m: dict, params: dict, calib: dict | None = None, baselines: dict | None = None,
                    baselines_md: str | None = None) -> str:
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    lines = [
        f"# Run report: {params['method']} on {params['data']['name']}",
        "",
        f"- seen_ratio {m['seen_ratio']}, seed {m['seed']}, {m['n_train']} training samples, "
        f"{m['n_seen_classes']} seen / {m['n_unseen_classes']} unseen classes",
        f"- protocol: {'VALIDATION (seen classes only; the unseen columns are held-out seen classes)' if m['validation'] else 'test'}",
        f"- setting: {setting(m)}",
        f"- comparability: {comparability(params['data'])}",
        f"- synthetic set: {m['synthetic']['n_full']} fully generated, {m['synthetic']['n_partial']} partially synthesised",
        *calibration_lines(m.get("calibration"), calib),
        *gate_lines((calib or {}).get("components"), params["tta"]["gate_margin"]),
        "",
        "| ZSL T1 | GZSL U | GZSL S | GZSL H | seen spuriousness | unseen spuriousness |",
        "|---|---|---|---|---|---|",
        f"| {pct(m['zsl']['T1'])} | {pct(m['gzsl']['U'])} | {pct(m['gzsl']['S'])} | {pct(m['gzsl']['H'])} | "
        f"{m['spurious']['seen']:+.3f} | {m['spurious']['unseen']:+.3f} |",
        "",
        f"Seen spuriousness = probe on generated seen features: train acc {pct(m['spurious']['seen_train_acc'])} "
        f"minus test-seen acc {pct(m['spurious']['seen_test_acc'])}. Unseen spuriousness = oracle "
        f"{pct(m['spurious']['unseen_oracle_acc'])} minus generated-only probe {pct(m['spurious']['unseen_gen_acc'])}. "
        "The seen probe reads the trained generator's samples; the unseen probe reads the fully generated features the "
        "classifier was trained on (after DiffTTA for ZeroDiff++: the adapted generator's), so for ZeroDiff++ the two "
        "metrics judge two different generators (docs/method.md).",
    ]
    if "tta" in m:
        lines += ["", f"DiffTTA/DiffGen kept {m['tta']['n_kept']} of {m['tta']['n_test']} test features; pseudo-label "
                  f"accuracy (diagnostic, hidden labels read only here) {pct(m['tta']['pseudo_label_acc_kept'])} on the "
                  f"kept ones, {pct(m['tta']['pseudo_label_acc_all'])} on all."]
        if "rec_before" in m["tta"]:
            lines.append(f"Reconstruction loss on the kept features of the last DiffTTA round (round {m['tta']['rounds']}): "
                         f"{m['tta']['rec_before']:.3f} -> {m['tta']['rec_after']:.3f}.")
    lines += ["", "Settings that matter: " + ", ".join(
        f"{k}={v}" for k, v in (("gen.epochs", params["gen"]["epochs"]), ("gen.hidden", params["gen"]["hidden"]),
                                ("synth.unseen_per_class", params["synth"]["unseen_per_class"]),
                                ("synth.seen_per_class", params["synth"]["seen_per_class"]),
                                ("synth.recentre", params["synth"]["recentre"]),
                                ("method", params["method"]),
                                ("diffgen.start_step", params["diffgen"]["start_step"]),
                                ("classifier.epochs", params["classifier"]["epochs"])))]
    lines += baseline_lines(m, baselines, baselines_md) + [""]
    return "\n".join(lines)
