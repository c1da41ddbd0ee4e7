"""CPU test of harness.py's timing arithmetic (run by TestTimingArithmetic).

A fake device and fake CUDA events stand in for a GPU: each launch of the problem takes
KERNEL_MS of device time, and the host spends HOST_MS launching and synchronising, which
events must not count. No torch is needed.
"""
import importlib.util
import sys
import unittest

spec = importlib.util.spec_from_file_location("harness", sys.argv.pop(1))
harness = importlib.util.module_from_spec(spec)
spec.loader.exec_module(harness)

# Powers of two, so that sums are exact: a µs-scale GEMM (≈ 2 µs), and the launch and
# synchronisation latency per call as the host sees it (≈ 47 µs).
KERNEL_MS = 2.0 ** -9
HOST_MS = 24 * KERNEL_MS


class FakeDevice:
    def __init__(self):
        self.device_ms = 0.0  # the stream's clock
        self.host_ms = 0.0    # the host's clock
        self.launches = 0

    def launch(self):
        self.launches += 1
        self.device_ms += KERNEL_MS
        self.host_ms += HOST_MS


class FakeEvent:
    def __init__(self, dev, enable_timing=False):
        assert enable_timing, "events must be created with enable_timing=True"
        self.dev, self.at = dev, None

    def record(self):
        self.at = self.dev.device_ms

    def synchronize(self):
        assert self.at is not None

    def elapsed_time(self, end):
        return end.at - self.at


class FakeTorch:
    """The part of torch CudaClock uses."""

    def __init__(self, dev):
        outer = self

        class _Cuda:
            @staticmethod
            def Event(enable_timing=False):
                return FakeEvent(dev, enable_timing)

            class device:
                def __init__(self, d):
                    outer.selected = d

                def __enter__(self):
                    return self

                def __exit__(self, *a):
                    return False

        self.cuda = _Cuda


class FakeHostClock(harness.HostClock):
    def __init__(self, dev):
        super().__init__()
        self.dev = dev

    def time(self, fn, n):
        t0 = self.dev.host_ms
        for _ in range(n):
            fn()
        return self.dev.host_ms - t0


TIMING = {"warmup": 3, "min_repeats": 5, "max_repeats": 50, "min_time_ms": 20.0}


class TimingTest(unittest.TestCase):
    def test_batch_size(self):
        self.assertEqual(harness.batch_size(0.002), 500)
        self.assertEqual(harness.batch_size(0.3), 4)      # 4 × 0.3 ms ≥ 1 ms
        self.assertEqual(harness.batch_size(1.0), 1)
        self.assertEqual(harness.batch_size(25.0), 1)
        self.assertEqual(harness.batch_size(0.0), harness.MAX_BATCH)   # below the clock's resolution
        self.assertEqual(harness.batch_size(1e-9), harness.MAX_BATCH)
        self.assertEqual(harness.batch_size(float("nan")), harness.MAX_BATCH)

    def test_cuda_events_time_the_device(self):
        dev = FakeDevice()
        clock = harness.CudaClock(FakeTorch(dev), "cuda:0")
        times, batch = harness.timed_repeats(clock, dev.launch, TIMING)
        self.assertEqual(batch, 512)
        for t in times:
            self.assertAlmostEqual(t, KERNEL_MS, places=9)
        # Batches of ≥ 1 ms: 20 ms of minimum time takes 20 batches (more than min_repeats).
        self.assertEqual(len(times), 20)
        self.assertEqual(dev.launches, TIMING["warmup"] + 1 + 20 * 512)

    def test_host_clock_would_time_the_host(self):
        # The same problem timed one launch at a time with the wall clock, as before,
        # measures the host's latency: 24× the kernel's time.
        dev = FakeDevice()
        one = FakeHostClock(dev).time(dev.launch, 1)
        self.assertEqual(one / KERNEL_MS, 24.0)

    def test_repeats_bounds(self):
        dev = FakeDevice()
        clock = harness.CudaClock(FakeTorch(dev), "cuda:0")
        slow = dict(TIMING, min_time_ms=1e9)
        times, _ = harness.timed_repeats(clock, dev.launch, slow)
        self.assertEqual(len(times), slow["max_repeats"])
        fast = dict(TIMING, min_time_ms=0.0)
        times, _ = harness.timed_repeats(clock, dev.launch, fast)
        self.assertEqual(len(times), fast["min_repeats"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
