"""``mailward account|user|token``: customer accounts, panel/API users, API tokens."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mailward.directory import Actor, Directory
from mailward.directory.users import UserLockView
from mailward.directory.views import UserView

from .output import esc, out, print_json, report, usage_error
from .prompt import PasswordStdinOption, new_password
from .runner import JsonOption, YesOption, run_directory

account_app = typer.Typer(help="Customer accounts (operator only).", no_args_is_help=True)
user_app = typer.Typer(help="Users who log in to the panel and the API.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for the JSON API.", no_args_is_help=True)
reseller_app = typer.Typer(help="Resellers: they manage their own customers' accounts.",
                           no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Account name.")]


ResellerOption = Annotated[
    str | None,
    typer.Option("--reseller", "-r", metavar="NAME", help="The reseller it belongs to.",
                 show_default=False),
]


@account_app.command("add")
def account_add(name: NameArg, reseller: ResellerOption = None,
                json_: JsonOption = False) -> None:
    """Create a customer account (with --reseller, one that reseller manages)."""
    view = run_directory(lambda d, a: d.accounts.create(a, name, reseller=reseller))
    report(view, f"added account [bold]{esc(view.name)}[/]", json_)


@reseller_app.command("add")
def reseller_add(name: Annotated[str, typer.Argument(metavar="NAME", help="Reseller name.")],
                 json_: JsonOption = False) -> None:
    """Create a reseller (then: user add LOGIN --reseller NAME, account add --reseller)."""
    view = run_directory(lambda d, a: d.resellers.create(a, name))
    report(view, f"added reseller [bold]{esc(view.name)}[/]", json_)


@reseller_app.command("list")
def reseller_list(json_: JsonOption = False) -> None:
    """List resellers and how many accounts each has."""
    views = run_directory(lambda d, a: d.resellers.list(a))
    if json_:
        print_json(views)
        return
    table = Table("Reseller", "Accounts", "Created")
    for view in views:
        table.add_row(esc(view.name), str(view.accounts),
                      view.created_at.strftime("%Y-%m-%d %H:%M"))
    out().print(table)


@account_app.command("list")
def account_list(json_: JsonOption = False) -> None:
    """List customer accounts."""
    views = run_directory(lambda d, a: d.accounts.list(a))
    if json_:
        print_json(views)
        return
    if not views:
        out().print("no accounts")
        return
    table = Table("Account", "Created")
    for view in views:
        table.add_row(esc(view.name), view.created_at.strftime("%Y-%m-%d %H:%M"))
    out().print(table)


@account_app.command("delete")
def account_delete(name: NameArg, json_: JsonOption = False) -> None:
    """Delete an account that owns no domains (its users go with it)."""
    run_directory(lambda d, a: d.accounts.delete(a, name))
    report({"deleted": name}, f"deleted account [bold]{esc(name)}[/]", json_)


@user_app.command("add")
def user_add(
    login: Annotated[str, typer.Argument(help="Login name (stored lower-case).")],
    account: Annotated[
        str | None,
        typer.Option(
            "--account",
            "-a",
            metavar="NAME",
            help="Make the user an admin of this account; without it, an operator.",
            show_default=False,
        ),
    ] = None,
    reseller: ResellerOption = None,
    password_stdin: PasswordStdinOption = False,
    json_: JsonOption = False,
) -> None:
    """Create a user: an operator, with --account an admin of that account, with --reseller
    a user of that reseller."""
    password, repeat = new_password(password_stdin)

    async def create(services: Directory, actor: Actor) -> UserView:
        return await services.accounts.create_user(
            actor, login, password, account=account, reseller=reseller, repeat=repeat
        )

    view = run_directory(create)
    if json_:
        print_json(view)
    elif reseller is not None:
        out().print(f"added user [bold]{esc(view.login)}[/] of reseller [bold]{esc(reseller)}[/]")
    elif view.account is None:
        out().print(f"added operator user [bold]{esc(view.login)}[/]")
    else:
        out().print(
            f"added user [bold]{esc(view.login)}[/], admin of account [bold]{esc(view.account)}[/]"
        )


LoginArg = Annotated[str, typer.Argument(metavar="LOGIN", help="The user's login.")]


@user_app.command("list")
def user_list(account: Annotated[
        str | None, typer.Option("--account", "-a", metavar="NAME", show_default=False,
                                 help="Only this account's admins.")] = None,
              json_: JsonOption = False) -> None:
    """List the users: operators, resellers' users and account admins."""
    users = run_directory(lambda d, a: d.users.list(a, account))
    if json_:
        print_json(users)
        return
    table = Table("Login", "Role", "Account")
    for user in users:
        table.add_row(esc(user.login), user.role, esc(user.account or "-"))
    out().print(table)


RevokeTokensOption = Annotated[
    bool | None,
    typer.Option("--revoke-tokens/--keep-tokens",
                 help="Revoke the user's API tokens (default: revoke on a reset of another "
                      "user's password, keep when it is your own).", show_default=False),
]


@user_app.command("password")
def user_password(login: LoginArg, password_stdin: PasswordStdinOption = False,
                  revoke_tokens: RevokeTokensOption = None, json_: JsonOption = False) -> None:
    """Set a new password for a user (typed twice), e.g. one who forgot theirs; a reset
    revokes their API tokens unless --keep-tokens."""
    run_directory(lambda d, a: d.users.lock_state(a, login))  # not found: before the prompt
    password, repeat = new_password(password_stdin, label="New password")
    view = run_directory(lambda d, a: d.users.set_password(a, login, password, repeat=repeat,
                                                           revoke_tokens=revoke_tokens))
    report(view, f"password changed for [bold]{esc(view.login)}[/]; "
           f"{view.tokens_revoked} API token(s) revoked", json_)


@user_app.command("unlock")
def user_unlock(login: LoginArg, json_: JsonOption = False) -> None:
    """Lift the lock that failed panel/API logins put on a user (on every node)."""

    async def unlock(d: Directory, a: Actor) -> tuple[UserLockView, UserLockView]:
        return await d.users.lock_state(a, login), await d.users.unlock(a, login)

    was, view = run_directory(unlock)
    report(view, f"logins of [bold]{esc(view.login)}[/] unlocked" if was.locked_seconds
           else f"logins of [bold]{esc(view.login)}[/] were not locked", json_)


@user_app.command("delete")
def user_delete(login: LoginArg, yes: YesOption = False, json_: JsonOption = False) -> None:
    """Delete a user; their API tokens go with them and their panel sessions end."""
    if json_ and not yes:
        usage_error("--json needs --yes (there is no one to answer the question)")
    if not yes:
        typer.confirm(f"Delete user {login.strip()}?", abort=True, err=True)
    view = run_directory(lambda d, a: d.users.delete(a, login))
    report(view, f"deleted user [bold]{esc(view.login)}[/]", json_)


@token_app.command("create")
def token_create(
    login: Annotated[str, typer.Argument(help="The user the token acts as.")],
    name: Annotated[str, typer.Option("--name", help="A label to recognise the token by.")] = "api",
    expires_days: Annotated[
        int | None, typer.Option("--expires-days", metavar="N", show_default=False,
                                 help="The token stops working N days from now.")] = None,
    json_: JsonOption = False,
) -> None:
    """Create an API token; it is printed once and only its hash is stored."""
    view = run_directory(lambda d, a: d.tokens.create(a, login, name, expires_days))
    if json_:
        print_json(view)
        return
    until = f", valid until {view.expires_at:%Y-%m-%d %H:%M} UTC" if view.expires_at else ""
    typer.echo(
        f"API token {view.name!r} for {view.login}{until} (shown only now; store it safely):",
        err=True,
    )
    typer.echo(view.token)


@token_app.command("list")
def token_list(
    login: Annotated[
        str | None, typer.Option("--login", help="Only this user's tokens.", show_default=False)
    ] = None,
    json_: JsonOption = False,
) -> None:
    """List API tokens (never their secrets) with when they were last used."""
    views = run_directory(lambda d, a: d.tokens.list(a, login))
    if json_:
        print_json(views)
        return
    if not views:
        out().print("no tokens")
        return
    table = Table("Id", "Name", "User", "Created", "Last used", "Expires")
    for view in views:
        used = view.last_used_at.strftime("%Y-%m-%d %H:%M") if view.last_used_at else "never"
        expires = view.expires_at.strftime("%Y-%m-%d %H:%M") if view.expires_at else "never"
        table.add_row(str(view.id), esc(view.name), esc(view.login),
                      view.created_at.strftime("%Y-%m-%d %H:%M"), used, expires)
    out().print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(metavar="ID", help="The id `token list` shows.")],
    json_: JsonOption = False,
) -> None:
    """Revoke an API token: requests with it get 401 from now on."""
    run_directory(lambda d, a: d.tokens.revoke(a, token_id))
    report({"revoked": token_id}, f"revoked token {token_id}", json_)
