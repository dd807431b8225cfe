import subprocess
import sys

import pytest

from gateway.config import ConfigError, load_settings


def test_env_overrides_toml(tmp_path, monkeypatch):
    cfg = tmp_path / "gw.toml"
    cfg.write_text('http_port = 9001\n[bus]\nprefix = "fromtoml"\n', encoding="utf-8")
    monkeypatch.setenv("EDOC_HTTP_PORT", "9002")
    s = load_settings(cfg)
    assert s.http_port == 9002
    assert s.bus.prefix == "fromtoml"


def test_secret_from_file(tmp_path, monkeypatch):
    secret = tmp_path / "dsn"
    secret.write_text("postgresql://u:pw@db.example/edoc\n", encoding="utf-8")
    monkeypatch.setenv("EDOC_DATABASE_URL_FILE", str(secret))
    s = load_settings()
    assert s.database_url.get_secret_value() == "postgresql://u:pw@db.example/edoc"
    assert "pw" not in repr(s)


def test_axis_secret_file_and_unknown_axis(tmp_path):
    secret = tmp_path / "axis.secret"
    secret.write_text("s3cr3t", encoding="utf-8")
    s = load_settings(None, axis=[{"name": "vdxp", "endpoint": "http://axis.test", "system_id": "x",
                                   "secret_file": str(secret), "organ_id": "000.00.01.H99"}])
    assert s.axis[0].secret.get_secret_value() == "s3cr3t"
    with pytest.raises(ConfigError, match="unknown axis connection"):
        load_settings(None, agencies=[{"code": "A", "axis": "nope"}])


@pytest.mark.parametrize("env, needle", [
    ({"EDOC_HTTP_PORT": "eighty"}, "EDOC_HTTP_PORT"),
    ({"EDOC_AMQP_URL": "http://broker"}, "EDOC_AMQP_URL"),
    ({"EDOC_BUS__PREFIX": "has space"}, "EDOC_BUS__PREFIX"),
    ({"EDOC_NOT_A_SETTING": "1"}, None),
])
def test_bad_configuration_is_one_line(env, needle, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    proc = subprocess.run([sys.executable, "-m", "gateway", "check-config"],
                          capture_output=True, text=True, timeout=60)
    if needle is None:  # unknown environment variables are ignored, not fatal
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_unreachable_database_is_one_line(monkeypatch):
    monkeypatch.setenv("EDOC_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
    proc = subprocess.run([sys.executable, "-m", "gateway", "migrate"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_unreachable_broker_at_serve_is_one_line(monkeypatch, database_url):
    monkeypatch.setenv("EDOC_DATABASE_URL", database_url)
    monkeypatch.setenv("EDOC_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/")
    proc = subprocess.run([sys.executable, "-m", "gateway", "serve", "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "RabbitMQ" in proc.stderr
    assert "Traceback" not in proc.stderr
