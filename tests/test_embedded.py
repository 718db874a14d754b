import numpy as np

from zerodiffpp.data import embedded


def test_attribute_table_is_graded_and_complete():
    att, names = embedded.load_attributes()
    assert att.shape == (10, len(names)) and len(names) >= 16
    assert ((att >= 0) & (att <= 1)).all()
    # every attribute an unseen class has takes more than one value among the seen classes, so its
    # effect can be learned from them (validation folds remove what theirs cannot vary instead)
    assert embedded.ungraded_attributes(embedded.UNSEEN, embedded.seen_names()) == []


def test_ungraded_attributes_finds_what_no_training_class_varies():
    seen = embedded.seen_names()
    # cow is the only seen class with horns; cat and dog the only ones with paws
    assert embedded.ungraded_attributes(["cow", "dog"], [c for c in seen if c not in ("cow", "dog")]) == \
        [("cow", "horns")]
    assert embedded.ungraded_attributes(["cat", "dog"], [c for c in seen if c not in ("cat", "dog")]) == \
        [("cat", "paws"), ("dog", "paws")]
    # hooves is 1 in every training class here, so it cannot be learned either
    assert ("giraffe", "hooves") in embedded.ungraded_attributes(["giraffe"], ["cow", "horse", "zebra"])


def test_images_and_split():
    images, labels = embedded.load_images()
    assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist() == [1000] * 10
    trainval, test_seen, test_unseen = embedded.split_indices(labels, 0.2, 0)
    assert len(trainval) == 5600 and len(test_seen) == 1400 and len(test_unseen) == 3000
    assert not set(trainval) & set(test_seen)
    again = embedded.split_indices(labels, 0.2, 0)
    assert np.array_equal(again[0], trainval)


def test_pretrained_network_extracts_features():
    fs = embedded.load_embedded(image_size=64, batch_size=16, test_fraction=0.5, split_seed=0, limit=2)
    assert fs.x.shape == (20, 1280) and np.isfinite(fs.x).all() and fs.x.std() > 0
    assert fs.class_names.tolist() == embedded.CLASS_NAMES
    np.testing.assert_allclose(np.linalg.norm(fs.att, axis=1), 1.0, atol=1e-6)


def test_validation_classes_are_seen():
    assert set(embedded.VALIDATION) <= set(embedded.CLASS_NAMES) - set(embedded.UNSEEN)


def test_folding_batch_norm_keeps_the_features():
    import torch
    plain, folded = embedded.build_backbone(fold=False), embedded.build_backbone()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    images = embedded.load_images()[0][::1000][:6]
    ref = embedded.extract_features(images, 64, 6, model=plain)
    out = embedded.extract_features(images, 64, 6, model=folded)
    assert ref.std() > 0
    np.testing.assert_allclose(out, ref, atol=1e-4 * np.abs(ref).max())


def test_features_do_not_depend_on_workers_and_barely_on_batch_size():
    """Batches run on worker threads with one intra-op thread each; the result is in image order and
    torch's thread count is restored afterwards. The number of workers changes nothing; the batch
    size only picks a different convolution kernel for very small batches (here ~3e-6 of the
    largest feature; bit-identical from 16 to 250 on 2,000 images, `benchmarks.extract`)."""
    import torch
    images = embedded.load_images()[0][::500][:20]
    model = embedded.build_backbone()
    threads = torch.get_num_threads()
    ref = embedded.extract_features(images, 64, 20, model=model, workers=1)
    assert torch.get_num_threads() == threads
    for batch_size in (1, 7, 16):
        one = embedded.extract_features(images, 64, batch_size, model=model, workers=1)
        np.testing.assert_array_equal(embedded.extract_features(images, 64, batch_size, model=model, workers=2), one)
        np.testing.assert_allclose(one, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    assert torch.get_num_threads() == threads
