#!/usr/bin/env bash
# Checks the deployment files that cannot run here: the compose file
# parses and has the services and ports the README names, the Grafana
# provisioning points at the dashboard, and the systemd unit is sound.
# Exits non-zero on the first problem.
set -euo pipefail
cd "$(dirname "$0")/.."

if docker compose version >/dev/null 2>&1; then
    # Dummy values: `config` refuses unset required variables.
    INGEST_KEYS=x READ_KEYS=y POSTGRES_PASSWORD=z GRAFANA_ADMIN_PASSWORD=w \
        docker compose -f docker-compose.yml config --quiet
    echo "docker compose config: ok"
fi

python3 - <<'PY'
import yaml, sys

def load(path):
    with open(path) as f:
        return yaml.safe_load(f)

c = load("docker-compose.yml")
expected = {
    "gatelog": "8080:8080",
    "postgres": "127.0.0.1:5432:5432",
    "prometheus": "127.0.0.1:9090:9090",
    "grafana": "3000:3000",
}
services = c.get("services", {})
assert set(services) == set(expected), f"services are {sorted(services)}"
for name, port in expected.items():
    ports = services[name].get("ports", [])
    assert ports == [port], f"{name} publishes {ports}, expected [{port}]"
env = services["gatelog"]["environment"]
for key in ("GATELOG_AUTH__INGEST_KEYS", "GATELOG_AUTH__READ_KEYS", "DATABASE_URL"):
    assert ":?" in env[key], f"{key} must be required from .env, not defaulted"
vols = services["grafana"]["volumes"]
assert any(v.startswith("./dashboards/grafana:") for v in vols), vols
for v in c["services"]["prometheus"]["volumes"] + vols:
    src = v.split(":")[0]
    if src.startswith("./"):
        import os
        assert os.path.exists(src) or src == "./dashboards/grafana", f"{src} is missing"

prom = load("deploy/prometheus/prometheus.yml")
targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
assert targets == ["gatelog:8080"], targets
ds = load("deploy/grafana/provisioning/datasources/prometheus.yml")
assert ds["datasources"][0]["url"] == "http://prometheus:9090"
dash = load("deploy/grafana/provisioning/dashboards/gatelog.yml")
assert dash["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/gatelog"
print("compose, prometheus and grafana files: ok")
PY

if command -v systemd-analyze >/dev/null 2>&1; then
    # The binary is not installed here; every other finding is an error.
    out=$(systemd-analyze verify deploy/gatelog.service 2>&1 | grep -v "/usr/local/bin/gatelog is not executable" || true)
    if [ -n "$out" ]; then
        echo "$out"
        exit 1
    fi
    echo "systemd unit: ok"
fi
