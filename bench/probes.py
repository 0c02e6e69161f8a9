"""Latency probes that measure the server and not the load generator: they run in a process of their own.

A probe sharing an event loop (or only a GIL) with the client that generates the load waits for that
client whenever it is busy: bench.event_loop starts 20 logins at the instant its probes start, and
the first probe of every round was charged the time its own client took to send those logins (the
worst probe of each round, 40-130 ms, every round, on every service at once, the idle
notification_service included). Here the probes run in a separate interpreter, on keep-alive
connections opened and used once before anything is recorded, so a probe's latency is the network
round trip and the server's answer only.

    with ProbeProcess(interval=0.05) as probes:
        probes.start({"name": (url, headers or None)})   # returns once every connection is warm
        ...                                              # the load
        samples = probes.stop()                          # {name: [(t, latency s, status)]}

The process is started with multiprocessing's "spawn": a script using this needs the usual
`if __name__ == "__main__":` guard (every bench module has it).
"""
import asyncio
import multiprocessing

from bench import client


class ProbeProcess:
    def __init__(self, interval):
        self.interval = interval

    def __enter__(self):
        context = multiprocessing.get_context("spawn")  # no fork of a process with an event loop and threads
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_serve, args=(child_conn, self.interval), daemon=True)
        self._process.start()
        child_conn.close()
        return self

    def start(self, urls):
        """Starts probing `urls` ({name: (url, headers)}); blocks until every connection is warm."""
        self._conn.send(("start", urls))
        reply = self._conn.recv()
        if reply != "ready":
            raise RuntimeError(f"the probe process failed to start: {reply}")

    def stop(self):
        """Stops probing; {name: [(time.time() at send, latency s, status or exception name)]}."""
        self._conn.send(("stop", None))
        samples = self._conn.recv()
        if not isinstance(samples, dict):
            raise RuntimeError(f"the probe process failed: {samples}")
        return samples

    def __exit__(self, *exc_info):
        try:
            self._conn.send(("exit", None))
        except OSError:
            pass
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
        self._conn.close()


def _serve(conn, interval):
    while True:
        command, urls = conn.recv()
        if command == "exit":
            return
        if command == "start":
            try:
                conn.send(asyncio.run(_probe(conn, urls, interval)))
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
                conn.send(f"{type(exc).__name__}: {exc}")


async def _probe(conn, urls, interval):
    stop = asyncio.Event()
    sessions = {name: client.new_session(limit=1, timeout=10) for name in urls}
    try:
        for name, (url, headers) in urls.items():  # connect outside the measured window
            latency, status = await client.timed_get(sessions[name], url, headers)
            if status != 200:
                raise RuntimeError(f"{name}: warm-up probe answered {status}")
        loop = asyncio.get_running_loop()
        loop.add_reader(conn.fileno(), stop.set)  # the parent's "stop"
        conn.send("ready")
        tasks = {name: asyncio.create_task(client.probe_loop(sessions[name], url, stop, interval, headers))
                 for name, (url, headers) in urls.items()}
        samples = {name: await task for name, task in tasks.items()}
        loop.remove_reader(conn.fileno())
        conn.recv()  # consume the "stop"
        return samples
    finally:
        for session in sessions.values():
            await session.close()
