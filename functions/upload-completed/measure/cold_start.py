#!/usr/bin/env python3
"""Cold init of a Lambda bootstrap, measured locally against a fake Lambda Runtime API.

Starts the binary N times with AWS_LAMBDA_RUNTIME_API pointing at a local HTTP server and
records the time from process spawn to its first `GET /2018-06-01/runtime/invocation/next`
(= Lambda's Init phase: config read, SDK clients built). No invocation is served; the process
is killed after the first poll. Prints min / median / max in milliseconds.

Usage: cold_start.py BINARY [RUNS] (extra env: TABLE_NAME, IOT_DATA_ENDPOINT, MEDIA_BUCKET are
set to dummies unless already set).
"""
import http.server
import os
import statistics
import subprocess
import sys
import threading
import time

polled = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        polled.set()
        # Hold the long poll; the process is killed meanwhile.
        time.sleep(2)

    def log_message(self, *args):
        pass


def main():
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    env = dict(os.environ)
    env.update(
        AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{srv.server_address[1]}",
        AWS_LAMBDA_FUNCTION_NAME="measure",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
        AWS_LAMBDA_LOG_STREAM_NAME="s",
        AWS_LAMBDA_LOG_GROUP_NAME="g",
        AWS_REGION=env.get("AWS_REGION", "us-east-1"),
        AWS_ACCESS_KEY_ID=env.get("AWS_ACCESS_KEY_ID", "testing"),
        AWS_SECRET_ACCESS_KEY=env.get("AWS_SECRET_ACCESS_KEY", "testing"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.setdefault("TABLE_NAME", "anpr")
    env.setdefault("IOT_DATA_ENDPOINT", "https://example-ats.iot.us-east-1.amazonaws.com")
    env.setdefault("MEDIA_BUCKET", "anpr-media")
    times = []
    for _ in range(runs):
        polled.clear()
        t0 = time.perf_counter()
        p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not polled.wait(10):
            p.kill()
            sys.exit(f"{binary} did not poll for an invocation within 10 s")
        times.append((time.perf_counter() - t0) * 1000)
        p.kill()
        p.wait()
    print(
        f"{os.path.basename(binary)}: cold init over {runs} runs: "
        f"min {min(times):.1f} ms, median {statistics.median(times):.1f} ms, max {max(times):.1f} ms"
    )


if __name__ == "__main__":
    main()
