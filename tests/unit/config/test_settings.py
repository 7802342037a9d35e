"""Settings: defaults, TOML file, MAILWARD_* overrides, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailward.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("MAILWARD_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_sqlite_under_var() -> None:
    settings = load_settings()
    assert settings.db_url.startswith("sqlite+aiosqlite:///")
    assert settings.db_url.endswith("/var/mailward.db")
    assert (settings.port_web, settings.port_mx, settings.port_submission) == (8080, 2525, 2587)
    priorities = [mx.priority for mx in settings.mx_hosts]
    assert priorities == sorted(priorities)


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MAILWARD_MX_HOSTS", "mailfilter2.example.net:20, MailFilter1.example.net:10"
    )
    monkeypatch.setenv("MAILWARD_HOSTING_HOST", "mail.example.org")
    monkeypatch.setenv("MAILWARD_PORT_IMAP", "10143")
    monkeypatch.setenv("MAILWARD_DATABASE_URL", "postgresql+asyncpg://u@db/mailward")
    monkeypatch.setenv("MAILWARD_BIND", "127.0.0.5")
    settings = load_settings()
    assert [(mx.host, mx.priority) for mx in settings.mx_hosts] == [
        ("mailfilter1.example.net", 10), ("mailfilter2.example.net", 20)]
    assert settings.hosting_host == "mail.example.org"
    assert settings.port_imap == 10143
    assert settings.db_url == "postgresql+asyncpg://u@db/mailward"
    assert settings.web_url == "http://127.0.0.5:8080"


def test_toml_file_and_env_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text(
        'data_dir = "/srv/mailward"\nport_web = 9000\nwebmail_host = "webmail.example.org"\n'
        'mx_hosts = [{host = "mx1.example.org", priority = 5}]\n'
    )
    monkeypatch.setenv("MAILWARD_CONFIG", str(config))
    monkeypatch.setenv("MAILWARD_PORT_WEB", "9100")
    settings = load_settings()
    assert settings.data_dir == Path("/srv/mailward")
    assert settings.port_web == 9100  # the environment wins over the file
    assert settings.webmail_host == "webmail.example.org"
    assert [(mx.host, mx.priority) for mx in settings.mx_hosts] == [("mx1.example.org", 5)]


def test_mailward_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "mailward.toml").write_text('hosting_host = "mail.example.com"\n')
    assert load_settings().hosting_host == "mail.example.com"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("MAILWARD_PORT_WEB", "70000", "port_web"),
     ("MAILWARD_MX_HOSTS", "mx1.example.net:high", "mx_hosts"),
     ("MAILWARD_HOSTING_HOST", "not a host", "hosting_host"),
     ("MAILWARD_CONFIG", "/nonexistent/mailward.toml", "MAILWARD_CONFIG")],
)
def test_bad_values_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, message: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_unknown_toml_key_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("hostng_host = 'typo.example.net'\n")
    monkeypatch.setenv("MAILWARD_CONFIG", str(config))
    with pytest.raises(ConfigError, match="hostng_host"):
        load_settings()


def test_mail_settings_are_checked_together() -> None:
    with pytest.raises(ConfigError, match="store_backend: 'postgresql' needs a PostgreSQL"):
        load_settings(store_backend="postgresql")
    with pytest.raises(ConfigError, match="tls_cert_file and tls_key_file: set both"):
        load_settings(tls_cert_file="/etc/ssl/mx.pem")
    settings = load_settings(dns_nameservers="127.0.0.2, 127.0.0.3:5353",
                             retry_first_seconds=60, retry_max_interval_seconds=600)
    assert settings.dns_nameservers == ["127.0.0.2", "127.0.0.3:5353"]
    assert [settings.retry_delay(n) for n in (1, 2, 3, 4, 5)] == [60, 120, 240, 480, 600]
    assert settings.node_name == settings.mx_hosts[0].host


def test_dnsbl_zones_come_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().dnsbl_zones == []
    monkeypatch.setenv("MAILWARD_DNSBL_ZONES", "zen.spamhaus.org, bl.test")
    assert load_settings().dnsbl_zones == ["zen.spamhaus.org", "bl.test"]


def test_plaintext_logins_are_for_loopback_only() -> None:
    assert load_settings(allow_plaintext_auth=True).allow_plaintext_auth
    with pytest.raises(ConfigError, match="allow_plaintext_auth: only when bind is a loopback"):
        load_settings(allow_plaintext_auth=True, bind="0.0.0.0")


def test_toml_tables_prefix_their_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text(
        'hosting_host = "mail.example.org"\n'
        '[dns]\nnameservers = ["127.0.0.2", "127.0.0.3:5353"]\nauthoritative_port = 5300\n'
        'recheck_interval_seconds = 3600\n'
        '[port]\nweb = 9000\n'
    )
    monkeypatch.setenv("MAILWARD_CONFIG", str(config))
    settings = load_settings()
    assert settings.dns_nameservers == ["127.0.0.2", "127.0.0.3:5353"]
    assert settings.dns_authoritative_port == 5300
    assert settings.dns_recheck_interval_seconds == 3600
    assert (settings.port_web, settings.hosting_host) == (9000, "mail.example.org")
    monkeypatch.setenv("MAILWARD_DNS_NAMESERVERS", "127.0.0.9")  # the environment still wins
    assert load_settings().dns_nameservers == ["127.0.0.9"]
    config.write_text("[dns]\nnamesevers = ['127.0.0.2']\n")
    with pytest.raises(ConfigError, match="dns_namesevers"):
        load_settings()
