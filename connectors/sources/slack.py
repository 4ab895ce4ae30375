"""Slack channels as a source: the messages, threads and files of the public and private channels the Citewise app
was added to, read over the Web API with the app's bot token (xoxb-).

What becomes a document, and why:

- a thread (a message with replies): one document, the parent and every reply in order, each under its author's
  name, as Onyx and most Slack search tools do: a thread is one conversation and reads best whole. External id
  `<channel>/thread/<parent ts>`; its URL is the parent's permalink with `thread_ts`, which opens the thread.
- messages without replies: one document per channel and UTC day, `<channel>/day/<YYYY-MM-DD>`. A message of its
  own ("thanks", "+1", "see above") is too short to retrieve or to cite; a day of a channel's talk keeps its
  context, and a channel makes at most one such document a day however chatty it is. Its URL is the permalink of
  the day's first message.
- files shared in a channel (in a message or a thread reply) whose type a parser reads (connectors.parsing):
  `<channel>/file/<file id>`, downloaded from `url_private_download` with the bot token (only ever sent to the
  API's own host or files.slack.com), after the sync has checked the listed `size` against its limit; a download
  longer than listed is cut off. The same file shared in two channels is two documents, each with its channel's
  readers.

Calls (https://docs.slack.dev/reference/methods): `auth.test` (the token's workspace and URL: no scope needed, so
`team:read` is not asked for), `conversations.list` (types=public_channel,private_channel, exclude_archived; a
channel is read only when `is_member`, i.e. the app was added to it), `conversations.history` (newest first, by
`cursor`, from `oldest` and up to `latest` on a resume), `conversations.replies` (one thread), `conversations.
members`, `users.list` and `users.info` (names, emails, guests, Slack Connect partners; cached for the run).
Every call is a form POST with `limit`, the token in the Authorization header. Throttled calls (HTTP 429) wait
exactly the `Retry-After` Slack asks for (bounded), server errors and timeouts back off; a bounded number of
attempts, then the call fails. `sleep` and `clock` are injectable so tests never wait.

Who may read (see `list_groups`): every document of channel C carries one principal, `slack:<team>:channel:<C>`,
whose members are synced by the group run: for a private channel, its members; for a public one, the workspace
principal `slack:<team>:workspace` (the workspace's full members: no guests, bots, deactivated users or another
organisation's users) plus any guest or Slack Connect member of the channel. A member is named by
`email:<address>` (lower-cased) when Slack shows an email for a member of this workspace, and always by
`slack:<team>:user:<id>`, the identity the Slack bot links (bot/services.py). A Slack Connect partner's users
(another `team_id`) are named only by the latter, never by email, which their own admins choose: they read
through Citewise only once an admin links that identity; one users.info cannot describe is left out and counted.
Membership changes, channels turned private or public, and guests added or removed therefore need no re-index:
the next group run applies them. A document whose channel is no longer read (the app left it, it was archived
or excluded) has unknown permissions (visible to nobody); its group is dropped at the next group run, so it is
invisible at once, and the next full run prunes it.

Incremental sync (`changes`): the Cursor holds, per channel, the newest message `ts` seen and the documents made
from messages of the look-back window (`lookback_days`, whole UTC days). conversations.history shows messages as
they are now, and there is no change feed for edits and deletions without the Events API, so each incremental
run reads each channel from the start of the look-back window (or from its newest message, if older): edited
messages (`edited`) and threads there are read again (every thread whose parent is in the window has its
replies re-read, so an edited or deleted reply is seen), a day left empty or a thread gone becomes Deleted, and
a reply "also sent to the channel" (thread_broadcast) makes its thread be read again however old it is. Replies
to a thread older than the window (not broadcast), and edits older than it, are picked up by the next full run.
A channel the cursor does not name (the app joined it since) is read whole, alone: the others go on from their
own cursors.

Checkpoints: after every history page, naming the channel and a `latest` bound: the end of the UTC day of the
page's oldest message, so that a resumed run re-reads at most that day's messages (a day's document must be built
from all of them) and none of the pages before it; channels finished before are not read again.

Memory: one history page, one thread's replies and one day's messages of one channel at a time, plus per channel
the window's document ids (for the Cursor) and the users looked up.

No id listing (Capability.LIST_IDS): listing what exists costs as much as a full load here (every channel's
history and every thread's replies), and the framework would walk it before every permission run, whose answers
only depend on the channel; full runs prune what they no longer list.
"""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.base import (
    Capability,
    Changed,
    Checkpoint,
    Cursor,
    CursorExpired,
    Deleted,
    IncompleteListing,
    ItemError,
    Listed,
    Permissions,
    SourceGroup,
    SourceItem,
    SourceUnavailable,
)
from connectors.parsing import DOCX, HTML, MARKDOWN, PDF, PLAIN_TEXT
from connectors.sources.wire import retry_after
from core.outbound import MeteredClient

if TYPE_CHECKING:
    from connectors.models import Source

logger = logging.getLogger("citewise.connectors.slack")

DAY_S = 86400
PAGE_LIMIT = 200  # Slack's advice for cursor-paginated methods
MAX_ATTEMPTS = 5
# The longest Retry-After honoured: Tier 2 and 3 methods ask for up to a minute.
MAX_RETRY_WAIT_S = 120.0
# Messages posted while an empty channel is listed are found by starting its next read this much earlier.
CLOCK_SKEW_S = 300
CURSOR_VERSION = 1
# Errors that say the token cannot read the workspace at all: nothing is indexed or pruned.
FATAL_ERRORS = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive",
                          "missing_scope", "no_permission", "team_access_not_granted", "not_allowed_token_type",
                          "ekm_access_denied"})
# The channel is no longer the app's to read (it left, or the channel went) since it was listed.
GONE_CHANNEL = frozenset({"channel_not_found", "not_in_channel", "is_archived"})
# Message subtypes that carry what people wrote; joins, topic changes, pins and the like are left out.
CONTENT_SUBTYPES = frozenset({"", "bot_message", "file_share", "me_message", "thread_broadcast"})
# Slack's file types whose bytes a parser reads; Slack reports Markdown files as text/plain.
FILE_TYPES = {"markdown": MARKDOWN, "text": PLAIN_TEXT, "html": HTML, "pdf": PDF, "docx": DOCX}
PARSED_MIME_TYPES = {MARKDOWN, PLAIN_TEXT, HTML, PDF, DOCX}
# Where a file download may take the bot token: the API's host (a stand-in, an Enterprise proxy) and Slack's own.
FILE_HOSTS = ("https://files.slack.com",)
TOKEN_LIKE = re.compile(r"xox[abposr]-|xapp-")


class SlackError(Exception):
    """A call that gave no usable answer: `code` is Slack's error (`channel_not_found`, `ratelimited`, …), or
    `http_<status>` / `transport` / `malformed`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Config(BaseModel):
    """One Slack workspace (Source.location: its URL, a label) read with the `bot_token` secret.

    `team_id`: the workspace's id (T…), checked against the token's. `channels`: only these (ids, or names with or
    without `#`); empty: every channel the app was added to. `exclude_channels`: never these. `lookback_days`: how
    far back each incremental run reads again for edits, deletions and thread replies (0-90 whole days).
    `include_archived`: keep reading archived channels the app is still in (by default their documents are hidden
    and pruned). `include_files`: index files shared in channels. `api_url`: tests and proxies only.
    """

    model_config = ConfigDict(extra="forbid")
    team_id: str = Field(description="the workspace id, T followed by letters and digits")
    channels: list[str] = []
    exclude_channels: list[str] = []
    lookback_days: int = Field(7, ge=0, le=90)
    include_archived: bool = False
    include_files: bool = True
    api_url: str = "https://slack.com/api"

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, values: Any) -> Any:
        if isinstance(values, dict):
            for key, value in values.items():
                if "token" in str(key).lower() or TOKEN_LIKE.search(str(value)):
                    raise ValueError(f"{key} holds a Slack token: give it as the source's bot_token secret, which is "
                                     f"stored encrypted, never in the config")
        return values

    @field_validator("team_id")
    @classmethod
    def _a_team_id(cls, value: str) -> str:
        value = value.strip().upper()
        if not re.fullmatch(r"[TE][A-Z0-9]+", value):
            raise ValueError("the team id is the workspace's id (T…), shown in the workspace's URLs and by auth.test")
        return value

    @field_validator("channels", "exclude_channels")
    @classmethod
    def _channel_refs(cls, value: list[str]) -> list[str]:
        return [ref.strip().removeprefix("#") for ref in value if ref.strip()]


SECRETS: tuple[str, ...] = ("bot_token",)


def build(source: Source, config: Config, secrets: dict[str, str]) -> SlackConnector:
    return SlackConnector(team_id=config.team_id, bot_token=secrets.get("bot_token", ""), channels=config.channels,
                          exclude_channels=config.exclude_channels, lookback_days=config.lookback_days,
                          include_archived=config.include_archived, include_files=config.include_files,
                          api_url=config.api_url)


@dataclass(frozen=True)
class _Channel:
    id: str
    name: str
    private: bool


@dataclass(frozen=True)
class _User:
    id: str
    name: str
    email: str
    team_id: str
    bot: bool
    deleted: bool
    guest: bool


@dataclass
class _Progress:
    """One channel being read: what its Cursor entry and its Deleted ids need."""

    oldest: str | None  # where this read starts (None: the whole history)
    previous: dict[str, str]  # the window's documents the last run made: id suffix -> anchor ts
    newest: str | None = None
    made: dict[str, str] = field(default_factory=dict)  # documents made this run: id suffix -> anchor ts


def _ts(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None


def _day_start(ts: Decimal) -> int:
    return int(ts // DAY_S) * DAY_S


MICROSECOND = Decimal("0.000001")


def _as_ts(seconds: Decimal | float | int) -> str:
    return f"{Decimal(str(seconds)).quantize(MICROSECOND)}"


def _day(ts: Decimal) -> str:
    return datetime.fromtimestamp(int(ts), tz=UTC).strftime("%Y-%m-%d")


def _when(ts: Decimal) -> datetime:
    return datetime.fromtimestamp(float(ts), tz=UTC)


class SlackConnector:
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.LOAD, Capability.CHECKPOINT, Capability.INCREMENTAL, Capability.PERMISSIONS, Capability.GROUPS})

    def __init__(
        self, *, team_id: str, bot_token: str, channels: list[str] | None = None,
        exclude_channels: list[str] | None = None, lookback_days: int = 7, include_archived: bool = False,
        include_files: bool = True, api_url: str = "https://slack.com/api", timeout_s: float = 30.0,
        page_limit: int = PAGE_LIMIT, sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time, transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.team_id = team_id.strip().upper()
        self._token = bot_token
        self.wanted = {ref.removeprefix("#") for ref in channels or []}
        self.excluded = {ref.removeprefix("#") for ref in exclude_channels or []}
        self.lookback_days = lookback_days
        self.include_archived = include_archived
        self.include_files = include_files
        self.api_url = api_url.rstrip("/")
        self.page_limit = page_limit
        self._sleep = sleep
        self._clock = clock
        self._client = MeteredClient("connector.slack", timeout=httpx.Timeout(timeout_s), follow_redirects=False,
                                     transport=transport)
        self._workspace_url: str | None = None
        self._channel_list: list[_Channel] | None = None
        self._directory: dict[str, _User] | None = None
        self._users: dict[str, _User | None] = {}
        # Members of the last list_groups left out because users.info could not say who they are, per channel.
        self.left_out: dict[str, int] = {}

    def __repr__(self) -> str:  # never the token
        return f"SlackConnector(team={self.team_id!r})"

    def channel_principal(self, channel_id: str) -> str:
        return f"slack:{self.team_id}:channel:{channel_id}"

    @property
    def workspace_principal(self) -> str:
        return f"slack:{self.team_id}:workspace"

    def user_principal(self, user_id: str) -> str:
        """The principal the Slack bot links a Slack user by (bot.services.platform_principal)."""
        return f"slack:{self.team_id}:user:{user_id}"

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _wait(self, attempt: int, response: httpx.Response | None, what: str) -> None:
        """Sleep before the next attempt: as long as Retry-After says, else a short backoff; SlackError past the
        longest wait honoured."""
        default = float(2 ** (attempt - 1))
        wait = retry_after(response.headers.get("Retry-After"), default=default) if response is not None else default
        if wait > MAX_RETRY_WAIT_S:
            raise SlackError("ratelimited", f"{what}: Slack asked to wait {wait:.0f}s")
        self._sleep(wait)

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        """One Web API method, retried when throttled or failing on Slack's side; its JSON body when `ok`."""
        arguments = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items() if v is not None}
        problem = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            response: httpx.Response | None = None
            try:
                response = self._client.post(f"{self.api_url}/{method}", data=arguments,
                                             headers={"Authorization": f"Bearer {self._token}"})
            except httpx.HTTPError as exc:
                problem = f"transport: {exc.__class__.__name__}"
            else:
                if response.status_code == 429 or response.status_code >= 500:
                    problem = f"HTTP {response.status_code}"
                else:
                    return self._answer(method, response)
            if attempt < MAX_ATTEMPTS:
                self._wait(attempt, response, method)
        code = "ratelimited" if problem == "HTTP 429" else "transport" if problem.startswith("transport") else \
            "server_error"
        raise SlackError(code, f"{method}: still {problem} after {MAX_ATTEMPTS} attempts")

    @staticmethod
    def _answer(method: str, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SlackError("malformed", f"{method}: HTTP {response.status_code}, not a JSON object")
        if not body.get("ok"):
            error = str(body.get("error") or f"http_{response.status_code}")
            needed = f" (needs {body['needed']})" if body.get("needed") else ""
            raise SlackError(error, f"{method}: {error}{needed}")
        return body

    def _pages(self, method: str, key: str, **params: Any) -> Iterator[tuple[list[Any], str]]:
        """Each page of a cursor-paginated method: its `key` list and the next page's cursor ("" after the last)."""
        cursor = params.pop("cursor", None)
        while True:
            body = self._call(method, limit=self.page_limit, cursor=cursor or None, **params)
            items = body.get(key)
            if not isinstance(items, list):
                raise SlackError("malformed", f"{method}: no {key} list")
            cursor = str((body.get("response_metadata") or {}).get("next_cursor") or "")
            yield [item for item in items if isinstance(item, dict | str)], cursor
            if not cursor:
                return

    # -- the workspace ---------------------------------------------------------------------------------------

    def _unavailable(self, exc: SlackError, what: str) -> SourceUnavailable:
        return SourceUnavailable(f"slack {self.team_id}: {what} ({exc}); nothing was indexed and nothing was pruned")

    def workspace_url(self) -> str:
        """The workspace's URL from auth.test, after checking the token is this workspace's."""
        if self._workspace_url is None:
            try:
                found = self._call("auth.test")
            except SlackError as exc:
                raise self._unavailable(exc, "the bot token was refused") from exc
            if str(found.get("team_id") or "") != self.team_id:
                raise SourceUnavailable(f"slack {self.team_id}: the bot token belongs to workspace "
                                        f"{found.get('team_id')!r}, not {self.team_id}")
            self._workspace_url = str(found.get("url") or f"https://app.slack.com/client/{self.team_id}").rstrip("/")
        return self._workspace_url

    def channels(self) -> list[_Channel]:
        """The channels read: those the app is in, not archived (unless asked), included and not excluded."""
        if self._channel_list is None:
            self.workspace_url()
            found: list[_Channel] = []
            try:
                for page, _ in self._pages("conversations.list", "channels", types="public_channel,private_channel",
                                           exclude_archived=not self.include_archived):
                    for channel in page:
                        if not isinstance(channel, dict) or not channel.get("is_member"):
                            continue
                        if channel.get("is_archived") and not self.include_archived:
                            continue
                        ref = _Channel(str(channel.get("id") or ""), str(channel.get("name") or ""),
                                       bool(channel.get("is_private")))
                        names = {ref.id, ref.name}
                        if ref.id and (not self.wanted or names & self.wanted) and not names & self.excluded:
                            found.append(ref)
            except SlackError as exc:
                raise self._unavailable(exc, "the channels could not be listed") from exc
            self._channel_list = sorted(found, key=lambda c: c.id)
        return self._channel_list

    def _user_of(self, entry: dict[str, Any]) -> _User:
        profile = entry.get("profile") or {}
        name = (profile.get("display_name") or profile.get("real_name") or entry.get("real_name")
                or entry.get("name") or entry.get("id"))
        return _User(
            id=str(entry.get("id") or ""), name=str(name), email=str(profile.get("email") or "").strip().lower(),
            team_id=str(entry.get("team_id") or ""), bot=bool(entry.get("is_bot")) or entry.get("id") == "USLACKBOT",
            deleted=bool(entry.get("deleted")),
            guest=bool(entry.get("is_restricted")) or bool(entry.get("is_ultra_restricted")))

    def directory(self) -> dict[str, _User]:
        """The workspace's users (users.list, every page), read once per connector."""
        if self._directory is None:
            users: dict[str, _User] = {}
            for page, _ in self._pages("users.list", "members"):
                for entry in page:
                    if isinstance(entry, dict) and entry.get("id"):
                        users[str(entry["id"])] = self._user_of(entry)
            self._directory = users
        return self._directory

    def user(self, user_id: str) -> _User | None:
        """A user by id: from the directory when it was read, else users.info (cached); None when Slack will not
        say (a Slack Connect user whose organisation hides them, an id that is no user)."""
        if self._directory is not None and user_id in self._directory:
            return self._directory[user_id]
        if user_id not in self._users:
            try:
                self._users[user_id] = self._user_of(self._call("users.info", user=user_id).get("user") or {})
            except SlackError as exc:
                if exc.code not in ("user_not_found", "users_not_found", "user_not_visible"):
                    raise
                self._users[user_id] = None
        return self._users[user_id]

    def _name(self, message: dict[str, Any]) -> str:
        user_id = str(message.get("user") or "")
        if user_id and user_id != "USLACKBOT":
            try:
                found = self.user(user_id)
            except SlackError as exc:
                logger.info("slack user %s could not be looked up (%s); shown by id", user_id, exc)
                found = None
            return found.name if found else user_id
        bot = message.get("bot_profile") or {}
        return str(message.get("username") or bot.get("name") or message.get("bot_id") or "Slack")

    # -- rendering -------------------------------------------------------------------------------------------

    _MARKUP = re.compile(r"<([^<>]+)>")

    def _text(self, text: str) -> str:
        """Slack's mrkdwn as plain words: mentions by name, links by label and address, entities unescaped."""
        channel_names = {c.id: c.name for c in self._channel_list or []}

        def readable(match: re.Match[str]) -> str:
            inner = match.group(1)
            target, _, label = inner.partition("|")
            if target.startswith("@"):
                if label:
                    return f"@{label}"
                found = None
                try:
                    found = self.user(target[1:])
                except SlackError:
                    pass  # shown by id
                return f"@{found.name if found else target[1:]}"
            if target.startswith("#"):
                return f"#{label or channel_names.get(target[1:], target[1:])}"
            if target.startswith("!"):
                return label or f"@{target[1:].split('^')[0]}"
            return f"{label} ({target})" if label and label != target else target

        return html.unescape(self._MARKUP.sub(readable, text or ""))

    def _lines(self, message: dict[str, Any]) -> str:
        ts = _ts(message.get("ts")) or Decimal(0)
        if message.get("subtype") == "tombstone":
            return f"_(a deleted message, {_when(ts):%Y-%m-%d %H:%M} UTC)_"
        edited = " (edited)" if message.get("edited") else ""
        text = self._text(str(message.get("text") or ""))
        if not text.strip():
            text = "\n".join(str(a.get("fallback") or a.get("text") or "") for a in message.get("attachments") or []
                             if isinstance(a, dict))
        shared = [f"[file: {f.get('title') or f.get('name')}]" for f in message.get("files") or []
                  if isinstance(f, dict) and (f.get("title") or f.get("name"))]
        body = "\n".join(part for part in (text.strip(), " ".join(shared)) if part)
        return f"**{self._name(message)}** · {_when(ts):%Y-%m-%d %H:%M} UTC{edited}\n\n{body}"

    def permalink(self, channel_id: str, ts: str, thread_ts: str | None = None) -> str:
        link = f"{self.workspace_url()}/archives/{channel_id}/p{ts.replace('.', '')}"
        return f"{link}?thread_ts={thread_ts}&cid={channel_id}" if thread_ts else link

    @staticmethod
    def _modified(messages: list[dict[str, Any]]) -> datetime | None:
        times = [_ts(m.get("ts")) for m in messages] + [_ts((m.get("edited") or {}).get("ts")) for m in messages]
        found = [t for t in times if t is not None]
        return _when(max(found)) if found else None

    def _document(self, external_id: str, title: str, heading: str, messages: list[dict[str, Any]],
                  url: str) -> SourceItem:
        text = f"# {heading}\n\n" + "\n\n".join(self._lines(m) for m in messages) + "\n"
        content = text.encode("utf-8")
        return SourceItem(external_id=external_id, title=title[:300], mime_type=MARKDOWN, size_bytes=len(content),
                          read=partial(bytes, content), url=url, modified_at=self._modified(messages))

    def _thread_item(self, channel: _Channel, parent_ts: str, messages: list[dict[str, Any]]) -> SourceItem:
        parent = messages[0]
        opening = " ".join(self._text(str(parent.get("text") or "")).split())
        if parent.get("subtype") == "tombstone" and len(messages) > 1:
            opening = " ".join(self._text(str(messages[1].get("text") or "")).split())
        title = f"#{channel.name}: {opening[:80]}" if opening else f"#{channel.name} thread {parent_ts}"
        return self._document(f"{channel.id}/thread/{parent_ts}", title, title, messages,
                              self.permalink(channel.id, parent_ts, parent_ts))

    def _day_item(self, channel: _Channel, day: str, newest_first: list[dict[str, Any]]) -> SourceItem:
        messages = list(reversed(newest_first))
        title = f"#{channel.name}, {day}"
        return self._document(f"{channel.id}/day/{day}", title, title, messages,
                              self.permalink(channel.id, str(messages[0]["ts"])))

    def _file_items(self, channel: _Channel, message: dict[str, Any]) -> Iterator[tuple[str, SourceItem]]:
        if not self.include_files:
            return
        for entry in message.get("files") or []:
            if not isinstance(entry, dict) or entry.get("mode") in ("tombstone", "hidden_by_limit", "external") \
                    or entry.get("is_external"):
                continue
            file_id, size, link = entry.get("id"), entry.get("size"), entry.get("url_private_download")
            mime = FILE_TYPES.get(str(entry.get("filetype") or "")) or str(entry.get("mimetype") or "").split(";")[0]
            if not isinstance(file_id, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0 \
                    or not isinstance(link, str) or mime not in PARSED_MIME_TYPES:
                continue
            suffix = f"file/{file_id}"
            ts = _ts(message.get("ts"))
            yield suffix, SourceItem(
                external_id=f"{channel.id}/{suffix}", title=str(entry.get("title") or entry.get("name") or file_id),
                mime_type=mime, size_bytes=size, read=partial(self._download, f"{channel.id}/{suffix}", link, size,
                                                               mime),
                url=str(entry.get("permalink") or self.permalink(channel.id, str(message.get("ts")))),
                modified_at=_when(ts) if ts is not None else None, title_from_name=True)

    def _download(self, external_id: str, link: str, size: int, mime: str) -> bytes:
        """A file's bytes with the bot token, which goes to the API's host or Slack's file host only; never more
        than the listed size, which the sync checked before asking."""
        origin = f"{urlsplit(link).scheme}://{urlsplit(link).netloc}".lower()
        api_origin = f"{urlsplit(self.api_url).scheme}://{urlsplit(self.api_url).netloc}".lower()
        if origin not in (api_origin, *FILE_HOSTS):
            raise ItemError("download_refused", f"{external_id}: the file is served from {origin}, not Slack: the "
                                                f"bot token is not sent there")
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self._client.stream("GET", link, headers={"Authorization": f"Bearer {self._token}"}) as response:
                    if response.status_code == 429 or response.status_code >= 500:
                        if attempt == MAX_ATTEMPTS:
                            raise ItemError("download_failed", f"{external_id}: still HTTP {response.status_code}")
                        try:
                            self._wait(attempt, response, f"download of {external_id}")
                        except SlackError as exc:
                            raise ItemError("download_failed", str(exc)) from exc
                        continue
                    if response.status_code != 200:
                        raise ItemError("download_failed", f"{external_id}: HTTP {response.status_code}")
                    if "text/html" in response.headers.get("content-type", "") and mime != HTML:
                        # Slack answers a download it will not allow with its sign-in page, not an error.
                        raise ItemError("download_refused", f"{external_id}: Slack sent a web page instead of the "
                                                            f"file (is files:read granted?)")
                    chunks: list[bytes] = []
                    received = 0
                    for chunk in response.iter_bytes():
                        received += len(chunk)
                        if received > size:
                            raise ItemError("too_large", f"{external_id}: the download is longer than the listed "
                                                         f"{size:,} bytes")
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.HTTPError as exc:
                if attempt == MAX_ATTEMPTS:
                    raise ItemError("download_failed", f"{external_id}: {exc.__class__.__name__}") from exc
                self._sleep(float(2 ** (attempt - 1)))
        raise ItemError("download_failed", f"{external_id}: no answer")  # pragma: no cover - the loop returns

    # -- reading channels ------------------------------------------------------------------------------------

    def _window_start(self, started: float) -> int:
        return _day_start(Decimal(started) - self.lookback_days * DAY_S)

    def _thread(self, channel: _Channel, parent_ts: str) -> list[dict[str, Any]] | None:
        """A thread's parent and replies, oldest first; None when it is gone."""
        messages: list[dict[str, Any]] = []
        try:
            for page, _ in self._pages("conversations.replies", "messages", channel=channel.id, ts=parent_ts):
                messages.extend(m for m in page if isinstance(m, dict) and _ts(m.get("ts")) is not None)
        except SlackError as exc:
            if exc.code == "thread_not_found":
                return None
            raise
        messages.sort(key=lambda m: _ts(m["ts"]) or Decimal(0))
        if not messages or str(messages[0].get("ts")) != parent_ts:
            return None
        return [m for m in messages if m is messages[0] or str(m.get("subtype") or "") in CONTENT_SUBTYPES]

    def _read_channel(self, channel: _Channel, progress: _Progress, latest: str | None
                      ) -> Iterator[SourceItem | tuple[str, str]]:
        """A channel's documents from `progress.oldest` (or its start) up to `latest` (exclusive; None: now),
        and after each history page ("page", the `latest` bound a resume starts from)."""
        params: dict[str, Any] = {"channel": channel.id}
        if progress.oldest is not None:
            params["oldest"] = progress.oldest
        if latest is not None:
            params["latest"] = latest
        if progress.oldest is not None or latest is not None:
            params["inclusive"] = True  # both bounds are a day's first or last microsecond
        day: str | None = None
        day_messages: list[dict[str, Any]] = []
        threads_read: set[str] = set()

        def made(suffix: str, anchor: Decimal) -> None:
            progress.made[suffix] = _as_ts(anchor)

        for page, _ in self._pages("conversations.history", "messages", **params):
            oldest_on_page: Decimal | None = None
            for message in page:
                ts = _ts(message.get("ts")) if isinstance(message, dict) else None
                if ts is None or not isinstance(message, dict):
                    continue
                oldest_on_page = ts
                if progress.newest is None or ts > Decimal(progress.newest):
                    progress.newest = str(message["ts"])
                subtype = str(message.get("subtype") or "")
                thread_ts = str(message.get("thread_ts") or "")
                is_parent = thread_ts == str(message["ts"]) and (int(message.get("reply_count") or 0) > 0
                                                                 or subtype == "tombstone")
                if subtype == "thread_broadcast" or is_parent:
                    # A thread (or a reply shown in the channel too): the whole thread is one document.
                    parent_ts = thread_ts or str(message["ts"])
                    if parent_ts in threads_read:
                        continue
                    threads_read.add(parent_ts)
                    thread = self._thread(channel, parent_ts)
                    if thread is None:
                        continue
                    anchor = _ts(parent_ts) or ts
                    made(f"thread/{parent_ts}", anchor)
                    yield self._thread_item(channel, parent_ts, thread)
                    for reply in thread:
                        for suffix, item in self._file_items(channel, reply):
                            made(suffix, anchor)
                            yield item
                    continue
                if subtype not in CONTENT_SUBTYPES:
                    continue
                message_day = _day(ts)
                if message_day != day:
                    if day is not None and day_messages:
                        made(f"day/{day}", Decimal(_day_start(_ts(day_messages[0]["ts"]) or ts)))
                        yield self._day_item(channel, day, day_messages)
                    day, day_messages = message_day, []
                day_messages.append(message)
                for suffix, item in self._file_items(channel, message):
                    made(suffix, ts)
                    yield item
            if oldest_on_page is not None:
                # Every day after the one still being collected (or this page's oldest) is done: a resume reads
                # from that day's last microsecond down, so the day's document is made from all its messages.
                open_day = _ts(day_messages[0]["ts"]) if day_messages else oldest_on_page
                yield ("page", _as_ts(_day_start(open_day or oldest_on_page) + DAY_S - MICROSECOND))
        if day is not None and day_messages:
            made(f"day/{day}", Decimal(_day_start(_ts(day_messages[0]["ts"]) or Decimal(0))))
            yield self._day_item(channel, day, day_messages)

    def _walk(self, cursor: dict[str, Any] | None, checkpoint: dict[str, Any] | None) -> Iterator[Changed]:
        """Every channel read: from the start (load, or a channel `cursor` does not name) or from its cursor entry
        and the look-back window (changes); a Checkpoint after each history page and each channel, then the next
        Cursor, or IncompleteListing when a channel could not be read."""
        state = checkpoint or {}
        started = float(state.get("started") or self._clock())
        window_start = self._window_start(started)
        known: dict[str, Any] = (cursor or {}).get("channels") or {}
        done: dict[str, Any] = dict(state.get("done") or {})
        problems: list[tuple[str, str]] = [(str(w), str(m)) for w, m in state.get("problems") or []]
        self.workspace_url()
        for channel in self.channels():
            if channel.id in done:
                continue
            resuming = state.get("channel") == channel.id
            previous = known.get(channel.id) if isinstance(known.get(channel.id), dict) else None
            oldest: str | None = None
            if previous is not None:
                previous_latest = _ts(previous.get("latest")) or Decimal(0)
                oldest = _as_ts(_day_start(min(previous_latest, Decimal(window_start))))
            progress = _Progress(oldest=oldest, previous=dict((previous or {}).get("recent") or {}))
            latest: str | None = None
            if resuming:
                progress.newest = state.get("newest")
                progress.made = dict(state.get("made") or {})
                latest = state.get("latest")
            try:
                for entry in self._read_channel(channel, progress, latest):
                    if isinstance(entry, tuple):
                        yield Checkpoint({"started": started, "done": done, "channel": channel.id,
                                          "latest": entry[1], "newest": progress.newest, "made": progress.made,
                                          "problems": [list(p) for p in problems]})
                    else:
                        yield entry
            except SlackError as exc:
                if exc.code in FATAL_ERRORS:
                    raise self._unavailable(exc, f"channel #{channel.name} could not be read") from exc
                if exc.code in GONE_CHANNEL:
                    logger.info("slack channel %s went while it was read (%s); it is no longer synced", channel.id,
                                exc)
                    continue
                problems.append((f"#{channel.name}", f"unreadable_channel: {exc}"))
                continue
            if previous is not None and oldest is not None:
                for suffix, anchor in sorted(progress.previous.items()):
                    if (_ts(anchor) or Decimal(0)) >= Decimal(oldest) and suffix not in progress.made:
                        yield Deleted(f"{channel.id}/{suffix}")
            done[channel.id] = self._entry(progress, previous, started, window_start)
            yield Checkpoint({"started": started, "done": done, "channel": None,
                              "problems": [list(p) for p in problems]})
        if problems:
            raise IncompleteListing(problems)
        yield Cursor({"version": CURSOR_VERSION, "channels": done})

    @staticmethod
    def _entry(progress: _Progress, previous: dict[str, Any] | None, started: float, window_start: int
               ) -> dict[str, Any]:
        """A channel's Cursor entry: its newest message, and the documents the next run may find gone."""
        newest = _ts(progress.newest)
        previous_latest = _ts((previous or {}).get("latest"))
        candidates = [t for t in (newest, previous_latest) if t is not None]
        latest = max(candidates) if candidates else Decimal(str(started)) - CLOCK_SKEW_S
        tracked_from = _day_start(min(latest, Decimal(window_start)))
        recent = {suffix: anchor for suffix, anchor in progress.made.items()
                  if (_ts(anchor) or Decimal(0)) >= tracked_from}
        return {"latest": _as_ts(latest), "recent": recent}

    def load(self, checkpoint: dict[str, Any] | None = None) -> Iterator[Listed]:
        for entry in self._walk(None, checkpoint):
            if not isinstance(entry, Deleted):
                yield entry

    def changes(self, cursor: dict[str, Any], checkpoint: dict[str, Any] | None = None) -> Iterator[Changed]:
        if cursor.get("version") != CURSOR_VERSION or not isinstance(cursor.get("channels"), dict):
            raise CursorExpired(f"slack {self.team_id}: the cursor {sorted(cursor)!r} is not one this connector made")
        yield from self._walk(cursor, checkpoint)

    # -- permissions -----------------------------------------------------------------------------------------

    def fetch_permissions(self, external_id: str) -> Permissions:
        channel_id = external_id.partition("/")[0]
        # SourceUnavailable (the channels cannot be listed) stops a permission run before any ACL changes.
        listed = {channel.id for channel in self.channels()}
        if channel_id not in listed:
            return Permissions(status="unknown", reason=f"{external_id}: channel {channel_id} is no longer synced "
                                                        f"(the app left it, it was archived or excluded)")
        return Permissions(principals=frozenset({self.channel_principal(channel_id)}), status="ok")

    def _principals(self, user: _User) -> set[str]:
        principals = {self.user_principal(user.id)}
        if user.email and user.team_id == self.team_id:
            principals.add(f"email:{user.email}")
        return principals

    def list_groups(self) -> Iterator[SourceGroup]:
        """The workspace principal (its full members) and one group per channel read (see the module's doc).
        Raises ValueError when the users or a channel's members cannot be read, so the last good memberships stay;
        a channel gone since it was listed is left out (its documents become invisible)."""
        try:
            directory = self.directory()
            channels = self.channels()
            full = [u for u in directory.values()
                    if u.team_id == self.team_id and not (u.bot or u.deleted or u.guest)]
            workspace_members = sorted(set().union(*(self._principals(u) for u in full)) if full else set())
            listed = []
            self.left_out = {}
            for channel in channels:
                try:
                    member_ids = [m for page, _ in self._pages("conversations.members", "members", channel=channel.id)
                                  for m in page if isinstance(m, str)]
                except SlackError as exc:
                    if exc.code in GONE_CHANNEL:
                        logger.info("slack channel %s went before its members were read: left out", channel.id)
                        continue
                    raise
                listed.append((channel, self._channel_members(channel, member_ids)))
        except (SlackError, SourceUnavailable) as exc:
            raise ValueError(f"slack {self.team_id}: the members could not be read: {exc}") from exc
        yield SourceGroup(principal=self.workspace_principal, name=f"Slack workspace {self.team_id}",
                          members=tuple(workspace_members))
        for channel, members in listed:
            yield SourceGroup(principal=self.channel_principal(channel.id), name=f"Slack #{channel.name}",
                              members=tuple(sorted(members)))

    def _channel_members(self, channel: _Channel, member_ids: list[str]) -> set[str]:
        members = set() if channel.private else {self.workspace_principal}
        left_out = 0
        for user_id in member_ids:
            user = self.user(user_id)
            if user is None:
                left_out += 1
                continue
            if user.bot or user.deleted:
                continue  # apps and deactivated accounts read nothing
            if user.team_id != self.team_id:
                members.add(self.user_principal(user.id))  # Slack Connect: an admin-linked identity only
            elif user.guest or channel.private:
                members |= self._principals(user)
            # A full member of a public channel reads it through the workspace principal.
        if left_out:
            self.left_out[channel.id] = left_out
            logger.warning("slack channel #%s: %d members Slack would not describe were left out of its readers",
                           channel.name, left_out)
        return members


# What the registry reads to schedule a source's syncs without building its connector (no credentials needed).
CONNECTOR = SlackConnector
