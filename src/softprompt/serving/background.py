"""Run the server in a background thread (tests, benchmarks, notebooks).

    with serve_in_thread(app) as url:      # http://127.0.0.1:<free port>
        SoftPromptClient(url).health()
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 30.0,
                    log_level: str = "warning") -> Iterator[str]:
    """Start uvicorn on host:port (0 = a free port) in a daemon thread; yield its base URL;
    stop it (and the app's batch worker, via the lifespan) on exit."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="softprompt-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server thread exited during startup (port in use?)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start within {startup_timeout:g} s")
        time.sleep(0.01)
    bound = port
    for s in server.servers:
        for sock in s.sockets:
            bound = sock.getsockname()[1]
            break
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(30.0)
