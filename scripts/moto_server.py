"""moto in server mode, plus what moto lacks for our tests.

moto accepts IoT data-plane publishes but offers no way to read them back. This launcher wraps
moto's WSGI app: every `POST /topics/{topic}` (iotdata:Publish) is recorded with its QoS and
payload before moto handles it, and `GET /_anpr/iot/published` returns the records as JSON
(`[{"topic","qos","payload"(base64)}]`).

S3 event notifications carry a `sequencer`, as AWS's always do and moto's do not: increasing
hex, one value per object written, so the two events moto sends for one multipart completion
(`ObjectCreated:Put` and `ObjectCreated:CompleteMultipartUpload`; AWS sends only the latter) carry
the same value and read as one object event delivered twice, which AWS also allows.

DynamoDB requests are served one at a time: moto checks a `ConditionExpression` and then writes,
without a lock, so two conditional writes racing from two threads could both succeed, which
DynamoDB never allows (a lost update, seen once in `status_against_moto`'s racing writers).

Everything else is moto, untouched.

Usage: python moto_server.py HOST PORT
"""

import base64
import io
import json
import sys
import threading
from urllib.parse import parse_qs, unquote

import time

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3 import notifications as _s3_notifications
from werkzeug.serving import run_simple

_lock = threading.Lock()
_dynamodb_lock = threading.Lock()
_published = []
_moto = DomainDispatcherApplication(create_backend_app)

# Starts from the clock so that values keep increasing across a restart of this server.
_sequencer = [time.time_ns()]
_moto_s3_event = _s3_notifications._get_s3_event


def _s3_event_with_sequencer(event_name, bucket, key, notification_id):
    event = _moto_s3_event(event_name, bucket, key, notification_id)
    with _lock:
        seq = getattr(key, "_anpr_sequencer", None) if "ObjectCreated" in event_name else None
        if seq is None:
            _sequencer[0] += 1
            seq = "%018X" % _sequencer[0]
            if "ObjectCreated" in event_name:
                key._anpr_sequencer = seq
    for record in event["Records"]:
        record["s3"]["object"]["sequencer"] = seq
    return event


_s3_notifications._get_s3_event = _s3_event_with_sequencer


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/_anpr/iot/published" and environ["REQUEST_METHOD"] == "GET":
        with _lock:
            body = json.dumps(_published).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path.startswith("/topics/") and environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        payload = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(payload)
        qos = parse_qs(environ.get("QUERY_STRING", "")).get("qos", [None])[0]
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or path
        raw_path = raw_uri.split("?", 1)[0]
        topic = unquote(raw_path[len("/topics/"):])
        with _lock:
            _published.append(
                {
                    "topic": topic,
                    "qos": int(qos) if qos is not None else None,
                    "payload": base64.b64encode(payload).decode(),
                }
            )
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
        with _dynamodb_lock:
            return list(_moto(environ, start_response))
    return _moto(environ, start_response)


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    run_simple(host, port, app, threaded=True, use_reloader=False)
