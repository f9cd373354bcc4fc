"""The OpenAI backend through the real `openai` SDK against a local fake API server (OPENAI_BASE_URL):
upload, create the job, follow its events into the store, register the ft: model; a failed job's reason."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from engine.errors import LabError
from engine.pipeline.training import openai_ft, runs
from engine.pipeline.training.config import load_config

MESSAGES = [{"role": "system", "content": "Persuade."}, {"role": "user", "content": "Start."},
            {"role": "assistant", "content": "MOVES: ask_choice\nMESSAGE: Which do you prefer?"}]


class FakeOpenAI(BaseHTTPRequestHandler):
    """Files, fine-tuning jobs and their events, as the API shapes them; a job ends on its third retrieve."""

    server: ThreadingHTTPServer

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, body: dict, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _job(self) -> dict:
        s = self.server
        job = {"id": "ftjob-1", "object": "fine_tuning.job", "created_at": 1, "model": s.created["model"],
               "training_file": s.created["training_file"], "status": "running", "error": None,
               "fine_tuned_model": None, "finished_at": None, "hyperparameters": {"n_epochs": 3},
               "organization_id": "org", "result_files": [], "seed": 42, "trained_tokens": None,
               "validation_file": None}
        if s.retrieves >= 3:
            if s.outcome == "failed":
                job.update(status="failed", error={"code": "invalid_training_file", "param": "training_file",
                                                   "message": "The job failed due to an invalid training file."})
            else:
                job.update(status="succeeded", fine_tuned_model="ft:gpt-4o-mini-2024-07-18:org::abc123",
                           trained_tokens=1234)
        return job

    def do_POST(self):
        s = self.server
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        s.auth.append(self.headers.get("authorization"))
        if self.path == "/v1/files":
            s.uploads.append(body)
            return self._send({"id": "file-1", "object": "file", "bytes": len(body), "created_at": 1,
                               "filename": "train.jsonl", "purpose": "fine-tune", "status": "processed"})
        if self.path == "/v1/fine_tuning/jobs":
            s.created = json.loads(body)
            return self._send(self._job())
        self._send({"error": {"message": "not found"}}, 404)

    def do_GET(self):
        s = self.server
        if s.drops:  # the connection is lost: no answer at all
            s.drops -= 1
            self.close_connection = True
            return
        if s.gone:  # the job was deleted at OpenAI
            return self._send({"error": {"message": "No such fine-tuning job: ftjob-1", "type": "invalid_request_error",
                                         "param": None, "code": None}}, 404)
        if self.path.startswith("/v1/fine_tuning/jobs/ftjob-1/events"):
            n = 3 if s.burst else min(s.retrieves, 3)  # burst: every step already logged at the first look
            events = [{"id": "ev-0", "object": "fine_tuning.job.event", "created_at": 1, "level": "info",
                       "message": "Validating training file", "type": "message", "data": {}}]
            events += [{"id": f"ev-{i}", "object": "fine_tuning.job.event", "created_at": 1 + i, "level": "info",
                        "message": f"Step {i}/3: training loss={2.0 / i:.2f}", "type": "metrics",
                        "data": {"step": i, "total_steps": 3, "train_loss": 2.0 / i}} for i in range(1, n + 1)]
            events = events[::-1]  # newest first, two to a page, the next page `after` an id: as the API pages
            after = parse_qs(urlparse(self.path).query).get("after")
            if after:
                events = events[[e["id"] for e in events].index(after[0]) + 1:]
            s.event_pages += 1
            return self._send({"object": "list", "data": events[:2], "has_more": len(events) > 2})
        if self.path.startswith("/v1/fine_tuning/jobs/ftjob-1"):
            s.retrieves += 1
            return self._send(self._job())
        self._send({"error": {"message": "not found"}}, 404)


@pytest.fixture
def fake_api(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    server.uploads, server.auth, server.created, server.retrieves, server.outcome = [], [], {}, 0, "succeeded"
    server.event_pages, server.burst, server.drops, server.gone = 0, False, 0, False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    yield server
    server.shutdown()


@pytest.fixture
def openai_file(tmp_path):
    path = tmp_path / "openai.jsonl"
    path.write_text("".join(json.dumps({"messages": MESSAGES}) + "\n" for _ in range(10)))
    return str(path)


def config(data: str):
    return load_config(None, {"backend": "openai", "model": "gpt-4o-mini-2024-07-18", "data": data, "poll_s": 0.01,
                              "suffix": "ptom", "epochs": 2})


def test_job_succeeds_and_model_is_registered(fake_api, openai_file, store):
    said = []
    result = openai_ft.train(config(openai_file), store, say=said.append)
    assert fake_api.created["model"] == "gpt-4o-mini-2024-07-18" and fake_api.created["suffix"] == "ptom"
    assert fake_api.created["method"]["supervised"]["hyperparameters"]["n_epochs"] == 2
    assert b'MESSAGE: Which do you prefer?' in fake_api.uploads[0] and b'fine-tune' in fake_api.uploads[0]
    assert fake_api.auth[0] == "Bearer sk-test-not-a-real-key"
    row = runs.get_run(store, result["run_id"])
    assert (row["status"], row["backend"], row["checkpoint"], row["total_steps"]) == ("finished", "openai", "ftjob-1", 3)
    assert [(s["step"], round(s["loss"], 2)) for s in store.training_steps(row["id"])] == [(1, 2.0), (2, 1.0), (3, 0.67)]
    assert "sk-test" not in json.dumps(list(store.db["training_runs"].rows))  # the key never reaches the store
    model = store.db["models"].get(result["model_id"])
    assert model["path"] == "ft:gpt-4o-mini-2024-07-18:org::abc123" and model["kind"] == "openai"
    assert any("Validating training file" in line for line in said)
    assert "step 3/3  loss 0.6667" in said  # each metrics event is printed as it arrives


def test_failed_job_shows_openai_reason(fake_api, openai_file, store):
    fake_api.outcome = "failed"
    with pytest.raises(LabError, match="invalid training file.*invalid_training_file"):
        openai_ft.train(config(openai_file), store, say=lambda _: None)
    (row,) = runs.list_runs(store)
    assert row["status"] == "failed" and "invalid training file" in row["error"]
    assert store.db["models"].count == 0


def test_missing_key_is_named_before_anything_is_sent(fake_api, openai_file, store, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(LabError, match="OPENAI_API_KEY is not set"):
        openai_ft.train(config(openai_file), store)
    assert fake_api.uploads == [] and fake_api.auth == []


def test_file_breaking_the_rules_is_not_uploaded(fake_api, tmp_path, store):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": MESSAGES[:2]}) + "\n")
    with pytest.raises(LabError, match="bad.jsonl:1: example_missing_assistant_message"):
        openai_ft.train(config(str(bad)), store)
    assert fake_api.uploads == []


def test_ctrl_c_stops_following_and_resume_picks_the_job_up(fake_api, openai_file, store):
    def say(line: str) -> None:
        if line.startswith("step 1/"):
            raise KeyboardInterrupt  # Ctrl-C while following

    with pytest.raises(KeyboardInterrupt):
        openai_ft.train(config(openai_file), store, say=say)
    (row,) = runs.list_runs(store)
    assert (row["status"], row["checkpoint"]) == ("interrupted", "ftjob-1")
    result = openai_ft.train(config(openai_file), store, resume=row["id"], say=lambda _: None)
    assert result["run_id"] == row["id"] and len(fake_api.uploads) == 1  # nothing uploaded again
    assert [s["step"] for s in store.training_steps(row["id"])] == [1, 2, 3]  # no event recorded twice
    assert runs.get_run(store, row["id"])["status"] == "finished"


def test_cli_prints_the_failed_jobs_reason(fake_api, openai_file, tmp_path, capsys):
    from engine.cli import main

    fake_api.outcome = "failed"
    code = main(["finetune", "--db", str(tmp_path / "s.db"), "--backend", "openai", "--model", "gpt-4o-mini-2024-07-18",
                 "--data", openai_file, "--poll", "0.01"])
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err
    assert "job ftjob-1 failed: The job failed due to an invalid training file. (invalid_training_file)" in captured.err
    assert "created OpenAI job ftjob-1" in captured.out


def test_events_beyond_one_page_are_all_recorded_in_order(fake_api, openai_file, store):
    fake_api.burst = True  # 4 events, 2 to a page, at the first poll
    result = openai_ft.train(config(openai_file), store, say=lambda _: None)
    assert [s["step"] for s in store.training_steps(result["run_id"])] == [1, 2, 3]
    assert fake_api.event_pages == 2 + 2  # first poll: both pages; later polls stop at the first page (seen events)


def test_a_lost_connection_marks_the_run_interrupted_and_resume_follows_again(fake_api, openai_file, store, monkeypatch):
    monkeypatch.setattr(openai_ft, "MAX_RETRIES", 0)  # the SDK would retry the dropped connection with backoff

    def say(line: str) -> None:
        if line.startswith("step 1/"):
            fake_api.drops = 1  # the next request gets no answer

    with pytest.raises(LabError, match=r"lost OpenAI job ftjob-1 while following it \(Connection error.*--resume"):
        openai_ft.train(config(openai_file), store, say=say)
    (row,) = runs.list_runs(store)
    assert (row["status"], row["checkpoint"]) == ("interrupted", "ftjob-1")
    result = openai_ft.train(config(openai_file), store, resume=row["id"], say=lambda _: None)
    assert [s["step"] for s in store.training_steps(result["run_id"])] == [1, 2, 3]
    assert runs.get_run(store, row["id"])["status"] == "finished"


def test_a_job_gone_at_openai_marks_the_run_failed_with_the_reason(fake_api, openai_file, store):
    def say(line: str) -> None:
        if line.startswith("step 1/"):
            fake_api.gone = True

    with pytest.raises(LabError, match=r"failed: OpenAI no longer knows job ftjob-1 \(Error code: 404 - No such fine-tuning"):
        openai_ft.train(config(openai_file), store, say=say)
    (row,) = runs.list_runs(store)
    assert row["status"] == "failed" and "404 - No such fine-tuning job: ftjob-1" in row["error"]
