"""``/domains/{name}/filter`` and ``/addresses/{email}/filter``: spam filter settings —
thresholds, subject tag and DMARC handling, allow and block lists, "this is spam / this is
not spam" training. Scoped by the services: another account's domain or address is a 404.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

import msgspec
from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from mailward.directory import Actor, InvalidInput
from mailward.filter.learning import Learnt
from mailward.filter.settings import FIELDS, FilterSettingsService, PolicyView, SenderRuleView
from mailward.web.api.schemas import Request, errors
from mailward.web.context import ActorDep, ServicesDep

DmarcAction = Literal["reject", "quarantine", "score"]
BulkAction = Literal["deliver", "tag", "junk"]
VirusAction = Literal["reject", "quarantine"]


class PolicyChange(Request):
    """Any of the settings; ``null`` inherits the domain's (or the default) again,
    a missing field stays as it is."""

    tag_score: float | msgspec.UnsetType | None = msgspec.UNSET
    quarantine_score: float | msgspec.UnsetType | None = msgspec.UNSET
    reject_score: float | msgspec.UnsetType | None = msgspec.UNSET
    subject_tag: str | msgspec.UnsetType | None = msgspec.UNSET
    dmarc_reject: DmarcAction | msgspec.UnsetType | None = msgspec.UNSET
    bulk_action: BulkAction | msgspec.UnsetType | None = msgspec.UNSET
    bulk_score: float | msgspec.UnsetType | None = msgspec.UNSET
    virus_action: VirusAction | msgspec.UnsetType | None = msgspec.UNSET


class SenderAdd(Request):
    sender: str
    action: Literal["allow", "block"]


class TrainRequest(Request):
    """A correction: the message as text (``message``) or, for 8-bit mail, base64
    (``message_base64``); exactly one of them."""

    verdict: Literal["spam", "ham"]
    message: str | None = None
    message_base64: str | None = None


def changes_of(data: PolicyChange) -> dict[str, object]:
    """The fields the body names (``None`` = inherit); at least one."""
    changes = {name: getattr(data, name) for name in FIELDS
               if getattr(data, name) is not msgspec.UNSET}
    if not changes:
        raise InvalidInput(f"nothing to change: give one of {', '.join(FIELDS)}")
    return changes


def message_of(data: TrainRequest) -> bytes:
    """The raw message of a training request."""
    if (data.message is None) == (data.message_base64 is None):
        raise InvalidInput('give exactly one of "message" or "message_base64"')
    if data.message is not None:
        try:
            return data.message.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise InvalidInput("message: not valid text (use message_base64)") from None
    try:
        return base64.b64decode(data.message_base64 or "", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("message_base64: not valid base64") from None


async def _learn(service: FilterSettingsService, actor: Actor, data: TrainRequest, *,
                 domain: str | None = None, address: str | None = None) -> Learnt:
    return await service.train(actor, message_of(data), spam=data.verdict == "spam",
                               domain=domain, address=address)


TRAIN_DESCRIPTION = (
    '"This is spam" / "this is not spam": `{"verdict": "spam"|"ham", "message": "<raw '
    'RFC 5322 text>"}` (or `"message_base64"` for 8-bit mail). The domain\'s model learns '
    "it until it is sure (`after` is its spam probability for the message afterwards).")
SENDERS_DESCRIPTION = (
    "A sender is an address, or a whole domain (`example.org`, `@example.org` or "
    "`*@example.org`). A sender already on the same list (either action) is a 409.")


class DomainFilterController(Controller):
    path = "/domains/{name:str}/filter"
    tags = ["filter"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(summary="A domain's spam filter settings (own values and those in effect)",
         responses=errors(404))
    async def get_policy(self, name: FromPath[str], actor: ActorDep,
                         services: ServicesDep) -> PolicyView:
        return await services.filter.get_policy(actor, domain=name)

    @put(summary="Change a domain's spam filter settings",
         description="Any of the five fields; `null` goes back to the default. The "
         "thresholds in effect must rise: tag ≤ quarantine ≤ reject (else 400).",
         responses=errors(404))
    async def set_policy(self, name: FromPath[str], data: JSONBody[PolicyChange],
                         actor: ActorDep, services: ServicesDep) -> PolicyView:
        return await services.filter.set_policy(actor, changes_of(data), domain=name)

    @get("/senders", summary="The domain's allow/block list and all its addresses' lists",
         responses=errors(404))
    async def list_senders(self, name: FromPath[str], actor: ActorDep,
                           services: ServicesDep) -> list[SenderRuleView]:
        return await services.filter.list_senders(actor, domain=name)

    @post("/senders", summary="Allow or block a sender for the whole domain",
          description=SENDERS_DESCRIPTION, responses=errors(404, 409))
    async def add_sender(self, name: FromPath[str], data: JSONBody[SenderAdd],
                         actor: ActorDep, services: ServicesDep) -> SenderRuleView:
        return await services.filter.add_sender(actor, data.sender, data.action, domain=name)

    @delete("/senders/{sender:str}", status_code=HTTP_200_OK,
            summary="Take a sender off the domain's list", responses=errors(404))
    async def remove_sender(self, name: FromPath[str], sender: FromPath[str], actor: ActorDep,
                            services: ServicesDep) -> SenderRuleView:
        return await services.filter.remove_sender(actor, sender, domain=name)

    @post("/train", status_code=HTTP_200_OK, summary="Teach the domain's model spam or ham",
          description=TRAIN_DESCRIPTION, responses=errors(404))
    async def train(self, name: FromPath[str], data: JSONBody[TrainRequest], actor: ActorDep,
                    services: ServicesDep) -> Learnt:
        return await _learn(services.filter, actor, data, domain=name)


class AddressFilterController(Controller):
    path = "/addresses/{email:str}/filter"
    tags = ["filter"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(summary="An address's spam filter settings (own values and those in effect)",
         responses=errors(404))
    async def get_policy(self, email: FromPath[str], actor: ActorDep,
                         services: ServicesDep) -> PolicyView:
        return await services.filter.get_policy(actor, address=email)

    @put(summary="Change an address's spam filter settings",
         description="Any of the five fields; `null` inherits the domain's value again. The "
         "thresholds in effect must rise: tag ≤ quarantine ≤ reject (else 400).",
         responses=errors(404))
    async def set_policy(self, email: FromPath[str], data: JSONBody[PolicyChange],
                         actor: ActorDep, services: ServicesDep) -> PolicyView:
        return await services.filter.set_policy(actor, changes_of(data), address=email)

    @get("/senders", summary="The address's own allow/block list", responses=errors(404))
    async def list_senders(self, email: FromPath[str], actor: ActorDep,
                           services: ServicesDep) -> list[SenderRuleView]:
        return await services.filter.list_senders(actor, address=email)

    @post("/senders", summary="Allow or block a sender for this address",
          description=SENDERS_DESCRIPTION, responses=errors(404, 409))
    async def add_sender(self, email: FromPath[str], data: JSONBody[SenderAdd],
                         actor: ActorDep, services: ServicesDep) -> SenderRuleView:
        return await services.filter.add_sender(actor, data.sender, data.action,
                                                 address=email)

    @delete("/senders/{sender:str}", status_code=HTTP_200_OK,
            summary="Take a sender off the address's list", responses=errors(404))
    async def remove_sender(self, email: FromPath[str], sender: FromPath[str],
                            actor: ActorDep, services: ServicesDep) -> SenderRuleView:
        return await services.filter.remove_sender(actor, sender, address=email)

    @post("/train", status_code=HTTP_200_OK,
          summary="Teach the address's domain's model spam or ham",
          description=TRAIN_DESCRIPTION, responses=errors(404))
    async def train(self, email: FromPath[str], data: JSONBody[TrainRequest],
                    actor: ActorDep, services: ServicesDep) -> Learnt:
        return await _learn(services.filter, actor, data, address=email)
