"""The peers: other ways to call a function in a container of the same image.

* execnet over ``docker exec -i`` (the design's yardstick for a warm call): execnet's popen
  gateway runs ``<python> -u -c <bootstrap>`` and sends its own source over stdin, so the image
  needs nothing installed; ``python=docker exec -i NAME python3`` is split with shlex.
* ``docker exec NAME python3 -c ...`` per call.
* ``docker run --rm IMAGE python3 -c <template>`` per call: seed 004's graflow handler, a
  base64 cloudpickle payload decoded, called, and the result printed back as base64.
"""

from __future__ import annotations

import base64
import subprocess
import time
from typing import Any

from .docker_env import LABEL, DockerEnv

EXECNET_LOOP = """
while True:
    x = channel.receive()
    if x is None:
        break
    channel.send(abs(x))
"""


class ExecnetPeer:
    """A plain ``sleep infinity`` container and an execnet gateway into it."""

    def __init__(self, env: DockerEnv, image: str) -> None:
        import execnet

        self.env = env
        self.container = env.run(image, ["sleep", "infinity"])
        self.name = self.container.name
        self.spec = f"popen//python=docker exec -i {self.name} python3"
        self.gw = execnet.makegateway(self.spec)
        self.channel = self.gw.remote_exec(EXECNET_LOOP)
        assert self.call() == 1

    def call(self) -> Any:
        """One send/receive on the long-lived channel: execnet's warm call."""
        self.channel.send(-1)
        return self.channel.receive()

    def call_remote_exec(self) -> Any:
        """A fresh ``remote_exec`` per call: what a naive execnet-based runner pays."""
        ch = self.gw.remote_exec("channel.send(abs(channel.receive()))")
        ch.send(-1)
        value = ch.receive()
        ch.waitclose()
        return value

    def gateway_cold(self) -> float:
        """A new gateway on the running container: docker exec + bootstrap + first call."""
        import execnet

        t0 = time.perf_counter()
        gw = execnet.makegateway(self.spec)
        try:
            ch = gw.remote_exec("channel.send(abs(channel.receive()))")
            ch.send(-1)
            assert ch.receive() == 1
            return time.perf_counter() - t0
        finally:
            gw.exit()

    def docker_exec(self) -> float:
        """``docker exec NAME python3 -c ...`` once, checked."""
        t0 = time.perf_counter()
        out = subprocess.run(["docker", "exec", self.name, "python3", "-c", "print(abs(-1))"],
                             check=True, capture_output=True, text=True).stdout
        took = time.perf_counter() - t0
        assert out.strip() == "1", out
        return took

    def close(self) -> None:
        try:
            self.channel.send(None)
            self.channel.waitclose(10)
        finally:
            self.gw.exit()
            self.env.remove(self.container)


# Seed 004's runner template, minus the pip fallback (no network): cloudpickle comes from the
# plugin's own bundle, mounted read-only, as a pre-installed copy would.
DOCKER_RUN_TEMPLATE = """
import base64, sys
sys.path.insert(0, "/opt/prs/cloudpickle.zip")
import cloudpickle
task_func = cloudpickle.loads(base64.b64decode({payload!r}))
result = task_func()
print("RESULT:" + base64.b64encode(cloudpickle.dumps(result)).decode())
"""


def docker_run_per_call(env: DockerEnv, image: str) -> float:
    """One call the seed-004 way: a fresh ``docker run --rm`` carrying a base64 payload."""
    import cloudpickle

    from pytest_remote_serial.host.bundle import ensure_bundle

    t0 = time.perf_counter()
    payload = base64.b64encode(cloudpickle.dumps(lambda: abs(-1))).decode()
    code = DOCKER_RUN_TEMPLATE.format(payload=payload)
    cmd = ["docker", "run", "--rm", "--network", "none", "--label", f"{LABEL}={env.run_id}",
           "-v", f"{ensure_bundle().folder}:/opt/prs:ro", image, "python3", "-c", code]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT:"))
    result = cloudpickle.loads(base64.b64decode(line[len("RESULT:"):]))
    took = time.perf_counter() - t0
    assert result == 1, result
    return took
