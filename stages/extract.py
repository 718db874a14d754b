"""Stage extract: read the dataset (run the pretrained CNN for the embedded default or an image folder)
-> data/features (features.npz, and extractor.json: what made the features, for predict)."""
from zerodiffpp.runtime import paths
from zerodiffpp.data.backbone import EXTRACTOR, record
from zerodiffpp.data.features import FeatureSet
from zerodiffpp.runtime.files import save_json
from zerodiffpp.runtime.params import load_stage_params
from zerodiffpp.runtime.session import log, run_stage
from zerodiffpp.data.xlsa17 import load_xlsa17


def load_source(d: dict) -> FeatureSet:
    """The embedded default, your image folder, or an xlsa17 benchmark folder (data.name, data.root)."""
    if d["name"] == "embedded":
        from zerodiffpp.data.embedded import load_embedded  # imports the CNN's packages only when needed
        return load_embedded(d["image_size"], d["extract_batch_size"], d["test_fraction"], d["split_seed"],
                             root=d["root"])
    if d["name"] == "folder":
        from zerodiffpp.data.folder import load_folder
        return load_folder(d["root"], d["class_table"], d["unseen"], d["embedding"], d["image_size"],
                           d["extract_batch_size"], d["test_fraction"], d["split_seed"], d["backbone"],
                           d["backbone_weights"], d["text_model"])
    return load_xlsa17(d["root"], d["name"], x_file=d["x_file"], r_file=d["r_file"], embedding=d["embedding"])


def main():
    p = load_stage_params("extract")
    d = p["data"]
    fs = load_source(d)
    fs.save(paths.FEATURES)
    if d["name"] in ("embedded", "folder"):  # xlsa17 features come precomputed: no extractor to record
        save_json(EXTRACTOR, record(d["backbone"], d["backbone_weights"], d["image_size"], fs.x.shape[1]))
    log.info("extract: %d images, %d-d features, %d seen / %d unseen classes -> %s", len(fs.labels), fs.x.shape[1],
             len(fs.seen_classes), len(fs.unseen_classes), paths.FEATURES)


if __name__ == "__main__":
    run_stage("extract", main)
