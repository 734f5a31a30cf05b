"""Simulated WeChat official accounts: followers (openid → unionid), parametric QR codes,
template messages and customer-service messages with the 48-hour window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.simulator.common import Clock, Ctx, SimError, UploadedFile, qr_png, random_id, text_of

CUSTOM_WINDOW = 48 * 3600.0  # customer-service messages only within 48 h of the user's last action
CLIENT_MSG_ID_TTL = 600.0  # template `client_msg_id`: the same id is sent once within 10 minutes
QR_DEFAULT_EXPIRE = 60
QR_MAX_EXPIRE = 2_592_000
CUSTOM_MSG_TYPES = frozenset(
    {"text", "image", "voice", "video", "music", "news", "mpnews", "msgmenu", "wxcard", "miniprogrampage"}
)
OA_MEDIA_TYPES = frozenset({"image", "voice", "video", "thumb"})
# card/landingpage/create: where the page is put ("scene" of Tencent's card API)
LANDING_SCENES = frozenset({
    "SCENE_NEAR_BY", "SCENE_MENU", "SCENE_QRCODE", "SCENE_ARTICLE", "SCENE_H5", "SCENE_IVR", "SCENE_CARD_CUSTOM_CELL",
})
LANDING_PAGE_PATH = "/bizmall/cardlandingpage"  # on mp.weixin.qq.com in production


@dataclass
class Follower:
    openid: str
    unionid: str | None
    subscribe: bool
    subscribe_time: int
    subscribe_scene: str = "ADD_SCENE_SEARCH"
    qr_scene_str: str = ""
    last_interaction: float | None = None


@dataclass
class OfficialAccount:
    app_id: str
    secret: str
    original_id: str
    users: dict[str, Follower] = field(default_factory=dict)
    qrcodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    templates: set[str] = field(default_factory=set)  # empty: any template id is accepted
    template_messages: list[dict[str, Any]] = field(default_factory=list)
    custom_messages: list[dict[str, Any]] = field(default_factory=list)
    client_msg_ids: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)
    media: dict[str, tuple[str, UploadedFile]] = field(default_factory=dict)
    cards: dict[str, str] = field(default_factory=dict)  # card_id → title (the account's WeChat cards)


class OfficialAccounts:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.accounts: dict[str, OfficialAccount] = {}
        self._next_msgid = 200_000_000
        self.landing_pages: dict[int, dict[str, Any]] = {}  # page_id → {"app_id", "card_ids", "title", …}
        self.base_url: Callable[[], str] = lambda: ""  # set by the server: where landing pages are served

    # ------------------------------------------------------------------ state helpers (tests, driver)

    def add_account(self, app_id: str | None = None, secret: str | None = None) -> OfficialAccount:
        app_id = app_id or random_id("wx", 16).lower()
        account = OfficialAccount(app_id, secret or random_id("", 32).lower(), random_id("gh_", 12).lower())
        self.accounts[app_id] = account
        return account

    def account(self, app_id: str) -> OfficialAccount:
        return self.accounts[app_id]

    def add_follower(
        self,
        app_id: str,
        openid: str,
        *,
        unionid: str | None = None,
        subscribe: bool = True,
        scene_str: str | None = None,
    ) -> Follower:
        account = self.accounts[app_id]
        now = self.clock.now()
        user = account.users.get(openid)
        if user is None:
            user = account.users[openid] = Follower(openid, unionid, subscribe, int(now))
        else:
            user.unionid = unionid or user.unionid
            if subscribe and not user.subscribe:
                user.subscribe_time = int(now)
            user.subscribe = subscribe
        if scene_str is not None:
            user.subscribe_scene, user.qr_scene_str = "ADD_SCENE_QR_CODE", scene_str
        if subscribe:
            user.last_interaction = now  # following opens the customer-service window
        return user

    def unsubscribe(self, app_id: str, openid: str) -> None:
        user = self.accounts[app_id].users.get(openid)
        if user is not None:
            user.subscribe = False

    def touch(self, app_id: str, openid: str, at: float | None = None) -> None:
        """The user messaged / scanned / clicked: the 48-hour window restarts."""
        user = self.accounts[app_id].users.get(openid)
        if user is not None:
            user.last_interaction = self.clock.now() if at is None else at

    def add_card(self, app_id: str, card_id: str, title: str = "优惠券") -> None:
        """A WeChat card (coupon) created by the account (in production: card/create, approved)."""
        self.accounts[app_id].cards[card_id] = title

    def landing_page(self, page_id: int) -> dict[str, Any] | None:
        return self.landing_pages.get(page_id)

    def qrcode_picture(self, ticket: str) -> bytes | None:
        """The PNG mp.weixin.qq.com/cgi-bin/showqrcode serves for a ticket (None: unknown or expired)."""
        for account in self.accounts.values():
            qr = account.qrcodes.get(ticket)
            if qr is None:
                continue
            if "expires_at" in qr and qr["expires_at"] <= self.clock.now():
                return None
            return qr_png(str(qr["url"]))  # the code encodes the weixin.qq.com/q/… URL, as Tencent's does
        return None

    # ------------------------------------------------------------------ API handlers

    def routes(self) -> dict[str, Callable[[Ctx], dict[str, Any]]]:
        return {
            "/cgi-bin/user/info": self.user_info,
            "/cgi-bin/qrcode/create": self.create_qrcode,
            "/cgi-bin/message/template/send": self.send_template,
            "/cgi-bin/message/custom/send": self.send_custom,
            "/cgi-bin/media/upload": self.upload_media,
            "/card/landingpage/create": self.create_landing_page,
        }

    def _user(self, account: OfficialAccount, openid: str) -> Follower:
        user = account.users.get(openid) if openid else None
        if user is None:
            raise SimError(40003, "invalid openid")
        return user

    def user_info(self, ctx: Ctx) -> dict[str, Any]:
        account = self.accounts[ctx.owner]
        openid = ctx.query.get("openid", "")
        if not openid:
            raise SimError(41009, "missing openid")
        user = self._user(account, openid)
        if not user.subscribe:
            # Tencent: "subscribe 0: the user does not follow the account; nothing else is returned".
            return {"subscribe": 0, "openid": openid, "tagid_list": []}
        info: dict[str, Any] = {
            "subscribe": 1,
            "openid": openid,
            "language": ctx.query.get("lang", "zh_CN"),
            "subscribe_time": user.subscribe_time,
            "remark": "",
            "groupid": 0,
            "tagid_list": [],
            "subscribe_scene": user.subscribe_scene,
            "qr_scene": 0,
            "qr_scene_str": user.qr_scene_str,
        }
        if user.unionid:  # only when the account is bound to the brand's open platform
            info["unionid"] = user.unionid
        return info

    def create_qrcode(self, ctx: Ctx) -> dict[str, Any]:
        account = self.accounts[ctx.owner]
        body = ctx.json()
        action = text_of(body, "action_name")
        if action not in ("QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE"):
            raise SimError(40052, "invalid action name")
        info = body.get("action_info")
        scene = info.get("scene") if isinstance(info, dict) else None
        if not isinstance(scene, dict):
            raise SimError(40053, "invalid action info")
        permanent = action.startswith("QR_LIMIT")
        if action.endswith("STR_SCENE"):
            value = scene.get("scene_str")
            if not isinstance(value, str) or not 1 <= len(value) <= 64:
                raise SimError(40053, "invalid action info: scene_str must be 1..64 characters")
        else:
            value = scene.get("scene_id")
            top = 100_000 if permanent else 2**32 - 1
            if not isinstance(value, int) or not 1 <= value <= top:
                raise SimError(40053, "invalid action info: scene_id out of range")
        ticket = random_id("gQ", 40)
        answer: dict[str, Any] = {"ticket": ticket, "url": f"http://weixin.qq.com/q/{random_id('02', 20)}"}
        qr: dict[str, Any] = {"scene": value, "permanent": permanent, **answer}
        if not permanent:
            expire = int(body.get("expire_seconds") or QR_DEFAULT_EXPIRE)
            answer["expire_seconds"] = qr["expire_seconds"] = min(expire, QR_MAX_EXPIRE)
            qr["expires_at"] = self.clock.now() + qr["expire_seconds"]
        account.qrcodes[ticket] = qr
        return answer

    def send_template(self, ctx: Ctx) -> dict[str, Any]:
        account = self.accounts[ctx.owner]
        body = ctx.json()
        user = self._user(account, text_of(body, "touser"))
        template_id = text_of(body, "template_id")
        if not template_id or (account.templates and template_id not in account.templates):
            raise SimError(40037, "invalid template_id")
        if not isinstance(body.get("data", {}), dict):
            raise SimError(47001, "data format error")
        if not user.subscribe:
            raise SimError(43004, "require subscribe")
        now = self.clock.now()
        client_msg_id = text_of(body, "client_msg_id")
        if client_msg_id:
            seen = account.client_msg_ids.get((user.openid, client_msg_id))
            if seen is not None and now - seen[1] < CLIENT_MSG_ID_TTL:
                return {"errcode": 0, "errmsg": "ok", "msgid": seen[0]}  # sent once, not again
        self._next_msgid += 1
        msgid = self._next_msgid
        if client_msg_id:
            account.client_msg_ids[(user.openid, client_msg_id)] = (msgid, now)
        account.template_messages.append({**body, "msgid": msgid, "sent_at": now})
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}

    def send_custom(self, ctx: Ctx) -> dict[str, Any]:
        account = self.accounts[ctx.owner]
        body = ctx.json()
        user = self._user(account, text_of(body, "touser"))
        msgtype = text_of(body, "msgtype")
        if msgtype not in CUSTOM_MSG_TYPES:
            raise SimError(40008, "invalid message type")
        if msgtype == "text" and not text_of(body.get("text"), "content"):
            raise SimError(44004, "empty content")
        now = self.clock.now()
        if not user.subscribe or user.last_interaction is None or now - user.last_interaction > CUSTOM_WINDOW:
            raise SimError(45015, "response out of time limit or subscription is canceled")
        account.custom_messages.append({**body, "sent_at": now})
        return {"errcode": 0, "errmsg": "ok"}

    def upload_media(self, ctx: Ctx) -> dict[str, Any]:
        account = self.accounts[ctx.owner]
        kind = ctx.query.get("type", "")
        if kind not in OA_MEDIA_TYPES:
            raise SimError(40004, "invalid media type")
        upload = ctx.body
        if not isinstance(upload, UploadedFile) or not upload.data:
            raise SimError(41005, "media data missing")
        media_id = random_id("", 64)
        account.media[media_id] = (kind, upload)
        return {"type": kind, "media_id": media_id, "created_at": int(self.clock.now())}

    def create_landing_page(self, ctx: Ctx) -> dict[str, Any]:
        """card/landingpage/create: a page listing cards of this account, each claimable with a tap
        in WeChat → url, page_id. Every field is required; a card the account does not own: 40073."""
        account = self.accounts[ctx.owner]
        body = ctx.json()
        cards = body.get("card_list")
        if not all(k in body for k in ("banner", "page_title", "can_share", "scene", "card_list")):
            raise SimError(47001, "data format error: banner, page_title, can_share, scene and card_list required")
        if not text_of(body, "page_title") or body.get("scene") not in LANDING_SCENES:
            raise SimError(47001, "data format error: page_title or scene")
        if not isinstance(cards, list) or not cards or not all(isinstance(c, dict) for c in cards):
            raise SimError(47001, "data format error: card_list")
        card_ids = [text_of(c, "card_id") for c in cards]
        if any(c not in account.cards for c in card_ids):
            raise SimError(40073, "invalid card id")
        page_id = len(self.landing_pages) + 1
        self.landing_pages[page_id] = {
            "app_id": account.app_id, "card_ids": card_ids, "title": text_of(body, "page_title"),
            "scene": body["scene"], "created_at": self.clock.now(),
        }
        url = f"{self.base_url()}{LANDING_PAGE_PATH}?__biz={account.original_id}&page_id={page_id}"
        return {"errcode": 0, "errmsg": "ok", "url": url, "page_id": page_id}
