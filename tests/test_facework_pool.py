"""The face-work pool: same answers as in-process work, and bounded in time, memory and queue.

The slow and the memory-hungry jobs are real: dlib's MMOD detector run at full resolution (and
upsampled), with the detection budget lifted, is what made one photo cost minutes and gigabytes
before the budget existed.
"""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from fieldid.demo import astronaut_path, closer_crop
from fieldid.detect.acquire import DetectBudget
from fieldid.errors import FieldidError, ModelError, ProbeRejected
from fieldid.facework import InlineFaceWork
from fieldid.facework.pool import FacePool, PoolLimits, ServiceBusy
from fieldid.pipeline import FacePipeline, FaceResult, PipelineSpec

#: MMOD at full resolution with no budget: ~1.6 s and ~300 MB on a 640×480 frame here.
SLOW = PipelineSpec(
    detector="dlib-mmod",
    fallback_detector=None,
    detect_max_side=0,
    upsample_schedule=(0,),
    budget=DetectBudget(max_pixels=10**9, time_s=600),
)
#: The same, upsampled ×2: gigabytes on a 1280×960 frame.
HUNGRY = PipelineSpec(
    detector="dlib-mmod",
    fallback_detector=None,
    detect_max_side=0,
    upsample_schedule=(1,),
    budget=DetectBudget(max_pixels=10**9, time_s=600),
)


def jpeg(w: int, h: int, value: int = 127) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (value, value, value)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def portrait() -> bytes:
    return closer_crop(astronaut_path())


def test_the_pool_gives_what_the_pipeline_gives_in_process(portrait: bytes) -> None:
    inline = InlineFaceWork(FacePipeline.from_spec(PipelineSpec())).process(portrait)
    with FacePool(PipelineSpec(), pool=PoolLimits(workers=1)) as pool:
        pooled = pool.process(portrait)
        frame = pool.check(portrait, 2.0)
        stats = pool.stats()
    assert isinstance(pooled, FaceResult)
    assert np.allclose(pooled.template.vector, inline.template.vector, atol=1e-6)
    assert pooled.template.model == inline.template.model
    assert pooled.quality.unified == inline.quality.unified
    assert pooled.kept_image == inline.kept_image
    assert pooled.probe.sha256 == inline.probe.sha256
    assert frame.acquisition is not None and frame.quality is not None
    assert frame.quality.value("inter_eye_distance") == pytest.approx(
        2 * inline.quality.value("inter_eye_distance"), rel=0.05
    )
    assert stats.workers == 1 and stats.ready_workers == 1 and stats.processes[0]["jobs"] == 2


def test_a_job_past_its_time_limit_is_abandoned_and_its_worker_replaced() -> None:
    with FacePool(SLOW, pool=PoolLimits(workers=1, timeout_s=0.5)) as pool:
        pool.wait_ready()
        first = pool.stats().processes[0]["pid"]
        started = time.perf_counter()
        with pytest.raises(ProbeRejected) as e:
            pool.process(jpeg(640, 480))
        assert e.value.code == "probe.timeout" and e.value.details["timeout_s"] == 0.5
        assert time.perf_counter() - started < 30  # abandoned, not waited for
        # A new worker took its place and answers (a small frame is quick even for MMOD).
        with pytest.raises(FieldidError) as again:
            pool.process(jpeg(64, 64))
        assert again.value.code == "acquire.no_face"
        stats = pool.stats()
    assert stats.timeouts == 1
    assert stats.processes[0]["pid"] != first


def test_a_job_past_its_memory_cap_fails_in_its_worker_only(portrait: bytes) -> None:
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with FacePool(HUNGRY, pool=PoolLimits(workers=1, memory_mb=300, timeout_s=120)) as pool:
        with pytest.raises(ProbeRejected) as e:
            pool.process(jpeg(1280, 960))
        assert e.value.code == "probe.too_costly" and e.value.details["memory_mb"] == 300
        with pytest.raises(FieldidError) as again:  # the replacement works
            pool.process(jpeg(64, 64))
        assert again.value.code == "acquire.no_face"
        assert pool.stats().memory_failures == 1
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200  # the gigabytes were asked for in the worker, not here


def test_a_full_queue_refuses_at_once_and_says_so() -> None:
    with FacePool(SLOW, pool=PoolLimits(workers=1, queue=0, timeout_s=60)) as pool:
        pool.wait_ready()
        outcome: list[str] = []

        def slow() -> None:
            try:
                pool.process(jpeg(640, 480))
            except FieldidError as err:
                outcome.append(err.code)

        t = threading.Thread(target=slow)
        t.start()
        while pool.stats().busy == 0:
            time.sleep(0.01)
        assert pool.stats().saturated
        with pytest.raises(ServiceBusy) as e:
            pool.process(jpeg(64, 64))
        assert e.value.code == "service.busy" and e.value.details["retry_after"] > 0
        t.join()
        assert outcome == ["acquire.no_face"]
        assert not pool.stats().saturated


def test_a_worker_with_another_model_refuses_to_work(portrait: bytes) -> None:
    pool = FacePool(PipelineSpec(), pool=PoolLimits(workers=1), expect_model="other@1")
    with pool, pytest.raises(FieldidError) as e:
        pool.process(portrait)
    assert e.value.code == "service.worker_model"


def test_a_worker_that_cannot_load_its_model_says_why(portrait: bytes, tmp_path) -> None:
    spec = PipelineSpec(embedder="onnx", onnx_path=str(tmp_path / "missing.onnx"))
    pool = FacePool(spec, pool=PoolLimits(workers=1))
    with pool, pytest.raises(ModelError) as e:
        pool.process(portrait)
    assert e.value.code == "model.not_found"
