"""The training and compare routes: real background runs on the tiny diffusers model, polled over HTTP.

The router is built directly (as the standalone app will), with a real :class:`TrainJobs` that loads the tiny
model with :class:`DiffusersBackend` and a plain lock standing in for the host's GPU queue lock, which the tests
hold to keep a job queued.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import photos
from ti_studio.backends.diffusers_backend import DiffusersBackend
from ti_studio.training.jobs import TrainJobs
from ti_studio.webui import routes

API = "/ti-studio/v1"
#: Only a safety net against a hung thread: the runs here take a second or two.
POLL_LIMIT_S = 120


@pytest.fixture
def dataset(tmp_path):
    return photos.two_image_dataset(tmp_path / "dataset")


class Loader:
    """The jobs' model loader and releaser: the real diffusers backend, with every call recorded."""

    def __init__(self, gpu_lock: threading.Lock):
        self.gpu_lock = gpu_lock
        self.loads: list[tuple[str, str, bool]] = []  # (model, precision, GPU lock held)
        self.released: list[DiffusersBackend] = []
        self.fail_with: Exception | None = None

    def load(self, model: str, precision: str) -> DiffusersBackend:
        self.loads.append((model, precision, self.gpu_lock.locked()))
        if self.fail_with is not None:
            raise self.fail_with
        return DiffusersBackend.load(model, device="cpu", precision=precision)

    def release(self, backend: DiffusersBackend) -> None:
        self.released.append(backend)


@pytest.fixture
def gpu_lock():
    return threading.Lock()


@pytest.fixture
def loader(gpu_lock):
    return Loader(gpu_lock)


def app_with_training(gpu_lock, loader, credentials=None) -> FastAPI:
    """An app serving the routes with training jobs on ``loader``'s model, as WebUI and the standalone app do."""
    app = FastAPI()
    jobs = TrainJobs(loader.load, loader.release, gpu_lock)
    app.include_router(routes.create_router(credentials=credentials, gpu_lock=gpu_lock, jobs=jobs))
    return app


@pytest.fixture
def client(gpu_lock, loader):
    yield TestClient(app_with_training(gpu_lock, loader))
    for thread in _training_threads():  # a failed test must not leave a run going into the next one
        thread.join(POLL_LIMIT_S)


def _training_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("ti-studio-train-")]


def train_body(sd1_model_dir, dataset, run_dir, **changes) -> dict:
    body = {"dataset": str(dataset), "run_dir": str(run_dir), "model": str(sd1_model_dir), "precision": "fp32",
            "name": "tiface", "steps": 4, "save_every": 2, "preview_every": 0, "size": 64, "learning_rate": "0.01"}
    body.update(changes)
    return body


def start(client, body) -> str:
    answer = client.post(f"{API}/train", json=body)
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def poll(client, job_id: str, until) -> dict:
    deadline = time.monotonic() + POLL_LIMIT_S
    while True:
        answer = client.get(f"{API}/train/{job_id}")
        assert answer.status_code == 200, answer.text
        status = answer.json()
        if until(status):
            return status
        assert time.monotonic() < deadline, f"job never reached the awaited state: {status}"
        time.sleep(0.02)


def wait_for_end(client, job_id: str) -> dict:
    return poll(client, job_id, lambda status: status["state"] not in ("queued", "running"))


# --- a run, then its comparison ---------------------------------------------------------------------------------


def test_train_in_the_background_then_compare(client, loader, sd1_model_dir, dataset, tmp_path):
    run_dir = tmp_path / "runs" / "tiface"
    job_id = start(client, train_body(sd1_model_dir, dataset, run_dir, output_format="both"))

    status = wait_for_end(client, job_id)
    assert status["state"] == "finished", status["message"]
    assert status["id"] == job_id and status["step"] == 4 and status["total_steps"] == 4
    assert status["learning_rate"] == 0.01 and status["loss"] > 0 and status["norm"] > 0
    assert status["fixed_loss"] > 0
    assert status["message"] == f"finished at step 4; snapshots in {run_dir / 'embeddings'}"
    assert status["run_dir"] == str(run_dir) and status["started"] <= status["ended"]
    assert [Path(path).name for path in status["snapshots"]] == [
        "tiface-2.safetensors", "tiface-2.pt", "tiface-4.safetensors", "tiface-4.pt"]
    assert all(Path(path).is_file() for path in status["snapshots"])
    assert status["last_snapshot"] == str(run_dir / "embeddings" / "tiface-4.safetensors")
    assert loader.loads == [(str(sd1_model_dir), "fp32", True)]  # loaded under the GPU lock, in the asked precision
    assert len(loader.released) == 1

    exported = tmp_path / "webui-embeddings"
    answer = client.post(f"{API}/compare", json={"run_dir": str(run_dir), "y_values": ["short hair", " ", "long hair"],
                                                 "export_to": str(exported)})
    assert answer.status_code == 200, answer.text
    comparison = answer.json()
    lines = comparison["infotext"].splitlines()
    assert lines[0] == "a photo of tiface-2, short hair"
    assert "Script: X/Y/Z plot" in lines[-1] and 'X Values: "tiface-2,tiface-4"' in lines[-1]
    assert 'Y Values: "short hair,long hair"' in lines[-1] and "Size: 64x64" in lines[-1]
    assert [(row["name"], row["step"]) for row in comparison["snapshots"]] == [("tiface-2", 2), ("tiface-4", 4)]
    assert all(row["fixed_loss"] > 0 and row["norm"] > 0 and Path(row["file"]).is_file()
               for row in comparison["snapshots"])
    assert sorted(Path(path).name for path in comparison["exported"]) == ["tiface-2.safetensors",
                                                                          "tiface-4.safetensors"]
    assert sorted(path.name for path in exported.iterdir()) == ["tiface-2.safetensors", "tiface-4.safetensors"]

    one = client.post(f"{API}/compare", json={"run_dir": str(run_dir), "steps": [4], "y_values": []})
    assert one.status_code == 200, one.text
    assert one.json()["infotext"].splitlines()[0] == "a photo of tiface-4" and one.json()["exported"] == []


def test_interrupt_saves_a_snapshot_the_run_resumes_from(client, sd1_model_dir, dataset, tmp_path):
    run_dir = tmp_path / "run"
    job_id = start(client, train_body(sd1_model_dir, dataset, run_dir, steps=100_000, save_every=100_000))
    poll(client, job_id, lambda status: status["step"] >= 3)

    answer = client.post(f"{API}/train/{job_id}/interrupt")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] in ("running", "interrupted")
    status = wait_for_end(client, job_id)
    step = status["step"]
    assert status["state"] == "interrupted" and 3 <= step < 100_000
    snapshot = run_dir / "embeddings" / f"tiface-{step}.safetensors"
    assert status["last_snapshot"] == str(snapshot) and snapshot.is_file()
    assert status["message"] == (f"interrupted at step {step}; last snapshot {snapshot.name}; start it again with "
                                 f"resume to continue")

    resumed = start(client, train_body(sd1_model_dir, dataset, run_dir, steps=step + 2, save_every=100_000,
                                       resume=True))
    status = wait_for_end(client, resumed)
    assert status["state"] == "finished" and status["step"] == step + 2
    assert status["last_snapshot"] == str(run_dir / "embeddings" / f"tiface-{step + 2}.safetensors")


def test_a_job_waits_for_the_gpu_lock_and_one_runs_at_a_time(client, loader, gpu_lock, sd1_model_dir, dataset,
                                                             tmp_path):
    with gpu_lock:  # a generation is running
        job_id = start(client, train_body(sd1_model_dir, dataset, tmp_path / "run"))
        status = client.get(f"{API}/train/{job_id}").json()
        assert status["state"] == "queued" and status["message"] == "waiting for the GPU"
        assert status["step"] == 0 and status["total_steps"] == 4 and status["started"] is None

        second = client.post(f"{API}/train", json=train_body(sd1_model_dir, dataset, tmp_path / "other"))
        assert second.status_code == 400
        assert second.json() == {"detail": f"a training run is already running (job {job_id}); interrupt it or "
                                           f"wait for it to end"}
        assert client.post(f"{API}/train/{job_id}/interrupt").json()["message"] == "interrupting"
    status = wait_for_end(client, job_id)
    assert status["state"] == "interrupted" and status["message"] == "interrupted before it started"
    assert loader.loads == [] and not (tmp_path / "run").exists() and not (tmp_path / "other").exists()

    assert wait_for_end(client, start(client, train_body(sd1_model_dir, dataset, tmp_path / "run")))["state"] == \
        "finished"  # the slot is free again


# --- errors -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case, changes, message", [
    ("bad name", {"name": "../evil"}, 'embedding name "../evil": "/" is not allowed'),
    ("bad size", {"size": 100}, "size: 100 px is not a multiple of 8 between 64 and 2048"),
    ("bad schedule", {"learning_rate": "0.05:10, 0.02:abc"}, '"0.02:abc"'),
    ("empty dataset", {}, "no training images in {dataset}"),
    ("existing run", {}, "{run} already holds a run of tiface"),
    ("nothing to resume", {"resume": True}, "nothing to resume in {run}"),
])
def test_bad_requests_are_400_and_start_nothing(client, loader, sd1_model_dir, dataset, tmp_path, case, changes,
                                               message):
    run_dir = tmp_path / "run"
    if case == "empty dataset":
        for path in dataset.iterdir():
            path.unlink()
    if case == "existing run":
        run_dir.mkdir()
        (run_dir / "config.json").write_text("{}", encoding="utf-8")
    answer = client.post(f"{API}/train", json=train_body(sd1_model_dir, dataset, run_dir, **changes))
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert message.format(dataset=dataset, run=run_dir) in detail and "\n" not in detail
    assert _training_threads() == [] and loader.loads == []
    if case == "existing run":
        assert [path.name for path in run_dir.iterdir()] == ["config.json"]
    else:
        assert not run_dir.exists()


def test_a_body_outside_the_schema_is_422(client, sd1_model_dir, dataset, tmp_path):
    answer = client.post(f"{API}/train", json=train_body(sd1_model_dir, dataset, tmp_path / "run",
                                                         latent_sampling="sometimes"))
    assert answer.status_code == 422


@pytest.mark.parametrize("failure, message", [
    (None, "model not found: {model}"),
    (RuntimeError("CUDA out of\nmemory"), "training failed: RuntimeError: CUDA out of memory (see the console)"),
])
def test_a_failing_model_load_fails_the_job_with_one_line(client, loader, dataset, tmp_path, caplog, failure,
                                                        message):
    missing = tmp_path / "no-model"
    loader.fail_with = failure
    status = wait_for_end(client, start(client, train_body(missing, dataset, tmp_path / "run")))
    assert status["state"] == "failed" and message.format(model=missing) in status["message"]
    assert "\n" not in status["message"] and loader.released == []
    logged = [record for record in caplog.records if record.name == "ti_studio.training.jobs"]
    assert bool(logged and logged[0].exc_info) is (failure is not None)  # the traceback goes to the console


def test_the_model_is_released_when_training_fails(client, loader, gpu_lock, sd1_model_dir, dataset, tmp_path):
    with gpu_lock:
        job_id = start(client, train_body(sd1_model_dir, dataset, tmp_path / "run"))
        for path in dataset.glob("*.png"):  # the photos go away while the job waits for the GPU
            path.unlink()
    status = wait_for_end(client, job_id)
    assert status["state"] == "failed" and status["message"] == f"no training images in {dataset}"
    assert len(loader.loads) == 1 and len(loader.released) == 1


@pytest.mark.parametrize("method, route", [("get", "train/nope"), ("post", "train/nope/interrupt")])
def test_an_unknown_job_is_404(client, method, route):
    answer = getattr(client, method)(f"{API}/{route}")
    assert answer.status_code == 404 and answer.json() == {"detail": "no training job nope"}


@pytest.mark.parametrize("body, message", [
    ({"run_dir": "{tmp}"}, "{tmp} is not a training run (no config.json)"),
    ({"run_dir": "{run}", "steps": [3]}, "no snapshot at step(s) 3; available: 2"),
    ({"run_dir": "{run}", "prompt_template": "a photo of [y]"}, "the compare prompt must contain [name]"),
])
def test_compare_errors_are_400(client, tmp_path, body, message):
    run = tmp_path / "run"
    (run / "embeddings").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"name": "tiface"}), encoding="utf-8")
    (run / "embeddings" / "tiface-2.safetensors").write_bytes(b"")
    places = {"tmp": tmp_path, "run": run}
    answer = client.post(f"{API}/compare", json={key: value.format(**places) if isinstance(value, str) else value
                                                 for key, value in body.items()})
    assert answer.status_code == 400 and answer.json() == {"detail": message.format(**places)}


# --- registration and auth --------------------------------------------------------------------------------------


def test_training_routes_exist_only_with_jobs(gpu_lock):
    paths = {route.path for route in routes.create_router(credentials=None, gpu_lock=gpu_lock).routes}
    assert f"{API}/compare" in paths and not any(path.startswith(f"{API}/train") for path in paths)


def test_api_auth_protects_the_training_and_compare_routes(gpu_lock, loader, tmp_path):
    client = TestClient(app_with_training(gpu_lock, loader, credentials={"alice": "s3cret"}))
    requests = [("post", "train", {"dataset": str(tmp_path), "run_dir": str(tmp_path / "run"), "name": "x"}),
                ("get", "train/nope", None), ("post", "train/nope/interrupt", None),
                ("post", "compare", {"run_dir": str(tmp_path)})]
    for method, route, body in requests:
        kwargs = {"json": body} if body else {}
        assert getattr(client, method)(f"{API}/{route}", **kwargs).status_code == 401
        assert getattr(client, method)(f"{API}/{route}", auth=("alice", "wrong"), **kwargs).status_code == 401
        assert getattr(client, method)(f"{API}/{route}", auth=("alice", "s3cret"), **kwargs).status_code in (400, 404)
    assert loader.loads == []

