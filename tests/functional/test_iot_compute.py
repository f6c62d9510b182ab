"""Example 3 end to end: two devices' agents share idle compute through the compute module
and are paid; one agent is killed after running a task and resumes (examples/iot)."""

from __future__ import annotations

import sys
from pathlib import Path

from framework.harness import wait_until
from framework.netharness import Network

from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "iot"))
import compute_share
from iotkit import Scenario

REQUESTER = PrivateKey.from_seed(b"\x61" * 32)
OWNER = PrivateKey.from_seed(b"\x62" * 32)
FUNDS = 10**12


def test_devices_share_compute_are_paid_and_a_killed_agent_resumes(tmp_path: Path) -> None:
    with Network(tmp_path / "net", n=1, accounts=[(REQUESTER.address, FUNDS),
                                                  (OWNER.address, FUNDS)]) as net:
        net.start_all()
        net.wait_all(1)
        client = net.client(0)
        configs = compute_share.prepare(client, OWNER, tmp_path / "iot", 2, poll_seconds=0.2)
        with Scenario(tmp_path / "iot", broker=False) as sc:
            agents = [sc.agent(f"device{i}", c).start() for i, c in enumerate(configs)]
            for a in agents:
                wait_until(lambda a=a: (a.status() or {}).get("roles", {}).get("compute", {})
                           .get("registered"), 60, what=f"{a.name} registered")
            job = compute_share.post_job(client, REQUESTER, tasks=4)

            # device0 is killed once it has run a task (its result saved, maybe committed)
            wait_until(lambda: (agents[0].status() or {})["roles"]["compute"]["tasks_run"] >= 1,
                       60, what="device0 ran a task")
            agents[0].kill()
            agents[0].start()

            done = wait_until(lambda: compute_share.job_done(client, job), 120,
                              what=f"job {job} done")
            assert done["verified"] == 4 and int(done["paid"]) > 0
            for a in agents:
                view = client.compute_provider(to_bech32(a.config_key().address))
                assert int(view["verified_fuel"]) > 0, a.name  # its answers were paid for
                assert "Traceback" not in a.agent_log(), a.agent_log()
            states = client.compute_job(job)["task_states"]
            assert all(t["status"] == "verified" for t in states)
