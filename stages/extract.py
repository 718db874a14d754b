"""Stage extract: read the dataset (run the pretrained CNN for the embedded default) -> data/features."""
from zerodiffpp import paths
from zerodiffpp.data import FeatureSet
from zerodiffpp.params import load_stage_params
from zerodiffpp.runtime import log, run_stage
from zerodiffpp.xlsa17 import load_xlsa17


def load_source(d: dict) -> FeatureSet:
    """The embedded default, or an xlsa17 benchmark folder (data.name, data.root)."""
    if d["name"] == "embedded":
        from zerodiffpp.embedded import load_embedded  # imports the CNN's packages only when needed
        return load_embedded(d["image_size"], d["extract_batch_size"], d["test_fraction"], d["split_seed"],
                             root=d["root"])
    return load_xlsa17(d["root"], d["name"], x_file=d["x_file"], r_file=d["r_file"], embedding=d["embedding"])


def main():
    p = load_stage_params("extract")
    fs = load_source(p["data"])
    fs.save(paths.FEATURES)
    log.info("extract: %d images, %d-d features, %d seen / %d unseen classes -> %s", len(fs.labels), fs.x.shape[1],
             len(fs.seen_classes), len(fs.unseen_classes), paths.FEATURES)


if __name__ == "__main__":
    run_stage("extract", main)
