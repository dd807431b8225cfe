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
    # the signing settings (issue 12)
    ({"EDOC_SIGNING__RATE_PER_TOKEN": "fast"}, "EDOC_SIGNING__RATE_PER_TOKEN"),
    ({"EDOC_SIGNING__RATE_PER_KEY": "-1"}, "EDOC_SIGNING__RATE_PER_KEY"),
    ({"EDOC_SIGNING__RATE_PER_KEY": "inf"}, "EDOC_SIGNING__RATE_PER_KEY"),
    ({"EDOC_SIGN_RATE_PER_TOKEN": "lots"}, "EDOC_SIGN_RATE_PER_TOKEN"),
    ({"EDOC_SIGNING__TSA_URL": "ftp://tsa.example"}, "EDOC_SIGNING__TSA_URL"),
    ({"EDOC_SIGNING__TSA_TIMEOUT": "0"}, "EDOC_SIGNING__TSA_TIMEOUT"),
    ({"EDOC_SIGNING__KEY_CHECK_INTERVAL": "0.5"}, "EDOC_SIGNING__KEY_CHECK_INTERVAL"),
    ({"EDOC_SIGNING__KEY_CHECK_INTERVAL": "nan"}, "EDOC_SIGNING__KEY_CHECK_INTERVAL"),
    ({"EDOC_SIGNING__KEY_EXPIRY_WARNING_DAYS": "-3"}, "EDOC_SIGNING__KEY_EXPIRY_WARNING_DAYS"),
    ({"EDOC_SIGNING__OTHER_CERTS": '["/nonexistent/ca.pem"]'}, "EDOC_SIGNING__OTHER_CERTS__0"),
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


def test_signing_settings_from_toml_and_env(tmp_path, monkeypatch):
    """Every signing setting is a validated setting: TOML ``[signing]``, ``EDOC_SIGNING__*``."""
    cfg = tmp_path / "gw.toml"
    cfg.write_text('[signing]\ntsa_url = "https://tsa.example/tsr"\ntsa_timeout = 20\n'
                   'rate_per_token = 5\nkey_check_interval = 0\nkey_expiry_warning_days = 45\n',
                   encoding="utf-8")
    d = load_settings(None).signing
    assert (d.tsa_url, d.rate_per_token, d.rate_per_key) == (None, 30.0, 60.0)
    assert (d.key_check_interval, d.key_expiry_warning_days) == (300.0, 30)
    monkeypatch.setenv("EDOC_SIGNING__RATE_PER_KEY", "7.5")
    s = load_settings(cfg).signing
    assert (s.tsa_url, s.tsa_timeout, s.rate_per_token, s.rate_per_key) == (
        "https://tsa.example/tsr", 20.0, 5.0, 7.5)
    assert (s.key_check_interval, s.key_expiry_warning_days) == (0.0, 45)


def test_older_rate_variables_still_work_and_the_new_ones_win(monkeypatch):
    monkeypatch.setenv("EDOC_SIGN_RATE_PER_TOKEN", "3")
    monkeypatch.setenv("EDOC_SIGN_RATE_PER_KEY", "4")
    s = load_settings(None).signing
    assert (s.rate_per_token, s.rate_per_key) == (3.0, 4.0)
    monkeypatch.setenv("EDOC_SIGNING__RATE_PER_KEY", "9")
    assert load_settings(None).signing.rate_per_key == 9.0
    proc = subprocess.run([sys.executable, "-m", "gateway", "check-config"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "EDOC_SIGN_RATE_PER_TOKEN is deprecated: use EDOC_SIGNING__RATE_PER_TOKEN" in proc.stderr


def _keys_file(tmp_path, services: str) -> str:
    p12 = tmp_path / "k.p12"
    p12.write_bytes(b"not opened by check-config")
    path = tmp_path / "keys.toml"
    path.write_text(f'{services}\n[keys.a]\nrole = "agency"\nowner = "X"\npath = "{p12}"\n',
                    encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("services, needle", [
    ('[services]\ntsa_url = "ftp://tsa"\n', "tsa_url: not an http(s) URL"),
    ('[services]\ntimeout = -1\n', "timeout"),
    ('[services]\ntimeout = "ten"\n', "timeout"),
    ('[services]\nother_certs = "ca.pem"\n', "other_certs"),
    ('[services]\ntsa = "http://tsa"\n', "unknown settings"),
    ('services = 5\n', "must be a table"),
])
def test_key_file_services_are_validated_by_check_config(services, needle, tmp_path,
                                                          monkeypatch):
    monkeypatch.setenv("EDOC_SIGNING__KEYS_FILE", _keys_file(tmp_path, services))
    proc = subprocess.run([sys.executable, "-m", "gateway", "check-config"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "EDOC_SIGNING__KEYS_FILE" in lines[0] and needle in lines[0]
    assert proc.stdout == ""


@pytest.mark.parametrize("setting, needle", [
    ('slot = "zero"', "slot must be a number >= 0"),
    ("slot = -1", "slot must be a number >= 0"),
    ("slot = true", "slot must be a number >= 0"),
    ("token_serial = 12", "token_serial must be a string"),
    ('raw_mechanism = "yes"', "raw_mechanism must be true or false"),
    ("chain = [1, 2]", "chain must be a list of file names"),
    ("key_label = {a = 1}", "key_label must be a string"),
])
def test_key_file_setting_types_are_the_key_files_fault(setting, needle, tmp_path):
    """A wrong TOML type in a key alias is KEY_CONFIG at load, never a fault of the document
    at the first signature (slot = "zero" used to reach PKCS#11 as a string)."""
    from signing.keys import KeyConfigError, load_key_config

    path = tmp_path / "keys.toml"
    path.write_text('[keys.a]\nrole = "agency"\nsource = "pkcs11"\nmodule = "/x.so"\n'
                    f'cert_label = "seal"\n{setting}\n', encoding="utf-8")
    with pytest.raises(KeyConfigError, match=needle) as err:
        load_key_config(path)
    assert err.value.code == "KEY_CONFIG"


def test_settings_win_over_the_key_file_services(tmp_path):
    from gateway.pki.signing_services import signing_services

    keys = _keys_file(tmp_path, '[services]\ntsa_url = "http://old-tsa"\ntimeout = 25\n'
                                'other_certs = ["ca.pem"]\n')
    old = signing_services(load_settings(None, signing={"keys_file": keys}).signing)
    assert (old.tsa_url, old.timeout) == ("http://old-tsa", 25.0)
    assert old.other_certs == (tmp_path.resolve() / "ca.pem",)
    new = signing_services(load_settings(None, signing={
        "keys_file": keys, "tsa_url": "https://new-tsa", "tsa_timeout": 5,
        "other_certs": []}).signing)
    assert (new.tsa_url, new.timeout, new.other_certs) == ("https://new-tsa", 5.0, ())
