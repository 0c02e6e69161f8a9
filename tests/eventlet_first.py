"""Loaded by pytest before any other plugin (`-p tests.eventlet_first` in pytest.ini): eventlet
patches the standard library here, before a plugin imports ssl (schemathesis does, through
requests). An ssl module imported unpatched and patched afterwards sends every new SSLContext
(boto3 makes one per client, even for http://) into endless recursion. The services are patched
the same way, first thing, by `nameko run`."""
import eventlet

eventlet.monkey_patch()
