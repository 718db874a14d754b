"""Every file the pipeline reads or writes, in one place (dvc.yaml repeats them; a test checks that)."""
from pathlib import Path

PARAMS = Path("params.yaml")
DVC_YAML = Path("dvc.yaml")

# extract
FEATURES_DIR = Path("data/features")
FEATURES = FEATURES_DIR / "features.npz"
EXTRACTOR = FEATURES_DIR / "extractor.json"  # what made the features (backbone, weights, size), for predict

# pretrain
PREPARED_DIR = Path("data/prepared")
PREPARED = PREPARED_DIR / "prepared.npz"
PRETRAIN_DIR = Path("models/pretrain")
SC_ENCODER = PRETRAIN_DIR / "sc_encoder.pt"
DRG = PRETRAIN_DIR / "drg.pt"
SC_LIVE = Path("dvclive/sc")    # DVCLive curves: metrics.json, plots/metrics/*.tsv (zerodiffpp/runtime/live.py)
DRG_LIVE = Path("dvclive/drg")

# train
GENERATOR_DIR = Path("models/generator")
GENERATOR = GENERATOR_DIR / "generator.pt"
TRAIN_LIVE = Path("dvclive/train")

# val_train (the validation pass's pretrain and train: zerodiffpp/pipeline/validation.py)
VALIDATION_DIR = Path("models/validation")
VAL_PREPARED = VALIDATION_DIR / "prepared.npz"
VAL_DRG = VALIDATION_DIR / "drg.pt"
VAL_GENERATOR = VALIDATION_DIR / "generator.pt"
VAL_SPLIT = VALIDATION_DIR / "split.json"  # its validation classes and leak counts ({} when the pass is not needed)
VAL_TRAIN_LIVE = Path("dvclive/val_train")

# calibrate (the validation pass's DiffTTA, synthesis, classifiers; the values chosen)
CALIBRATION_DIR = Path("models/calibration")
CALIBRATION = CALIBRATION_DIR / "calibration.json"

# adapt (DiffTTA)
ADAPTED_DIR = Path("models/adapted")
ADAPTED_GENERATOR = ADAPTED_DIR / "generator.pt"
PSEUDO_LABELS = ADAPTED_DIR / "pseudo_labels.npz"
ADAPT_LIVE = Path("dvclive/adapt")

# synthesize (DiffGen)
SYNTHETIC_DIR = Path("data/synthetic")
SYNTHETIC = SYNTHETIC_DIR / "synthetic.npz"

# classify
CLASSIFIER_DIR = Path("models/classifier")
CLASSIFIERS = CLASSIFIER_DIR / "classifiers.pt"
PREDICTIONS = CLASSIFIER_DIR / "predictions.npz"
CLASSIFY_LIVE = Path("dvclive/classify")

# baselines (the simple-baseline panel on the run's split)
BASELINES = Path("metrics/baselines.json")
BASELINES_MD = Path("metrics/baselines.md")

# report
EVAL_METRICS = Path("metrics/eval.json")
REPORT_MD = Path("metrics/report.md")
PER_CLASS_CSV = Path("plots/per_class_accuracy.csv")
CONFUSION_CSV = Path("plots/confusion_gzsl.csv")
PER_CLASS_PNG = Path("plots/per_class_accuracy.png")
CURVES_PNG = Path("plots/training_curves.png")
