"""Hand-checked arithmetic of scripts/cost-model (run by anpr-fleet-sim's cost_model test).

    python3 -m unittest discover -s scripts/cost -p 'test_*.py'
"""

import importlib.machinery
import importlib.util
import io
import math
import tomllib
import unittest
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
_loader = importlib.machinery.SourceFileLoader("cost_model", str(HERE.parent / "cost-model"))
_spec = importlib.util.spec_from_loader("cost_model", _loader)
cm = importlib.util.module_from_spec(_spec)
_loader.exec_module(cm)

WORKLOAD = tomllib.loads((HERE / "workload.toml").read_text())
PRICES = tomllib.loads((HERE / "prices.toml").read_text())
# Every price 1 USD per single unit: a line item then equals its usage.
ONES = {k: {"usd": 1.0, "per": "unit"} for k in PRICES}


class Units(unittest.TestCase):
    def test_5kb_units(self):
        self.assertEqual(cm.units(1, cm.MQTT_UNIT), 1)
        self.assertEqual(cm.units(5120, cm.MQTT_UNIT), 1)
        self.assertEqual(cm.units(5121, cm.MQTT_UNIT), 2)
        self.assertEqual(cm.units(0, cm.MQTT_UNIT), 1)

    def test_dynamo_sizes(self):
        self.assertEqual(cm.dynamo_item_size({"PK": "READS#x"}), 2 + 7)
        # 13 digits -> 7 bytes of digit pairs + 1
        self.assertEqual(cm.dynamo_item_size({"t": 1764086400123}), 1 + 8)
        # list: 3 + (1 + 2) + (1 + 2)
        self.assertEqual(cm.dynamo_item_size({"bb": [1, 2]}), 2 + 9)

    def test_per_unit_reads_the_quoted_quantity(self):
        p = {"a": {"usd": 2.0, "per": "1,000,000 things"}, "b": {"usd": 5.0, "per": "1,000 PUT"}}
        self.assertAlmostEqual(cm.per_unit(p, "a"), 2e-6)
        self.assertAlmostEqual(cm.per_unit(p, "b"), 5e-3)


class CameraMonth(unittest.TestCase):
    def month(self, profile):
        return cm.camera_month(WORKLOAD["profiles"][profile], WORKLOAD, ONES, ROOT)

    def test_idle_by_hand(self):
        r = self.month("idle")
        self.assertEqual(r["cost"]["iot connectivity"], 30 * 24 * 60)
        # per connect: CONNECT (will "cam-000001/presence" + 17 B = 1 unit) + presence PUBLISH
        # and RETAINED (2) = 3, once a day for 30 days; 2 SUBSCRIBEs; 4 health reports a day;
        # the presence rule's 2 lifecycle events a connect, each told to the organisation (1).
        self.assertEqual(r["cost"]["iot messages"], 30 * 3 + 2 + 4 * 30 + 30 * 2)
        # each lifecycle event: a rule and its action, a file-status invocation, one write
        self.assertEqual(r["cost"]["iot rules+actions"], 30 * 2 * 2)
        self.assertEqual(r["usage"]["lambda_invocations"], 30 * 2)
        self.assertEqual(r["cost"]["dynamodb writes"], 30 * 2)
        for item in ("sqs", "data transfer out", "s3 storage"):
            self.assertEqual(r["cost"][item], 0, item)

    def test_busy_dynamodb_and_transfer_by_hand(self):
        r = self.month("busy")
        self.assertEqual(r["usage"]["wru_per_read"], 2)  # < 1 KB item, written twice (GSI1)
        # reads: 5000/day x 30 x 2; requests: 20/day x 30 x (create + 2 statuses + completion);
        # presence: 2 lifecycle events a day x 30
        self.assertEqual(r["cost"]["dynamodb writes"], 5000 * 30 * 2 + 20 * 30 * 4 + 30 * 2)
        out_bytes = 20 * 30 * 5_000_000 + 20 * 30 * 4 * 600
        self.assertAlmostEqual(r["cost"]["data transfer out"], out_bytes / 1024**3)
        # 5 MB < 8 MiB threshold: one PUT per file
        self.assertEqual(r["cost"]["s3 requests"], 20 * 30 + 20 * 30)

    def test_busy_queue_requests_by_hand(self):
        r = self.month("busy")
        b = r["usage"]["plate_batches"]
        # each batch (< 64 KB) is one SendMessage; receives and deletes are shared by 10
        self.assertAlmostEqual(r["cost"]["sqs"], b * (1 + 2 / 10))
        # plate-ingest runs once per receive of 10 messages
        self.assertAlmostEqual(
            r["usage"]["lambda_invocations"],
            20 * 30 * (1 + 3) + 20 * 30 * 2 + 30 * 2 + 20 * 30 + b / 10,
        )

    def test_batches_follow_the_outbox_age(self):
        windows = 12 * 3600 / 30
        b, per = cm.plate_batches_per_day(5000, WORKLOAD["plates"])
        self.assertAlmostEqual(b, windows * (1 - math.exp(-5000 / windows)))
        self.assertAlmostEqual(per * b, 5000)
        self.assertEqual(cm.plate_batches_per_day(0, WORKLOAD["plates"]), (0.0, 0.0))

    def test_fleet_is_camera_times_count(self):
        out = cm.model(ONES, WORKLOAD, ROOT)
        busy = out["profiles"]["busy"]["total"]
        self.assertEqual([f["cameras"] for f in out["fleets"]], [1000, 10000, 100000])
        self.assertAlmostEqual(out["fleets"][2]["busy"], busy * 100000)


class Command(unittest.TestCase):
    def test_default_tables_print(self):
        buf = io.StringIO()
        with redirect_stdout(buf):
            self.assertEqual(cm.main([]), 0)
        text = buf.getvalue()
        self.assertIn("TOTAL", text)
        self.assertIn("100,000", text)

    def test_missing_price_is_a_clear_error(self):
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "prices.toml"
            p.write_text('[iot_connectivity]\nusd = 0.08\nper = "1,000,000 minutes"\n')
            err = io.StringIO()
            with redirect_stderr(err), redirect_stdout(io.StringIO()):
                self.assertEqual(cm.main(["--prices", str(p)]), 2)
            self.assertIn("iot_message", err.getvalue())


if __name__ == "__main__":
    unittest.main()
