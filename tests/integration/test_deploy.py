"""deploy/ is written for real clusters and checked by parsing (Docker does not run here):
every YAML and JSON file parses; compose has its services; the Deployment probes
/readyz and /healthz; every KEFU_* variable is a configuration key (docs/CONFIG.md) or a
kafka.* pass-through; every metric the dashboard and alerts use is one kefu exports;
every topic of SPEC §1.1 is created by kafka-topics.sh."""
import glob
import json
import os
import re
import unittest

import yaml

from kefutest import SOURCE, TOPICS, main

DEPLOY = os.path.join(SOURCE, "deploy")
EXPORTED = {"kefu_records_in_total", "kefu_records_out_total", "kefu_dlq_total",
            "kefu_duplicates_total", "kefu_late_events_total", "kefu_encode_errors_total",
            "kefu_transactions_total", "kefu_rebalances_total", "kefu_batch_seconds",
            "kefu_redis_seconds", "kefu_event_to_output_seconds", "kefu_consumer_lag",
            "kefu_watermark_ms", "kefu_timer_shops"}


def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


class DeployTest(unittest.TestCase):
    def test_yaml_and_json_parse(self):
        files = glob.glob(os.path.join(DEPLOY, "**", "*.y*ml"), recursive=True)
        self.assertGreaterEqual(len(files), 8)
        for f in files:
            self.assertTrue(docs(f), f)
        for f in glob.glob(os.path.join(DEPLOY, "**", "*.json"), recursive=True):
            with open(f) as fh:
                json.load(fh)

    def test_compose_services_and_probes(self):
        compose = docs(os.path.join(DEPLOY, "compose.yaml"))[0]
        self.assertTrue({"kafka", "redis", "kefu", "prometheus"} <= set(compose["services"]))
        dep = docs(os.path.join(DEPLOY, "k8s", "deployment.yaml"))[0]
        kefu = dep["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(kefu["readinessProbe"]["httpGet"]["path"], "/readyz")
        self.assertEqual(kefu["livenessProbe"]["httpGet"]["path"], "/healthz")

    def test_environment_variables_are_configuration_keys(self):
        with open(os.path.join(SOURCE, "docs", "CONFIG.md")) as f:
            keys = set(re.findall(r"^\| `([a-z0-9_.]+)`", f.read(), re.M))
        self.assertIn("redis.url", keys)
        text = "".join(open(f).read() for f in glob.glob(os.path.join(DEPLOY, "**", "*"),
                                                           recursive=True) if os.path.isfile(f))
        for var in set(re.findall(r"\bKEFU_[A-Z0-9_]+", text)):
            name = var[len("KEFU_"):].lower()
            if name.startswith("kafka_"):
                continue  # librdkafka pass-through
            self.assertTrue(name in {k.replace(".", "_") for k in keys}, var)

    def test_dashboard_and_alerts_use_exported_metrics(self):
        text = open(os.path.join(DEPLOY, "grafana", "kefu-dashboard.json")).read()
        text += open(os.path.join(DEPLOY, "prometheus", "alerts.yml")).read()
        for name in set(re.findall(r"\bkefu_[a-z_]+", text)):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            self.assertIn(base, EXPORTED, name)

    def test_every_topic_is_created(self):
        script = open(os.path.join(DEPLOY, "kafka-topics.sh")).read()
        for topic in TOPICS.values():
            self.assertIn(topic, script)


if __name__ == "__main__":
    main()
