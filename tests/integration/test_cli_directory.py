"""The ``mailward`` CLI: accounts, users, tokens, domains, and the documented ``--json`` shapes."""

from __future__ import annotations

from cli_helpers import WIDE, Cli, as_json, documented_shapes, error_line, keys_of, run_directory
from sqlalchemy import func, update

from mailward.app import Services
from mailward.config import Settings
from mailward.db.models import ApiToken
from mailward.directory.users import login_key

# -- accounts, users, tokens ------------------------------------------------------------


def test_account_commands(cli: Cli) -> None:
    assert cli("account", "add", "Acme").stdout == "added account Acme\n"
    duplicate = cli("account", "add", "Acme", code=1)
    assert duplicate.stderr == "error: account 'Acme' already exists\n"
    created = as_json(cli("account", "add", "  Globex   Corp ", "--json"))
    assert set(created) == {"id", "name", "created_at"} and created["name"] == "Globex Corp"

    listed = as_json(cli("account", "list", "--json"))
    assert [a["name"] for a in listed] == ["Acme", "Globex Corp"]
    assert "Globex Corp" in cli("account", "list", env=WIDE).stdout

    cli("domain", "add", "acme.example", "--account", "Acme")
    refused = cli("account", "delete", "Acme", code=1)
    assert refused.stderr == "error: account 'Acme' still owns 1 domain(s)\n"
    cli("domain", "delete", "acme.example", "--yes")
    assert as_json(cli("account", "delete", "Acme", "--json")) == {"deleted": "Acme"}
    assert cli("account", "delete", "Acme", code=1).stderr == "error: no account 'Acme'\n"
    assert [a["name"] for a in as_json(cli("account", "list", "--json"))] == ["Globex Corp"]


def test_users_and_tokens(cli: Cli, settings: Settings) -> None:
    cli("account", "add", "Acme")
    added = cli("user", "add", "Ops", "--password-stdin", input="Secret-pass1\n")
    assert added.stdout == "added operator user ops\n"

    mismatch = cli("user", "add", "alice", "--account", "Acme",
                   input="Secret-pass1\nSecret-pass2\n", code=1)
    assert error_line(mismatch) == "error: passwords do not match"
    weak = cli("user", "add", "alice", "--password-stdin", input="short\n", code=1)
    assert weak.stderr == "error: password must be at least 8 characters\n"
    alice = as_json(cli("user", "add", "alice", "--account", "Acme", "--json",
                        input="Rabbit-hole9\nRabbit-hole9\n"))
    assert alice == {"id": alice["id"], "login": "alice", "role": "account-admin",
                     "account": "Acme"}
    assert "Rabbit-hole9" not in cli("account", "list").stdout
    actor = run_directory(settings, lambda d: d.accounts.authenticate("alice", "Rabbit-hole9"))
    assert actor is not None and not actor.is_operator

    plain = cli("token", "create", "ops")
    token = plain.stdout.strip()
    assert token.startswith("mw_") and len(plain.stdout.splitlines()) == 1
    assert "shown only now" in plain.stderr
    assert run_directory(settings, lambda d: d.tokens.actor_for(token)).is_operator
    named = as_json(cli("token", "create", "alice", "--name", "backup", "--json"))
    assert set(named) == {"id", "name", "login", "token", "expires_at"}
    assert named["expires_at"] is None
    assert (named["name"], named["login"]) == ("backup", "alice")
    assert cli("token", "create", "nobody", code=1).stderr == "error: no user 'nobody'\n"

    listed = as_json(cli("token", "list", "--json"))
    assert [(t["login"], t["name"]) for t in listed] == [("ops", "api"), ("alice", "backup")]
    assert all(set(t) == {"id", "name", "login", "created_at", "last_used_at", "expires_at"}
               for t in listed)
    assert "backup" in cli("token", "list", "--login", "alice").stdout
    assert cli("token", "revoke", str(named["id"])).stdout == f"revoked token {named['id']}\n"
    assert run_directory(settings, lambda d: d.tokens.actor_for(named["token"])) is None
    assert run_directory(settings, lambda d: d.tokens.actor_for(token)) is not None
    gone = cli("token", "revoke", str(named["id"]), code=1)
    assert gone.stderr == f"error: no token {named['id']}\n"

    # a token may be given a lifetime; once it is over the token is refused like a revoked one
    brief = cli("token", "create", "alice", "--expires-days", "30")
    assert ", valid until " in brief.stderr
    short = brief.stdout.strip()
    assert run_directory(settings, lambda d: d.tokens.actor_for(short)) is not None
    expires = [t["expires_at"] for t in as_json(cli("token", "list", "--json"))
               if t["login"] == "alice"]
    assert len(expires) == 1 and expires[0] is not None
    assert "never" in cli("token", "list", "--login", "ops", env=WIDE).stdout

    async def expire(d: Services) -> None:
        async with d.db.session() as session, session.begin():
            await session.execute(update(ApiToken).values(expires_at=func.now()))

    run_directory(settings, expire)
    assert run_directory(settings, lambda d: d.tokens.actor_for(short)) is None
    assert error_line(cli("token", "create", "alice", "--expires-days", "0", code=1)) == (
        "error: a token can live 1 to 3650 days")


# -- domains ----------------------------------------------------------------------------


def test_user_list_password_unlock_delete(cli: Cli, settings: Settings) -> None:
    cli("account", "add", "Acme")
    cli("user", "add", "ops", "--password-stdin", input="Secret-pass1\n")
    cli("user", "add", "alice", "--account", "Acme", "--password-stdin",
        input="Rabbit-hole9\n")
    assert [{k: v for k, v in user.items() if k != "id"}
            for user in as_json(cli("user", "list", "--json"))] == [
        {"login": "alice", "role": "account-admin", "account": "Acme"},
        {"login": "ops", "role": "operator", "account": None}]
    table = cli("user", "list", "--account", "Acme").stdout
    assert "alice" in table and "ops" not in table

    changed = cli("user", "password", "alice", input="Looking-glass7\nLooking-glass7\n")
    assert changed.stdout.endswith("password changed for alice; 0 API token(s) revoked\n")
    assert run_directory(settings, lambda d: d.accounts.authenticate("alice", "Looking-glass7"))
    assert error_line(cli("user", "password", "nobody", code=1)) == "error: no user 'nobody'"

    async def lock(d: Services) -> None:
        for _ in range(settings.auth_failures_per_window):
            await d.users.limiter.attempt("ip:192.0.2.9", login_key("alice"))

    run_directory(settings, lock)
    assert cli("user", "unlock", "alice").stdout == "logins of alice unlocked\n"
    assert as_json(cli("user", "unlock", "alice", "--json")) == {"login": "alice",
                                                                 "locked_seconds": 0}
    assert cli("user", "unlock", "alice").stdout == "logins of alice were not locked\n"

    assert error_line(cli("user", "delete", "ops", "--yes", code=1)) == (
        "error: the last operator cannot be deleted")
    assert "--json needs --yes" in cli("user", "delete", "alice", "--json", code=2).stderr
    cli("user", "delete", "alice", input="n\n", code=1)  # asked, and not confirmed
    assert as_json(cli("user", "delete", "alice", "--yes", "--json"))["login"] == "alice"
    assert [u["login"] for u in as_json(cli("user", "list", "--json"))] == ["ops"]


def test_domain_commands(tenants: Cli) -> None:
    cli = tenants
    idn = as_json(cli("domain", "add", "Bücher.Example", "--account", "Globex", "--json"))
    assert idn == {
        "name": "xn--bcher-kva.example", "display_name": "bücher.example", "account": "Globex",
        "hosting": False, "created_at": idn["created_at"],
        "verified": True, "verified_by": "operator", "verified_at": idn["verified_at"],
        "verification_txt": idn["verification_txt"],
    }
    taken = cli("domain", "add", "ACME.example.", "--account", "Globex", code=1)
    assert taken.stderr == "error: domain acme.example is already in use\n"
    missing = cli("domain", "add", "new.example", "--account", "Nope", code=1)
    assert missing.stderr == "error: no account 'Nope'\n"

    everything = as_json(cli("domain", "list", "--json"))
    assert [(d["name"], d["account"], d["hosting"]) for d in everything] == [
        ("acme.example", "Acme", True), ("globex.example", "Globex", False),
        ("xn--bcher-kva.example", "Globex", False),
    ]
    globex = as_json(cli("domain", "list", "--account", "Globex", "--json"))
    assert [d["name"] for d in globex] == ["globex.example", "xn--bcher-kva.example"]
    assert "bücher.example (xn--bcher-kva.example)" in cli("domain", "list", env=WIDE).stdout
    cli("address", "add", "--list", "filter", input="Info@Bücher.example\n")
    found = as_json(cli("address", "list", "--domain", "BÜCHER.example.", "--json"))
    assert [a["email"] for a in found["items"]] == ["info@xn--bcher-kva.example"]

    assert cli("domain", "hosting", "globex.example", "on").stdout == (
        "hosting on for globex.example\n"
    )
    assert as_json(cli("domain", "hosting", "acme.example", "OFF", "--json"))["hosting"] is False
    cli("domain", "hosting", "acme.example", "maybe", code=2)
    refused = cli("domain", "hosting", "acme.example", "on", "--account", "Acme", code=2)
    assert "--account" in refused.stderr  # operator-only commands take no --account

    cli("address", "add", "--list", "filter", input="info@globex.example\n")
    busy = cli("domain", "delete", "globex.example", "--yes", code=1)
    assert busy.stderr == "error: domain globex.example still has 1 address(es)\n"
    declined = cli("domain", "delete", "globex.example", "--force", input="n\n", code=1)
    assert "Delete domain globex.example and its 1 address(es)?" in declined.stderr
    cli("domain", "delete", "globex.example", "--force", "--json", code=2)
    deleted = as_json(cli("domain", "delete", "globex.example", "--force", "--yes", "--json"))
    assert deleted == {"domain": "globex.example", "deleted_addresses": 1}
    accepted = cli("domain", "delete", "bücher.example", "--force", input="y\n")
    assert accepted.stdout.endswith(
        "deleted domain xn--bcher-kva.example and its 1 address(es)\n"
    )
    assert [d["name"] for d in as_json(cli("domain", "list", "--json"))] == ["acme.example"]


# -- the documented --json shapes -------------------------------------------------------

def test_json_shapes_match_docs(tenants: Cli) -> None:
    cli = tenants
    actual = {
        "account": as_json(cli("account", "add", "Initech", "--json")),
        "account-deleted": as_json(cli("account", "delete", "Initech", "--json")),
        "user": as_json(cli("user", "add", "bob", "-a", "Acme", "--password-stdin", "--json",
                            input="Bob-pass99\n")),
        "token": as_json(cli("token", "create", "bob", "--json")),
        "token-info": as_json(cli("token", "list", "--json"))[0],
        "domain": as_json(cli("domain", "add", "initech.example", "-a", "Acme", "--json")),
        "server": as_json(cli("servers", "add", "initech.example", "mx.initech.example",
                              "-p", "10", "--json")),
        "bulk": as_json(cli("address", "add", "-l", "filter", "--json", code=1,
                            input="x@initech.example\nnobody@else.example\n")),
        "address": as_json(cli("address", "show", "x@initech.example", "--json")),
        "page": as_json(cli("address", "list", "--json")),
        "address-deleted": as_json(cli("address", "delete", "x@initech.example", "--yes",
                                       "--json")),
        "domain-deleted": as_json(cli("domain", "delete", "initech.example", "--yes",
                                      "--json")),
        "init": as_json(cli("init", "--json")),
        "check": as_json(cli("init", "--check", "--json")),
    }
    documented = documented_shapes("\n## JSON shapes")
    assert sorted(documented) == sorted(actual)
    for name, example in documented.items():
        assert keys_of(actual[name]) == keys_of(example), name
    assert keys_of(actual["bulk"]["results"][0]) == keys_of(documented["bulk"]["results"][0])
    assert keys_of(actual["page"]["items"][0]) == keys_of(documented["address"])
