"""DeviceManager with fake models: eviction order, locking, OOM retry."""

import threading
import time

import pytest
import torch

from pipelines.models.device import DeviceManager, choose_device
from pipelines.models.memory import model_nbytes
from core.errors import OutOfMemoryError, StudioError

MB = 2**20


class FakeModel:
    """Counts bytes and records where it is; can be told to fail like a full GPU."""

    def __init__(self, nbytes, fail_times=0, oom=True):
        self.nbytes = nbytes
        self.device = "cpu"
        self.fail_times = fail_times
        self.oom = oom
        self.calls = 0

    def to(self, device, dtype=None):
        self.device = device
        return self

    def __call__(self):
        self.calls += 1
        if self.calls <= self.fail_times:
            if self.oom:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            raise RuntimeError("some other failure")
        return f"ran on {self.device}"


def make_manager(budget_mb=None, eviction="offload", **sizes_mb):
    manager = DeviceManager(device="fakegpu", budget_bytes=None if budget_mb is None else budget_mb * MB,
                            eviction=eviction)
    loads = {}

    for name, size in sizes_mb.items():
        def loader(name=name, size=size):
            loads[name] = loads.get(name, 0) + 1
            return FakeModel(size * MB)

        manager.register(name, loader)
    return manager, loads


def where(manager):
    return {row["name"]: row["where"] for row in manager.status()}


def test_nothing_loads_until_used():
    manager, loads = make_manager(a=10)
    assert loads == {}
    assert where(manager) == {"a": "not loaded"}
    assert manager.run("a", lambda m: m()) == "ran on fakegpu"
    assert loads == {"a": 1}
    manager.run("a", lambda m: m())
    assert loads == {"a": 1}, "a resident model must not be loaded again"


def test_least_recently_used_is_evicted_first():
    manager, _ = make_manager(budget_mb=25, a=10, b=10, c=10)
    manager.run("a", lambda m: m())
    manager.run("b", lambda m: m())
    manager.run("a", lambda m: m())  # a is now more recent than b
    manager.run("c", lambda m: m())  # needs room for 10 MB: b must go, not a
    assert where(manager) == {"a": "fakegpu", "b": "cpu", "c": "fakegpu"}
    assert manager.resident_bytes() <= 25 * MB
    assert ("offload", "b") in manager.events and ("offload", "a") not in manager.events


def test_offloaded_model_comes_back_without_reloading():
    manager, loads = make_manager(budget_mb=15, a=10, b=10)
    manager.run("a", lambda m: m())
    manager.run("b", lambda m: m())
    assert where(manager)["a"] == "cpu"
    assert manager.run("a", lambda m: m()) == "ran on fakegpu"
    assert loads == {"a": 1, "b": 1}


def test_drop_eviction_frees_the_model_and_reloads_later():
    manager, loads = make_manager(budget_mb=15, eviction="drop", a=10, b=10)
    manager.run("a", lambda m: m())
    manager.run("b", lambda m: m())
    assert where(manager)["a"] == "not loaded"
    manager.run("a", lambda m: m())
    assert loads["a"] == 2


def test_gpu_work_is_serialised():
    manager, _ = make_manager(a=1, b=1)
    inside = []
    overlap = []

    def gpu_work(model):
        inside.append(1)
        overlap.append(len(inside))
        time.sleep(0.05)
        inside.pop()
        return model()

    threads = [threading.Thread(target=manager.run, args=(name, gpu_work)) for name in "abab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(overlap) == 4
    assert max(overlap) == 1, "two GPU jobs ran at once"


def test_concurrent_first_use_loads_once():
    manager = DeviceManager(device="fakegpu")
    loads = []

    def slow_loader():
        loads.append(1)
        time.sleep(0.05)
        return FakeModel(MB)

    manager.register("a", slow_loader)
    threads = [threading.Thread(target=manager.get_cpu, args=("a",)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1


def test_out_of_memory_evicts_others_and_retries_once():
    manager, _ = make_manager(a=10, b=10)
    manager.run("a", lambda m: m())
    flaky = FakeModel(10 * MB, fail_times=1)
    manager.register("flaky", lambda: flaky)
    assert manager.run("flaky", lambda m: m()) == "ran on fakegpu"
    assert flaky.calls == 2
    assert where(manager)["a"] == "cpu", "other models must be moved off before the retry"
    assert ("oom_retry", "flaky") in manager.events


def test_out_of_memory_twice_gives_a_clear_error():
    manager = DeviceManager(device="fakegpu")
    stubborn = FakeModel(MB, fail_times=5)
    manager.register("stubborn", lambda: stubborn)
    with pytest.raises(OutOfMemoryError, match="ran out of memory running 'stubborn'"):
        manager.run("stubborn", lambda m: m())
    assert stubborn.calls == 2


def test_other_errors_are_not_retried():
    manager = DeviceManager(device="fakegpu")
    broken = FakeModel(MB, fail_times=5, oom=False)
    manager.register("broken", lambda: broken)
    with pytest.raises(RuntimeError, match="some other failure"):
        manager.run("broken", lambda m: m())
    assert broken.calls == 1


class Part(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(n))


def test_model_nbytes_counts_a_pipelines_components_once_each():
    """A diffusers-like pipeline: parameters of every component, a component listed twice counted once."""
    import types

    unet = Part(1000)
    pipe = types.SimpleNamespace(components={"unet": unet, "vae": Part(100), "again": unet, "scheduler": object()})
    assert model_nbytes(pipe) == (1000 + 100) * 4


def test_unknown_model_and_device_errors_are_clear():
    manager = DeviceManager(device="fakegpu")
    with pytest.raises(StudioError, match="No model is registered under 'nope'"):
        manager.run("nope", lambda m: m)
    with pytest.raises(StudioError, match="Unknown device"):
        choose_device("tpu")
    assert choose_device("cpu").dtype == torch.float32


def test_zero_gpu_wraps_gpu_work_in_spaces_gpu_and_is_identity_elsewhere(monkeypatch):
    """The real `spaces` package exists only on Spaces; a stand-in records how it is called."""
    import sys
    import types

    import pipelines.models.device as device

    calls = []

    def GPU(duration=60):  # noqa: N802  (spaces' own name)
        def decorate(fn):
            calls.append(duration)

            def on_gpu(*args, **kwargs):
                return ("on zero gpu", fn(*args, **kwargs))

            return on_gpu

        return decorate

    def handler(x):
        return x * 2

    manager = DeviceManager(device="fakegpu")
    assert manager.gpu_task(handler, duration=30) is handler  # not on ZeroGPU: unchanged
    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=GPU))
    monkeypatch.setattr(device, "ZERO_GPU", True)
    wrapped = manager.gpu_task(handler, duration=30)
    assert wrapped(4) == ("on zero gpu", 8)
    assert calls == [30]


def test_preload_places_every_model_on_the_device():
    manager, loads = make_manager(a=1, b=1)
    manager.preload()
    assert loads == {"a": 1, "b": 1}
    assert set(where(manager).values()) == {"fakegpu"}


def test_size_is_recorded_as_held_after_the_move_to_the_device():
    """Loaded in fp32, held in fp16: the manager counts the fp16 bytes, so twice as many models fit."""
    manager = DeviceManager(device="cpu", dtype=torch.float16, budget_bytes=6500)
    for name in "abc":
        manager.register(name, lambda: Part(1000))  # 4000 B in fp32, 2000 B in fp16
    for name in "abc":
        manager.run(name, lambda m: None)
    assert {row["mb"] for row in manager.status()} == {round(2000 / MB, 1)}
    assert manager.resident_bytes() == 6000
    assert [kind for kind, _ in manager.events].count("drop") == 0, "three 2000 B models fit in 6500 B"


def test_room_is_made_for_the_size_the_model_will_have_on_the_device():
    """A real torch module loaded in fp32 needs room only for its fp16 size: nothing resident is evicted."""
    manager = DeviceManager(device="cpu", dtype=torch.float16, budget_bytes=3000 * 2)
    manager.register("small", lambda: Part(1000))  # 4000 B fp32, 2000 B fp16
    manager.register("big", lambda: Part(1000))
    manager.run("small", lambda m: None)
    manager.run("big", lambda m: None)
    assert manager.resident_bytes() == 4000
    assert ("drop", "small") not in manager.events
    assert model_nbytes(Part(10), torch.float16) == 20 and model_nbytes(Part(10)) == 40


def test_cpu_budget_drops_the_least_recently_used_before_loading_it_again():
    """On the CPU evicting means dropping; a dropped model coming back makes room before it loads,
    so the host never holds the evicted model and the new one at once."""
    manager = DeviceManager(device="cpu", budget_bytes=25 * MB)
    held = []
    peak = []

    def loader(name):
        def load():
            peak.append(sum(held_size for _, held_size in held) + 10 * MB)
            model = FakeModel(10 * MB)
            held.append((name, 10 * MB))
            return model
        return load

    for name in "abc":
        manager.register(name, loader(name))
    real_evict = manager._evict

    def evict(entry):
        held[:] = [item for item in held if item[0] != entry.name]
        real_evict(entry)

    manager._evict = evict
    for name in "abcab":
        manager.run(name, lambda m: m())
    assert manager.eviction == "drop"
    assert ("drop", "a") in manager.events
    assert manager.resident_bytes() <= 25 * MB
    assert max(peak[3:]) <= 20 * MB, "a model dropped for room must go before the next one loads"
