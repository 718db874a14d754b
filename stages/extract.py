"""Stage extract: read the dataset (run the pretrained CNN for the embedded default) -> data/features."""
from zerodiffpp import paths
from zerodiffpp.params import load_stage_params
from zerodiffpp.runtime import log, setup_logging
from zerodiffpp.sources import load_source


def main():
    setup_logging()
    p = load_stage_params("extract")
    fs = load_source(p["data"])
    fs.save(paths.FEATURES)
    log.info("extract: %d images, %d-d features, %d seen / %d unseen classes -> %s", len(fs.labels), fs.x.shape[1],
             len(fs.seen_classes), len(fs.unseen_classes), paths.FEATURES)


if __name__ == "__main__":
    main()
