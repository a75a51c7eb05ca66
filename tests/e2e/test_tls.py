"""gRPC over TLS, and mutual TLS, between real coordinator and worker processes."""

from __future__ import annotations

import pytest
import trustme

from tests.cluster import Cluster
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("worker.skiplock.test")
    d = tmp_path_factory.mktemp("pki")
    out = {
        "ca": d / "ca.pem", "server_cert": d / "server.pem", "server_key": d / "server.key",
        "client_cert": d / "client.pem", "client_key": d / "client.key",
    }
    ca.cert_pem.write_to_path(str(out["ca"]))
    server.cert_chain_pems[0].write_to_path(str(out["server_cert"]))
    server.private_key_pem.write_to_path(str(out["server_key"]))
    client.cert_chain_pems[0].write_to_path(str(out["client_cert"]))
    client.private_key_pem.write_to_path(str(out["client_key"]))
    return {k: str(v) for k, v in out.items()}


async def test_tls_worker_runs_tasks_and_plaintext_is_refused(cluster: Cluster, pki: dict[str, str]) -> None:
    await cluster.api()
    await cluster.coordinator(["--tls-cert", pki["server_cert"], "--tls-key", pki["server_key"]])
    plain = await cluster.worker("--import", "e2e_handlers", name="plain", wait=False)
    await cluster.worker("--import", "e2e_handlers", "--tls-ca", pki["ca"], name="tls")
    status, task = await cluster.request("POST", "/api/tasks", {"type": "echo", "payload": {"over": "tls"}})
    assert status == 201
    done = await cluster.wait_task(task["id"])
    assert done["last_run"]["result"]["payload"] == {"over": "tls"}
    await wait_until(lambda: cluster.metric(plain, "skiplock_worker_session_errors_total"), 20,
                     what="the plaintext worker to fail")
    assert await cluster.metric(plain, "skiplock_worker_sessions_total") == 0


async def test_mutual_tls_requires_a_client_certificate(cluster: Cluster, pki: dict[str, str]) -> None:
    await cluster.api()
    await cluster.coordinator(["--tls-cert", pki["server_cert"], "--tls-key", pki["server_key"],
                               "--tls-ca", pki["ca"]])
    anonymous = await cluster.worker("--import", "e2e_handlers", "--tls-ca", pki["ca"], name="no-cert", wait=False)
    await cluster.worker("--import", "e2e_handlers", "--tls-ca", pki["ca"], "--tls-cert", pki["client_cert"],
                         "--tls-key", pki["client_key"], name="with-cert")
    status, workers = await cluster.request("GET", "/api/workers")
    assert [w["name"] for w in workers["workers"]] == ["with-cert"]
    await wait_until(lambda: cluster.metric(anonymous, "skiplock_worker_session_errors_total"), 20,
                     what="the cert-less worker to fail")
    assert await cluster.metric(anonymous, "skiplock_worker_sessions_total") == 0
