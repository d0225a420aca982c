#!/usr/bin/env python3
"""A webhook receiver for benchmarks: answers every POST with 204 and counts
them. Usage: loadgen/webhook_sink.py PORT (prints the count when stopped)."""
import http.server
import signal
import sys
import threading

received = 0
lock = threading.Lock()


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global received
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with lock:
            received += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


# The dispatcher opens a connection per chain it sends at once; the default
# backlog of 5 would refuse most of them and benchmark the retries instead.
http.server.ThreadingHTTPServer.request_queue_size = 1024
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()
print(f"webhook sink: {received} deliveries", file=sys.stderr)
