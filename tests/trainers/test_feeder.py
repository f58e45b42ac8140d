"""DeviceFeeder: shuffled uint8 batches, an epoch is a permutation drawn from the generator."""
import pytest
import torch

from trainers.data.feeder import DeviceFeeder


def _indexed(n):
    """Images whose first two pixels spell their index, so a batch tells which images it holds."""
    x = torch.zeros(n, 3, 4, 4, dtype=torch.uint8)
    idx = torch.arange(n)
    x[:, 0, 0, 0] = (idx % 256).to(torch.uint8)
    x[:, 0, 0, 1] = (idx // 256).to(torch.uint8)
    return x


def _ids(batch):
    return batch[:, 0, 0, 0].long() + 256 * batch[:, 0, 0, 1].long()


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_an_epoch_without_drop_last_serves_every_image_once():
    feeder = DeviceFeeder(_indexed(300), "cpu")
    batches = list(feeder.batches(64, _gen(0), drop_last=False))
    assert [len(b) for b in batches] == [64, 64, 64, 64, 44] and feeder.steps_per_epoch(64, False) == 5
    seen = torch.cat([_ids(b) for b in batches])
    assert torch.equal(seen.sort().values, torch.arange(300))
    assert not torch.equal(seen, torch.arange(300))  # shuffled


def test_drop_last_yields_full_batches_only():
    feeder = DeviceFeeder(_indexed(300), "cpu")
    batches = list(feeder.batches(64, _gen(0)))
    assert len(batches) == feeder.steps_per_epoch(64) == 4 and all(len(b) == 64 for b in batches)
    assert len(feeder) == 300 and batches[0].dtype == torch.uint8


def test_order_is_deterministic_from_the_generator_and_differs_between_epochs():
    feeder = DeviceFeeder(_indexed(200), "cpu")
    first = torch.cat(list(feeder.batches(50, _gen(5))))
    again = torch.cat(list(feeder.batches(50, _gen(5))))
    assert torch.equal(first, again)
    g = _gen(5)
    epoch1, epoch2 = (torch.cat(list(feeder.batches(50, g))) for _ in range(2))
    assert not torch.equal(epoch1, epoch2)


def test_host_staged_feeder_serves_the_same_batches_as_a_resident_one():
    images = _indexed(130)
    resident = DeviceFeeder(images, "cpu")
    staged = DeviceFeeder(images.clone(), "cpu", max_device_bytes=0)
    assert resident.resident and not staged.resident
    for a, b in zip(resident.batches(32, _gen(1)), staged.batches(32, _gen(1)), strict=True):
        assert torch.equal(a, b)


def test_feeder_refuses_images_that_are_not_uint8_nchw():
    with pytest.raises(ValueError, match="uint8 NCHW"):
        DeviceFeeder(torch.zeros(2, 3, 4, 4), "cpu")
    with pytest.raises(ValueError, match="uint8 NCHW"):
        DeviceFeeder(torch.zeros(3, 4, 4, dtype=torch.uint8), "cpu")


def test_a_data_set_is_held_once_per_process_and_device():
    images = _indexed(64).permute(0, 1, 3, 2)  # not contiguous: the feeder must make its own copy
    a, b = DeviceFeeder(images, "cpu"), DeviceFeeder(images, "cpu")
    assert a.images.is_contiguous() and a.images.data_ptr() == b.images.data_ptr() != images.data_ptr()
    assert torch.equal(a.images, images)


def test_the_held_copy_goes_with_its_source():
    import gc
    import weakref

    images = _indexed(64).permute(0, 1, 3, 2)
    copy = weakref.ref(DeviceFeeder(images, "cpu").images)
    del images
    gc.collect()
    assert copy() is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pinned_host_staging_serves_the_same_batches_on_cuda():
    images = _indexed(130)
    resident = DeviceFeeder(images, "cuda")
    staged = DeviceFeeder(images, "cuda", max_device_bytes=0)
    assert resident.resident and not staged.resident and staged.images.is_pinned()
    again = DeviceFeeder(images, "cuda", max_device_bytes=0)
    assert again.images.data_ptr() == staged.images.data_ptr()  # one pinned copy per process
    g1, g2 = (torch.Generator(device="cuda").manual_seed(1) for _ in range(2))
    for a, b in zip(resident.batches(32, g1), staged.batches(32, g2), strict=True):
        assert a.device.type == b.device.type == "cuda" and torch.equal(a, b)
