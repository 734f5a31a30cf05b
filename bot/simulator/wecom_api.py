"""The simulated WeCom corp: staff, external contacts, contact ways, welcome codes, corp tags,
app messages, media and 1:1 mass sends — with the errcodes Tencent documents (global error code
page, doc 90313) for missing parameters and unknown ids.
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from bot.simulator.common import Clock, Ctx, SimError, UploadedFile, qr_png, random_id, text_of

WELCOME_CODE_TTL = 20.0  # seconds (doc 92599)
STATE_MAX_CHARS = 30  # contact-way `state` (doc 92228)
MEDIA_TTL = 3 * 86400.0  # temporary media live three days
MEDIA_LIMITS = {"image": 10 << 20, "voice": 2 << 20, "video": 10 << 20, "file": 20 << 20}
APP_MSG_TYPES = frozenset({"text", "markdown", "textcard", "template_card", "image", "news", "file"})
CARD_TYPES = frozenset({"text_notice", "news_notice", "button_interaction", "vote_interaction", "multiple_interaction"})
_SHANGHAI = timezone(timedelta(hours=8))


# What a contact way's QR picture encodes (WeCom's own codes carry such a link; scanning adds the contact).
CONTACT_WAY_QR_URL = "https://work.weixin.qq.com/ca/"


@dataclass
class FollowUser:
    userid: str
    createtime: int
    state: str | None = None
    remark: str = ""
    description: str = ""
    add_way: int = 1
    tags: list[str] = field(default_factory=list)


@dataclass
class ExternalContact:
    external_userid: str
    name: str
    unionid: str | None
    type: int = 1  # 1 WeChat user, 2 WeCom user
    gender: int = 0
    follow: dict[str, FollowUser] = field(default_factory=dict)


@dataclass
class WelcomeCode:
    code: str
    userid: str
    external_userid: str
    issued_at: float
    used: bool = False


@dataclass
class TagGroup:
    group_id: str
    group_name: str
    create_time: int
    order: int
    tag_ids: list[str] = field(default_factory=list)


@dataclass
class Tag:
    id: str
    name: str
    group_id: str
    create_time: int
    order: int


@dataclass
class SendResult:
    external_userid: str
    userid: str
    status: int = 0  # 0 not sent yet, 1 sent, 2 not a friend, 3 already got another mass message
    send_time: int | None = None


@dataclass
class GroupMsg:
    msgid: str
    sender: str | None
    body: dict[str, Any]
    created_at: float
    results: list[SendResult] = field(default_factory=list)


@dataclass
class AppMessage:
    msgid: str
    touser: list[str]
    msgtype: str
    body: dict[str, Any]
    sent_at: float


def is_external_userid(value: str) -> bool:
    # External user ids are issued as "wm…" (WeChat users) or "wo…" (WeCom users); anything else is
    # not an external user id at all (40096), as opposed to a well-formed unknown one (84061).
    return len(value) > 2 and value[:2] in ("wm", "wo")


class WeComCorp:
    def __init__(self, clock: Clock, corp_id: str, agent_id: str, base_url: Callable[[], str]) -> None:
        self.clock = clock
        self.corp_id = corp_id
        self.agent_id = agent_id
        self._base_url = base_url
        self.staff: dict[str, str] = {}
        self.contacts: dict[str, ExternalContact] = {}
        self.contact_ways: dict[str, dict[str, Any]] = {}
        self.contact_way_limit = 500_000  # per corp (doc 96348)
        self.welcome_codes: dict[str, WelcomeCode] = {}
        self.welcome_messages: list[dict[str, Any]] = []
        self.tag_groups: dict[str, TagGroup] = {}
        self.tags: dict[str, Tag] = {}
        self.app_messages: list[AppMessage] = []
        # The latest message of each (type, content, recipients): WeCom's duplicate check looks
        # it up instead of scanning every message sent (a flood sends tens of thousands).
        self._latest_app_message: dict[tuple[str, str, tuple[str, ...]], AppMessage] = {}
        self.media: dict[str, tuple[str, UploadedFile, float]] = {}
        self.group_msgs: dict[str, GroupMsg] = {}
        # (external_userid, year, month) → mass messages received: the monthly quota, counted
        # as messages are stored (a scan of every message per recipient is O(n²) at 20 000).
        self.received_in_month: dict[tuple[str, int, int], int] = {}

    # ------------------------------------------------------------------ state helpers (tests, driver)

    def add_staff(self, userid: str, name: str | None = None) -> None:
        self.staff[userid] = name or userid

    def add_external_contact(
        self,
        external_userid: str,
        *,
        unionid: str | None = None,
        name: str = "客户",
        follow_userid: str | None = None,
        state: str | None = None,
        add_way: int = 1,
    ) -> ExternalContact:
        if not is_external_userid(external_userid):
            raise ValueError(f"external_userid must start with wm/wo: {external_userid!r}")
        contact = self.contacts.get(external_userid)
        if contact is None:
            contact = self.contacts[external_userid] = ExternalContact(external_userid, name, unionid)
        elif unionid is not None:
            contact.unionid = unionid
        if follow_userid is not None:
            if follow_userid not in self.staff:
                raise ValueError(f"unknown staff userid {follow_userid!r}")
            contact.follow[follow_userid] = FollowUser(
                follow_userid, int(self.clock.now()), state=state, add_way=add_way
            )
        return contact

    def follow_tag_names(self, external_userid: str, userid: str) -> list[str]:
        """The corp tags a staff member sees on a customer (names, sorted)."""
        follow = self.contacts[external_userid].follow.get(userid)
        return sorted(self.tags[t].name for t in follow.tags) if follow else []

    def remove_follow(self, userid: str, external_userid: str) -> None:
        contact = self.contacts.get(external_userid)
        if contact is not None:
            contact.follow.pop(userid, None)

    def issue_welcome_code(self, userid: str, external_userid: str) -> str:
        code = random_id("wc", 40)
        self.welcome_codes[code] = WelcomeCode(code, userid, external_userid, self.clock.now())
        return code

    def confirm_group_msg(self, msgid: str, userid: str | None = None, status: int = 1) -> None:
        """The guide confirmed the mass send in their client (or it failed with `status`)."""
        for result in self.group_msgs[msgid].results:
            if userid is None or result.userid == userid:
                result.status = status
                result.send_time = int(self.clock.now()) if status == 1 else None

    def contact_way_picture(self, config_id: str) -> bytes | None:
        """The PNG behind a contact way's `qr_code` URL (None: no such QR contact way)."""
        way = self.contact_ways.get(config_id)
        if way is None or "qr_code" not in way:
            return None
        # WeCom's own codes encode a work.weixin.qq.com/ca/… link; scanning it adds the contact.
        return qr_png(f"{CONTACT_WAY_QR_URL}{config_id}")

    # ------------------------------------------------------------------ lookups with Tencent's errors

    def _staff(self, userid: str) -> str:
        if userid not in self.staff:
            raise SimError(60111, f"userid not found: {userid}")
        return userid

    def _contact(self, external_userid: str) -> ExternalContact:
        if not is_external_userid(external_userid):
            raise SimError(40096, f"invalid external userid: {external_userid}")
        contact = self.contacts.get(external_userid)
        if contact is None or not contact.follow:
            raise SimError(84061, "not external contact")
        return contact

    # ------------------------------------------------------------------ API handlers

    def routes(self) -> dict[str, Callable[[Ctx], dict[str, Any]]]:
        return {
            "/cgi-bin/externalcontact/get": self.get_external_contact,
            "/cgi-bin/externalcontact/add_contact_way": self.add_contact_way,
            "/cgi-bin/externalcontact/send_welcome_msg": self.send_welcome_msg,
            "/cgi-bin/externalcontact/mark_tag": self.mark_tag,
            "/cgi-bin/externalcontact/get_corp_tag_list": self.get_corp_tag_list,
            "/cgi-bin/externalcontact/add_corp_tag": self.add_corp_tag,
            "/cgi-bin/externalcontact/add_msg_template": self.add_msg_template,
            "/cgi-bin/externalcontact/get_groupmsg_send_result": self.get_groupmsg_send_result,
            "/cgi-bin/message/send": self.send_message,
            "/cgi-bin/media/upload": self.upload_media,
        }

    def get_external_contact(self, ctx: Ctx) -> dict[str, Any]:
        external_userid = ctx.query.get("external_userid", "")
        if not external_userid:
            raise SimError(41035, "missing external userid")
        contact = self._contact(external_userid)
        info: dict[str, Any] = {
            "external_userid": contact.external_userid,
            "name": contact.name,
            "type": contact.type,
            "avatar": "",
            "gender": contact.gender,
        }
        if contact.unionid:  # only when the corp has bound the brand's open-platform account
            info["unionid"] = contact.unionid
        follow = []
        for f in contact.follow.values():
            item: dict[str, Any] = {
                "userid": f.userid,
                "remark": f.remark,
                "description": f.description,
                "createtime": f.createtime,
                "tags": [self._tag_ref(t) for t in f.tags if t in self.tags],
                "remark_mobiles": [],
                "oper_userid": f.userid,
                "add_way": f.add_way,
            }
            if f.state:
                item["state"] = f.state
            follow.append(item)
        return {"external_contact": info, "follow_user": follow, "next_cursor": ""}

    def _tag_ref(self, tag_id: str) -> dict[str, Any]:
        tag = self.tags[tag_id]
        return {
            "group_name": self.tag_groups[tag.group_id].group_name,
            "tag_name": tag.name,
            "tag_id": tag.id,
            "type": 1,
        }

    def add_contact_way(self, ctx: Ctx) -> dict[str, Any]:
        body = ctx.json()
        if "type" not in body:
            raise SimError(41037, "missing contact way type")
        if "scene" not in body:
            raise SimError(41038, "missing contact way scene")
        if body["type"] not in (1, 2):
            raise SimError(41039, "invalid contact way type")
        if body["scene"] not in (1, 2):
            raise SimError(41040, "invalid contact way scene")
        users = body.get("user") or []
        parties = body.get("party") or []
        if not isinstance(users, list) or (not users and not parties):
            raise SimError(40058, "invalid Request Parameter: user and party are both empty")
        if body["type"] == 1 and len(users) + len(parties) != 1:
            raise SimError(40058, "invalid Request Parameter: a single contact way takes one user")
        if len(users) > 100:
            raise SimError(41041, "exceed max contact way user count")
        for userid in users:
            self._staff(str(userid))
        state = body.get("state")
        if state is not None and (not isinstance(state, str) or len(state) > STATE_MAX_CHARS):
            # Tencent answers an over-long state with the generic "invalid parameter".
            raise SimError(40058, f"invalid Request Parameter: state exceed max length {STATE_MAX_CHARS}")
        if len(self.contact_ways) >= self.contact_way_limit:
            raise SimError(41045, "exceed max contact way count")
        config_id = random_id("", 32).lower()
        way = {**body, "config_id": config_id}
        answer: dict[str, Any] = {"config_id": config_id}
        if body["scene"] == 2:
            way["qr_code"] = answer["qr_code"] = f"{self._base_url()}/sim/qr/contact_way/{config_id}.png"
        self.contact_ways[config_id] = way
        return answer

    def send_welcome_msg(self, ctx: Ctx) -> dict[str, Any]:
        body = ctx.json()
        code = text_of(body, "welcome_code")
        if not code:
            raise SimError(41049, "missing welcome code")
        if not text_of(body.get("text"), "content") and not body.get("attachments"):
            raise SimError(40058, "invalid Request Parameter: text and attachments are both empty")
        welcome = self.welcome_codes.get(code)
        if welcome is None:
            raise SimError(41050, "invalid welcome code")
        if welcome.used:
            raise SimError(41051, "welcome msg already sent")
        if self.clock.now() - welcome.issued_at > WELCOME_CODE_TTL:
            raise SimError(41050, "invalid welcome code: expired")
        welcome.used = True
        self.welcome_messages.append({"userid": welcome.userid, "external_userid": welcome.external_userid, **body})
        return {}

    def mark_tag(self, ctx: Ctx) -> dict[str, Any]:
        body = ctx.json()
        userid, external_userid = text_of(body, "userid"), text_of(body, "external_userid")
        if not userid:
            raise SimError(41009, "missing userid")
        if not external_userid:
            raise SimError(41035, "missing external userid")
        self._staff(userid)
        contact = self._contact(external_userid)
        follow = contact.follow.get(userid)
        if follow is None:
            raise SimError(84061, "not external contact")
        add, remove = list(body.get("add_tag") or []), list(body.get("remove_tag") or [])
        if not add and not remove:
            raise SimError(40058, "invalid Request Parameter: add_tag and remove_tag are both empty")
        for tag_id in add + remove:
            if tag_id not in self.tags:
                raise SimError(40068, f"invalid tagid: {tag_id}")
        follow.tags = [t for t in follow.tags if t not in remove]
        follow.tags += [t for t in dict.fromkeys(add) if t not in follow.tags]
        return {}

    def get_corp_tag_list(self, ctx: Ctx) -> dict[str, Any]:
        body = ctx.json()
        group_ids, tag_ids = list(body.get("group_id") or []), list(body.get("tag_id") or [])
        groups = []
        for group in self.tag_groups.values():
            # Tencent: when group_id is given, tag_id is ignored.
            if group_ids and group.group_id not in group_ids:
                continue
            tags = [self.tags[t] for t in group.tag_ids if group_ids or not tag_ids or t in tag_ids]
            if tag_ids and not group_ids and not tags:
                continue
            groups.append(self._group_json(group, tags))
        return {"tag_group": groups}

    def _group_json(self, group: TagGroup, tags: list[Tag]) -> dict[str, Any]:
        return {
            "group_id": group.group_id,
            "group_name": group.group_name,
            "create_time": group.create_time,
            "order": group.order,
            "deleted": False,
            "tag": [
                {"id": t.id, "name": t.name, "create_time": t.create_time, "order": t.order, "deleted": False}
                for t in tags
            ],
        }

    def add_corp_tag(self, ctx: Ctx) -> dict[str, Any]:
        body = ctx.json()
        new_tags = body.get("tag")
        if not isinstance(new_tags, list) or not new_tags:
            raise SimError(40058, "invalid Request Parameter: tag is empty")
        now = int(self.clock.now())
        group: TagGroup | None
        if body.get("group_id"):
            group = self.tag_groups.get(str(body["group_id"]))
            if group is None:
                raise SimError(40068, "invalid tag group id")
        else:
            name = text_of(body, "group_name")
            if not name or len(name) > 30:
                raise SimError(40072, "invalid tag group name length")
            group = next((g for g in self.tag_groups.values() if g.group_name == name), None)
            if group is None:
                group = TagGroup(random_id("et", 30), name, now, int(body.get("order") or 0))
                self.tag_groups[group.group_id] = group
        existing = {self.tags[t].name for t in group.tag_ids}
        names = [text_of(t, "name") for t in new_tags]
        for name in names:
            if not name or len(name) > 30:
                raise SimError(40072, "invalid tag name length")
            if name in existing or names.count(name) > 1:
                raise SimError(40071, f"tag name exists: {name}")
        created = []
        for item, name in zip(new_tags, names, strict=True):
            tag = Tag(random_id("et", 30), name, group.group_id, now, int(item.get("order") or 0))
            self.tags[tag.id] = tag
            group.tag_ids.append(tag.id)
            created.append(tag)
        return {"tag_group": self._group_json(group, created)}

    def add_msg_template(self, ctx: Ctx) -> dict[str, Any]:
        body = ctx.json()
        if body.get("chat_type", "single") != "single":
            # Group-chat mass sends exist at Tencent; the simulator models 1:1 sends only.
            raise SimError(40058, "invalid Request Parameter: simulator supports chat_type single only")
        sender = text_of(body, "sender") or None
        if sender is not None:
            self._staff(sender)
        text = body.get("text")
        _check_attachments(body.get("attachments"))
        if not body.get("attachments"):
            if not isinstance(text, dict):
                raise SimError(40058, "invalid Request Parameter: text and attachments are both empty")
            if not text_of(text, "content"):
                raise SimError(44004, "empty content")
        targets = body.get("external_userid") or []
        if not isinstance(targets, list):
            raise SimError(40058, "invalid Request Parameter: external_userid must be a list")
        now = self.clock.now()
        msg = GroupMsg(random_id("msg", 28), sender, body, now)
        fail_list = []
        for external_userid in dict.fromkeys(str(t) for t in targets):
            contact = self.contacts.get(external_userid)
            senders = [sender] if sender else list(contact.follow) if contact else []
            senders = [s for s in senders if contact is not None and s in contact.follow]
            if not senders or self._month_quota_used(external_userid, now):
                fail_list.append(external_userid)
                continue
            msg.results += [SendResult(external_userid, s) for s in senders]
        if not msg.results:
            raise SimError(41048, "no valid external user")
        self.group_msgs[msg.msgid] = msg
        sent = datetime.fromtimestamp(msg.created_at, _SHANGHAI)
        for external_userid in dict.fromkeys(r.external_userid for r in msg.results):
            key = (external_userid, sent.year, sent.month)
            self.received_in_month[key] = self.received_in_month.get(key, 0) + 1
        return {"fail_list": fail_list, "msgid": msg.msgid}

    def _month_quota_used(self, external_userid: str, now: float) -> bool:
        # A customer receives at most as many mass messages a month as the month has days (doc 92135).
        today = datetime.fromtimestamp(now, _SHANGHAI)
        days = calendar.monthrange(today.year, today.month)[1]
        return self.received_in_month.get((external_userid, today.year, today.month), 0) >= days

    def get_groupmsg_send_result(self, ctx: Ctx) -> dict[str, Any]:
        body = ctx.json()
        msgid, userid = text_of(body, "msgid"), text_of(body, "userid")
        if not msgid:
            raise SimError(41046, "missing msgid")
        msg = self.group_msgs.get(msgid)
        if msg is None:
            raise SimError(41047, "invalid msgid")
        if not userid:
            raise SimError(41009, "missing userid")
        self._staff(userid)
        limit = min(int(body.get("limit") or 500), 1000)
        start = int(body.get("cursor") or 0)
        rows = [r for r in msg.results if r.userid == userid]
        page = rows[start : start + limit]
        send_list = []
        for r in page:
            item: dict[str, Any] = {"external_userid": r.external_userid, "userid": r.userid, "status": r.status}
            if r.send_time is not None:
                item["send_time"] = r.send_time
            send_list.append(item)
        next_cursor = str(start + limit) if start + limit < len(rows) else ""
        return {"next_cursor": next_cursor, "send_list": send_list}

    def send_message(self, ctx: Ctx) -> dict[str, Any]:
        body = ctx.json()
        if "agentid" not in body:
            raise SimError(41011, "missing agentid")
        if str(body["agentid"]) != str(ctx.agent_id):
            raise SimError(40056, "invalid agentid")
        msgtype = text_of(body, "msgtype")
        if msgtype not in APP_MSG_TYPES:
            raise SimError(40008, "invalid message type")
        touser, toparty, totag = (text_of(body, k) for k in ("touser", "toparty", "totag"))
        if not (touser or toparty or totag):
            raise SimError(82001, "All touser & toparty & totag invalid")
        self._check_content(msgtype, body.get(msgtype))
        wanted = list(self.staff) if touser == "@all" else [u for u in touser.split("|") if u]
        valid = [u for u in wanted if u in self.staff]
        invalid = [u for u in wanted if u not in self.staff]
        if not valid:  # parties and tags are not modelled: only users can receive
            raise SimError(81013, "user & party & tag all invalid")
        same = (msgtype, json.dumps(body.get(msgtype), sort_keys=True, ensure_ascii=False), tuple(valid))
        if body.get("enable_duplicate_check"):
            # WeCom drops a message identical to one sent to the same users within the interval
            # (default 1800 s, at most 4 h) and answers as if it had sent it.
            window = min(int(body.get("duplicate_check_interval") or 1800), 4 * 3600)
            earlier = self._latest_app_message.get(same)
            if earlier is not None and self.clock.now() - earlier.sent_at <= window:
                return {"invaliduser": "|".join(invalid), "invalidparty": "", "invalidtag": "",
                        "msgid": earlier.msgid}
        msgid = random_id("", 40)
        message = AppMessage(msgid, valid, msgtype, body, self.clock.now())
        self.app_messages.append(message)
        self._latest_app_message[same] = message
        return {"invaliduser": "|".join(invalid), "invalidparty": "", "invalidtag": "", "msgid": msgid}

    def _check_content(self, msgtype: str, content: Any) -> None:
        if not isinstance(content, dict):
            raise SimError(40058, f"invalid Request Parameter: missing {msgtype}")
        if msgtype in ("text", "markdown"):
            text = text_of(content, "content")
            if not text:
                raise SimError(44004, "empty content")
            if len(text.encode("utf-8")) > (2048 if msgtype == "text" else 4096):
                raise SimError(45002, "content size out of limit")
        elif msgtype == "textcard":
            for key, code in (("title", 41016), ("description", 41033), ("url", 41010)):
                if not text_of(content, key):
                    raise SimError(code, f"missing {key}")
        elif msgtype in ("image", "file"):
            media_id = text_of(content, "media_id")
            if not media_id:
                raise SimError(41006, "media_id missing")
            media = self.media.get(media_id)
            if media is None or self.clock.now() - media[2] > MEDIA_TTL:
                raise SimError(40007, "invalid media_id")
        elif msgtype == "template_card" and content.get("card_type") not in CARD_TYPES:
            raise SimError(42031, "invalid template_card.card_type")

    def upload_media(self, ctx: Ctx) -> dict[str, Any]:
        kind = ctx.query.get("type", "")
        if kind not in MEDIA_LIMITS:
            raise SimError(40005, "invalid media type")
        upload = ctx.body
        if not isinstance(upload, UploadedFile) or not upload.data:
            raise SimError(44001, "empty media data")
        if len(upload.data) > MEDIA_LIMITS[kind]:
            raise SimError(40009 if kind == "image" else 40006, "invalid file size")
        media_id = random_id("3", 60)
        now = self.clock.now()
        self.media[media_id] = (kind, upload, now)
        return {"type": kind, "media_id": media_id, "created_at": str(int(now))}


ATTACHMENT_TYPES = frozenset({"image", "link", "miniprogram", "video", "file"})
MAX_ATTACHMENTS = 9


def _check_attachments(attachments: Any) -> None:
    """add_msg_template's attachments: at most 9, each of a known msgtype; a link needs its title
    and url (Tencent: 40058 invalid Request Parameter)."""
    if attachments is None:
        return
    if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        raise SimError(40058, "invalid Request Parameter: attachments (a list of at most 9)")
    for item in attachments:
        kind = text_of(item, "msgtype")
        if kind not in ATTACHMENT_TYPES:
            raise SimError(40058, "invalid Request Parameter: attachment msgtype")
        if kind == "link":
            link = item.get(kind)
            if not (text_of(link, "title") and text_of(link, "url")):
                raise SimError(40058, "invalid Request Parameter: link title and url required")
