"""What `mailward serve` prints at start."""

from __future__ import annotations

from mailward.config import load_settings
from mailward.server.run import banner


def test_banner_names_listeners_hosts_and_hides_db_password(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(
        data_dir=tmp_path,
        database_url="postgresql+asyncpg://mailward:s3cret@db.example.net/mailward",
        mx_hosts="mailfilter1.example.org:10,mailfilter2.example.org:20",
        hosting_host="mail.example.org",
    )
    text = "\n".join(banner(settings, {"web": "http://127.0.0.1:8080"}))
    assert "web      http://127.0.0.1:8080" in text
    assert "mailfilter1.example.org (10), mailfilter2.example.org (20)" in text
    assert "hosting host mail.example.org" in text
    assert "s3cret" not in text and "db.example.net" in text
    assert "not implemented yet" not in text


def test_banner_points_at_the_first_login_while_the_file_exists(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(data_dir=tmp_path)
    assert "first operator login" not in "\n".join(banner(settings, {}))
    (tmp_path / "initial-operator.txt").write_text("login: admin\n")
    assert f"see {tmp_path / 'initial-operator.txt'}" in "\n".join(banner(settings, {}))
