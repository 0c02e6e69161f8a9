"""tests/support/processes.py's free ports."""
from tests.support import processes


def test_free_port_never_hands_out_a_port_twice_even_when_the_kernel_offers_it_again(monkeypatch):
    """The kernel may offer the same port to consecutive probes (it is free again at once): each
    caller must still get a port of its own."""
    offered = iter([40001, 40001, 40002, 40001, 40003])

    class Probe:
        def __init__(self, *args):
            self.port = None

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def bind(self, address):
            self.port = address[1] or next(offered)

        def getsockname(self):
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(processes.socket, "socket", Probe)
    monkeypatch.setattr(processes, "_handed_out", set())
    assert [processes.free_port() for _ in range(3)] == [40001, 40002, 40003]
    assert not processes.claim_port(40002)
