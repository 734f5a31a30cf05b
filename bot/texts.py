"""Every user-facing Chinese string of the bot, in one place (later issues add theirs here)."""

from __future__ import annotations

# ---------------------------------------------------------------- operators: dead letters (CLI)
DEADLETTER_NONE = "没有待处理的死信。"
DEADLETTER_TITLE = "死信（无法处理的回调）"
DEADLETTER_COLUMNS = ("编号", "回调编号", "渠道", "账号", "去重键", "原因", "时间", "状态")
DEADLETTER_REPLAYED = "已重新排队 {count} 条回调，运行中的服务会尽快处理。"
DEADLETTER_NOTHING_TO_REPLAY = "没有可重放的死信。"
DEADLETTER_REPLAY_NEEDS_TARGET = "请给出死信编号，或使用 --all 重放全部。"

# ---------------------------------------------------------------- `qianmian demo`
DEMO_TITLE = "千面 qianmian 演示：模拟器 + 机器人 + 示例零售商（无需任何账号）"
DEMO_GENERATED = (
    "已生成示例零售商：{customers} 位顾客，共 {rows} 行 CSV（门店、导购、商品、会员、订单、事件），位于 {path}"
)
DEMO_IMPORTED = (
    "导入完成：{rows} 行已入库，{rejected} 行被拒（原因见 {rejects}）；"
    "识别为 {persons} 位顾客（One ID），发现 {shared} 个共用标识（如门店手机号），它们不合并任何人。"
)
DEMO_STARTED = "企业微信/公众号模拟器：{sim}\n机器人已启动：{bot}（回调地址 /wecom/callback、/wechat/callback/<appid>）"
DEMO_SCENE_MEMBER_SCAN = "场景一：老会员进店，扫描门店企微二维码添加导购"
DEMO_SCENE_NEW_FOLLOWER = "场景二：新顾客扫描门店公众号二维码关注"
DEMO_SCENE_FOLLOWER_ADDS_GUIDE = "场景三：同一位新顾客随后添加导购企微（同一 unionid → 合并为同一人）"
DEMO_SCENE_COUPON = "场景四：新顾客领取 30 元无门槛券并在门店核销"
DEMO_SCENE_RETRY = "场景五：腾讯未及时收到应答，重发同一条回调"
DEMO_SCENE_FORGED = "场景六：伪造签名的回调"
DEMO_SCENE_POS_EXPORT = "场景七：晚间 POS 导出到达：新顾客在收银台注册会员并消费"
DEMO_CARD = (
    "  顾客 {person}｜会员姓名 {names}\n"
    "  标识：{ids}\n"
    "  已付订单 {orders} 笔，共 {amount:.2f} 元｜事件：{events}"
)
DEMO_HISTORY = "  {at} {action}：{why}"
DEMO_NO_PERSON = "  （尚未识别到这位顾客）"
DEMO_RETRY_RESULT = "  重发的回调同样得到 HTTP {status} 应答；事件总数 {before} → {after}（只记录一次）。"
DEMO_FORGED_RESULT = "  伪造回调被拒绝：HTTP {status}，未写入任何数据。"
DEMO_TRY = (
    "机器人仍在 {bot} 运行。在另一个终端试试：\n"
    "  curl {bot}/healthz ; curl {bot}/metrics\n"
    "  DATABASE_URL={db_url} QIANMIAN_SECRET_KEY=$(cat {secret_file}) .venv/bin/qianmian export profiles\n"
    "  DATABASE_URL={db_url} .venv/bin/qianmian deadletter list"
)
DEMO_RUNNING = "按 Ctrl-C 结束演示。"
# --no-wait: the bot stops with the story; what was recorded stays in the demo's database.
DEMO_STOPPED = (
    "演示结束，机器人已停止（去掉 --no-wait 可让它继续运行）。数据仍在，可以试试：\n"
    "  DATABASE_URL={db_url} QIANMIAN_SECRET_KEY=$(cat {secret_file}) .venv/bin/qianmian export profiles\n"
    "  DATABASE_URL={db_url} .venv/bin/qianmian deadletter list"
)

# ---------------------------------------------------------------- tags (tags.md): names people read
TAG_NAMES = {
    "lifecycle": "生命周期", "rfm": "RFM分层", "purchase_power": "购买力", "wallet_depth": "钱包深度",
    "price_orientation": "购买类型", "preferred_category": "偏好品类", "browse_preference": "浏览偏好",
    "preferred_channel": "偏好渠道", "preferred_store": "常去门店", "core_sku": "核心SKU",
    "coupon_outstanding": "领券未核销", "coupon_redemption_rate": "券核销率", "is_member": "会员",
    "oa_follower": "公众号粉丝", "wecom_contact": "企微好友", "guides": "所属导购", "source": "渠道来源",
    "level": "会员等级", "city": "城市", "gender": "性别", "birthday_month": "生日月",
}
TAG_NONE = "无"
TAG_CHANGE = "{on} {tag} 由 {old} 变为 {new}"

# ---------------------------------------------------------------- operators: tags, history, labels (CLI)
NO_SUCH_PERSON = "找不到顾客“{identity}”（未知标识，或为共用标识）。"
TAGS_REFRESHING = "正在计算标签（截至 {as_of}）"
TAGS_REFRESHED = (
    "标签已更新：{persons} 位顾客，{changes} 处标签变化，移除 {dropped} 份已合并顾客的档案，用时 {seconds:.1f} 秒。"
)
TAGS_SETTINGS_TITLE = "标签规则阈值"
TAGS_SETTINGS_COLUMNS = ("键", "当前值", "默认值", "含义")
TAGS_SET_DONE = "已将 {key} 设为 {value}，下次刷新标签时生效（qianmian tags refresh）。"
TAGS_RESET_DONE = "已将 {key} 恢复为默认值 {value}，下次刷新标签时生效。"
TAGS_UNKNOWN_KEY = "没有名为 {key} 的规则阈值；可用的有：{keys}"
TAGS_BAD_VALUE = "{key} 的值“{value}”无效：{reason}"
HISTORY_TITLE = "顾客 {person} 的标签变化（最新在前）："
HISTORY_NONE = "顾客 {person} 的标签还没有变化记录。"
LABEL_ADDED = "已给顾客 {person} 打上标签“{label}”。"
LABEL_ALREADY = "顾客 {person} 已有标签“{label}”。"
LABEL_REMOVED = "已去掉顾客 {person} 的标签“{label}”。"
LABEL_ABSENT = "顾客 {person} 没有标签“{label}”。"
LABEL_INVALID = "标签“{label}”无效：{reason}"
LABEL_REASONS = {"empty": "不能为空", "too long": "最多 20 个字", "separator": "不能包含逗号、竖线、分号或换行"}
LABELS_OF = "顾客 {person} 的标签：{labels}"
LABEL_LOG_LINE = "  {at} {who} {action}“{label}”"
LABEL_ACTIONS = {"add": "打上", "remove": "去掉"}

# ---------------------------------------------------------------- the portrait (guides' phones, commands, page)
CHANNEL_NAMES = {"pos": "门店", "miniapp": "小程序", "ecom": "电商", "oa_mall": "公众号商城"}
PORTRAIT_TITLE = "【顾客画像】{who}"
PORTRAIT_WHO_UNKNOWN = "未留名顾客"
PORTRAIT_MEMBER = "{level} 会员"
PORTRAIT_NOT_MEMBER = "非会员"
PORTRAIT_LIFECYCLE = "生命周期：{lifecycle}"
PORTRAIT_LIFECYCLE_SINCE = "（{on} 由 {old} 变为 {new}）"
PORTRAIT_RFM = "RFM：{rfm}"
PORTRAIT_VALUE = "购买力 {power}｜钱包 {wallet}｜{orientation}"
PORTRAIT_PREFERENCES = "偏好：{parts}"
PORTRAIT_PREFERRED_STORE = "常去 {store}"
PORTRAIT_CORE_SKU = "常买：{skus}"
PORTRAIT_LAST_PURCHASE = "最近购买：{on} {where} {amount:.2f} 元（近一年 {orders} 单，共 {total:.2f} 元）"
PORTRAIT_NO_PURCHASE = "还没有购买记录"
PORTRAIT_COUPONS = "未用券：{coupons}"
PORTRAIT_COUPON = "{name}（{until} 到期）"
PORTRAIT_COUPON_NO_EXPIRY = "{name}"
PORTRAIT_BROWSING = "最近在看：{items}"
PORTRAIT_GUIDES = "所属导购：{guides}"
PORTRAIT_SOURCE = "来源：{source}"
PORTRAIT_LABELS = "标签：{labels}"
PORTRAIT_TIPS = "建议话术："
PORTRAIT_TIP_LINE = "{n}. {tip}"
TIP_BIRTHDAY = "本月是 TA 的生日，可以送上生日祝福和生日礼。"
TIP_COUPON = "TA 还有“{coupon}”没用，提醒到店使用。"
TIP_PRICE = "TA 比较看重优惠，重点介绍当前折扣和满减活动。"
TIP_CORE_SKU = "TA 常买“{sku}”，可以提醒补货或介绍同款新色。"
TIP_DORMANT = "TA 很久没来了，先问候，再送上回归礼遇。"
TIP_LOYAL = "老顾客，感谢长期支持，优先推荐{category}新品。"
TIP_LOYAL_NO_CATEGORY = "老顾客，感谢长期支持，优先介绍新品和会员专享。"
TIP_QUALITY = "TA 注重品质，多介绍面料、做工和搭配。"
TIP_BROWSING = "TA 最近在看{category}，可以推荐相关款式。"
TIP_NEW = "新朋友，介绍会员权益和首单礼。"
TIP_GREETING = "先问候，了解 TA 今天想看什么。"
DEMO_TAGS = "标签已计算（截至 {as_of}）：{persons} 位顾客。生命周期分布：{lifecycles}"
DEMO_PORTRAIT_INTRO = "  导购 {guide} 点开画像后看到的内容（文字版）："
DEMO_TAG_CHANGES = "  这位顾客今天的标签变化："
DEMO_SCENE_CORP_TAGS = "场景八：生命周期、RFM 和自定义标签同步为企业微信客户标签（导购在企微里直接可见）"
DEMO_LABEL_PUT = "  导购 {guide} 给这位老会员打上自定义标签“{label}”。"
DEMO_CORP_TAGS_RESULT = "  已同步 {sent} 条企微客户标签；老会员在导购 {guide} 的企微里显示：{tags}"

# ---------------------------------------------------------------- scan → portrait card, welcome (issue 4)
CARD_SOURCE = "千面·顾客画像"
CARD_TITLE_KNOWN = "{who} 刚刚添加了您"
CARD_TITLE_SCANNED = "{who} 刚刚扫码进店"
CARD_TITLE_NEW = "新顾客 刚刚添加了您"
CARD_TITLE_NEW_SCANNED = "新顾客 刚刚扫码进店"
CARD_DESC_STORE = "来自 {store} 的二维码"
CARD_DESC_GUIDE = "来自您的专属二维码"
CARD_NEW_CUSTOMER = "首次到访，暂无购买记录"
CARD_KEYS = {
    "lifecycle": "生命周期", "level": "会员等级", "preferences": "偏好", "last_purchase": "最近购买",
    "coupons": "未用券", "value": "购买力", "phone": "手机",
}
CARD_LAST_PURCHASE = "{on} {amount:.0f}元"
CARD_TIPS = "建议：{tips}"
CARD_OPEN = "查看完整画像"
CARD_NOT_MEMBER = "非会员"
# Welcome messages by kind of new contact (a marketer edits them: `qianmian welcome set KIND ...`).
# Placeholders: {guide} the guide's name, {store} the store's name.
WELCOME_DEFAULTS = {
    "new": "您好，我是{store}的{guide}，很高兴认识您！新人礼已为您备好：首单立减券，到店或在小程序下单即可使用。",
    "price": "您好，我是{store}的{guide}！本周店内正在做优惠活动，部分商品低至 7 折，需要的话随时问我。",
    "loyal": "您好，我是{store}的{guide}，感谢您一直以来的支持！新品刚刚到店，先给您留意几款合适的。",
    "default": "您好，我是{store}的{guide}，有任何需要随时找我。",
}
WELCOME_KIND_NAMES = {"new": "新顾客", "price": "价格导向", "loyal": "忠诚顾客", "default": "其他"}
WELCOME_STORE_FALLBACK = "本店"
WELCOME_GUIDE_FALLBACK = "您的专属顾问"
WELCOME_TITLE = "欢迎语模板"
WELCOME_COLUMNS = ("类型", "适用顾客", "内容", "链接", "券", "修改人")
WELCOME_SET_DONE = "已更新“{kind}”欢迎语，新添加的顾客将收到新内容。"
WELCOME_RESET_DONE = "“{kind}”欢迎语已恢复默认。"
WELCOME_BAD_KIND = "没有“{kind}”这类欢迎语；可用的有：{kinds}"
WELCOME_BAD_TEXT = "欢迎语无效：{reason}"
WELCOME_REASONS = {
    "empty": "内容不能为空",
    "too long": "内容最多 {limit} 字节（企业微信限制）",
    "placeholder": "不认识的占位符 {{{name}}}，只能用 {{guide}} 和 {{store}}",
    "format": "花括号不成对（要写花括号本身请用 {{{{ 和 }}}}）",
}
WELCOME_BAD_LINK = "链接必须以 https:// 或 http:// 开头：{url}"
OUTBOX_TITLE = "待发消息（outbox）"
OUTBOX_COUNTS = "待发 {pending}，已发 {sent}，失败 {failed}，过期 {expired}"

# ---------------------------------------------------------------- the portrait page (GET /p/{token}, issue 4)
PAGE_TITLE = "顾客画像"
PAGE_HEAD_TITLE = "顾客画像 · {who}"
PAGE_SECTION_TAGS = "画像"
PAGE_PREFERENCES = "偏好"
PAGE_BROWSING = "最近在看"
PAGE_LABELS = "自定义标签"
PAGE_SECTION_CHART = "近一年品类消费"
PAGE_CHART_EMPTY = "近一年没有购买记录"
PAGE_CATEGORY_OTHER = "其他"
PAGE_AMOUNT = "{amount:.2f} 元"
PAGE_SECTION_TIMELINE = "最近订单"
PAGE_ITEM = "{name}×{qty}"
PAGE_SECTION_COUPONS = "未用券"
PAGE_COUPON_UNTIL = "{until} 到期"
PAGE_COUPON_NO_EXPIRY = "长期有效"
PAGE_COUPONS_EMPTY = "没有未用的券"
PAGE_SECTION_TIPS = "建议话术"
PAGE_AS_OF = "数据截至 {as_of}"
PAGE_FOOTER = "仅供服务顾客使用，请勿截图外传。"
PAGE_REFUSED_TITLE = "无法打开客户画像"
PAGE_FORGED = "链接无效"
PAGE_EXPIRED = "链接已过期，请在企业微信中重新打开客户画像"
PAGE_FOREIGN = "此链接只发给了导购{guide}"
PAGE_DENIED = "你目前无权查看这位顾客的画像"
PAGE_DENIED_HINTS = {
    "not_theirs": "TA 不是你（或你门店）的企业微信好友，24 小时内也没有扫过你门店的二维码。",
    "unknown_viewer": "你不在导购名单中，请联系管理员。",
    "unknown_role": "你的角色不能查看顾客画像，请联系管理员。",
}
PAGE_NO_PERSON = "找不到这位顾客（可能已与其他顾客合并或已移除）"
PAGE_AUTH_FAILED = "无法确认你的企业微信身份，请在企业微信中重新打开客户画像"
PAGE_AUTH_UNAVAILABLE = "暂时无法确认你的企业微信身份，请稍后再试"

# ---------------------------------------------------------------- store and guide QR codes (issue 4)
QR_KINDS = {"store": "门店", "guide": "导购"}
QR_CHANNEL_WECOM = "企业微信"
QR_CHANNEL_OA = "公众号 {appid} "
QR_CREATED = "已生成{who}的{channel}二维码。"
QR_REUSED = "{who}的{channel}二维码已存在，沿用原码（未占用新的名额）。"
QR_WHO_STORE = "门店 {name}（{store_id}）"
QR_WHO_GUIDE = "导购 {name}（{guide_id}）"
QR_STATE_LINE = "渠道参数：{state}"
QR_ROTATES_LINE = "轮流接待：{guides}"
QR_SERVED_BY_LINE = "接待导购：{guides}"
QR_PICTURE_LINE = "二维码图片：{path}"
QR_GUIDE_NAME = "{name}（{guide_id}）"
QR_STATE_TOO_LONG = "二维码参数“{state}”有 {length} 个字符，超过腾讯允许的 {limit} 个，请换用更短的{kind}编号。"
QR_STATE_EMPTY = "请给出{kind}编号。"
QR_UNKNOWN_STORE = "找不到门店“{store_id}”，请先导入 stores.csv。"
QR_UNKNOWN_GUIDE = "找不到员工“{guide_id}”，请先导入 guides.csv。"
QR_NO_STAFF = "门店 {store_id} 没有登记导购或店长，无法生成门店二维码（请在 guides.csv 中登记）。"
QR_NO_WECOM = "没有配置企业微信应用（WECOM_CORP_ID、WECOM_SECRET、WECOM_AGENT_ID），无法生成企业微信二维码。"
QR_NO_OA = "公众号 {appid} 没有配置（需要 AppSecret），无法生成公众号二维码。"
QR_NO_OA_AT_ALL = "没有配置公众号，无法生成公众号二维码。"
QR_TENCENT_FAILED = "腾讯接口调用失败：{error}"
QR_NOT_A_PICTURE = "腾讯返回的不是二维码图片（{url}）。"
QR_LIST_NONE = "还没有生成过二维码。"
QR_LIST_TITLE = "已生成的二维码"
QR_LIST_COLUMNS = ("渠道", "渠道参数", "门店", "导购", "轮流接待", "图片", "创建人", "创建时间")
QR_CLI_ONE_TARGET = "请给出 --store 或 --guide 之一。"
# Chat: a staff member asks the bot for a QR code.
QR_CHAT_UNKNOWN_STAFF = "您不在员工名单（guides.csv）中，不能生成二维码。"
QR_CHAT_GUIDE_OWN_ONLY = "导购只能生成自己的专属二维码，可以说：生成我的二维码。"
QR_CHAT_MANAGER_OWN_STORE = "店长只能生成本店（{store_id}）和本店导购的二维码。"
QR_CHAT_NO_OWN_STORE = "您没有所属门店，请说明门店编号，例如：给S001门店生成二维码。"
QR_CHAT_NOT_UNDERSTOOD = (
    "没听懂要生成哪个二维码。可以这样说：给S001门店生成二维码、生成导购G001的二维码、生成我的二维码。"
)
QR_CHAT_FAILED = "二维码没有生成：{reason}"
DEMO_CARD_INTRO = "  导购 {guide} 的企业微信收到顾客画像卡片（回调应答之后立即推送）："
DEMO_CARD_LINK = "    完整画像（浏览器打开，24 小时内有效，只给这位导购）：{url}"
DEMO_WELCOME = "  顾客收到的欢迎语：{text}"
DEMO_NO_CARD = "  （导购还没有收到画像卡片）"
DEMO_STORE_CARDS = "  门店导购 {guides} 各收到一张卡片“{title}”（每张卡片的链接只对收件导购本人有效）。"

# ---------------------------------------------------------------- chat commands (bot/chat/)
CHAT_UNKNOWN_STAFF = "您不在员工名单（guides.csv）中，不能使用这个功能。"
CHAT_READING = "我理解为：{reading}"
CHAT_WORKING = "正在圈选，请稍候……"
CHAT_SEGMENT_COUNT = "共 {count} 人。"
CHAT_SEGMENT_EMPTY = "共 0 人。"
CHAT_SEGMENT_EMPTY_WHY = "没有人同时满足这些条件：{why}"
CHAT_CONTRADICTION_DORMANT = "“沉睡”指近一年没有消费，与“近期消费”的条件互相矛盾"
CHAT_CONTRADICTION_LOST = "“流失”指近两年没有任何活动，与近期消费或活动的条件互相矛盾"
CHAT_SEGMENT_SAMPLES = "示例：{samples}"
CHAT_SEGMENT_SAMPLE = "{name}（{phone}，{lifecycle}）"
CHAT_SEGMENT_SAVED = "已保存为人群“{name}”，可以说“给刚才那批人……”或“把{name}这个人群……”继续使用。"
CHAT_SCOPE_GUIDE = "（只在您的企微好友中圈选）"
CHAT_SCOPE_MANAGER = "（只在{store}的顾客中圈选）"
CHAT_NO_LAST_SEGMENT = "还没有“刚才那批人”：请先圈选一个人群。"
CHAT_NO_SUCH_SEGMENT = "没有名为“{name}”的人群。"
CHAT_NOT_UNDERSTOOD = "没有完全听懂这句话。"
CHAT_UNPLACED = "没能理解的部分：{words}。"
CHAT_UNKNOWN_NAME = "没有名为“{name}”的{kind}。"
CHAT_UNKNOWN_CITY = "没有城市为“{name}”的门店或会员。"
CHAT_UNKNOWN_KINDS = {
    "store": "门店", "guide": "员工", "tag": "标签", "category": "品类", "brand": "品牌", "sku": "商品",
    "coupon": "优惠券", "campaign": "活动", "label": "自定义标签", "city": "城市", "segment": "人群",
}
CHAT_SUGGEST = "可以这样说：\n{examples}"
CHAT_SUGGEST_LINE = "· {example}"
CHAT_HELP = (
    "我可以帮您：圈人、看画像、打标签、做统计，发营销活动的草稿。每条改变数据的命令都会先预览，回复“确认”才执行。"
    "\n例如：\n{examples}"
)
CHAT_ROLE_NEEDED = "只有市场或管理员角色可以{action}。"
CHAT_ACTION_LABEL = "打标签"
CHAT_ACTION_CAMPAIGN = "发营销活动"
CHAT_ACTION_REPORT = "查看全公司统计"
CHAT_LABEL_PREVIEW = "将给以下 {count} 人{verb}“{label}”标签。回复“确认”执行，回复“取消”放弃（{minutes} 分钟内有效）。"
CHAT_LABEL_VERB_ADD = "打上"
CHAT_LABEL_VERB_REMOVE = "去掉"
CHAT_LABEL_DONE = "已给 {changed} 人{verb}“{label}”标签（共 {count} 人，其余 {same} 人原本{already}）。"
CHAT_LABEL_ALREADY_ADD = "已有此标签"
CHAT_LABEL_ALREADY_REMOVE = "没有此标签"
CHAT_LABEL_BAD = "标签“{label}”不能使用：{reason}。"
CHAT_LABEL_REASONS = {"empty": "标签为空", "too long": "超过 20 个字", "separator": "不能含逗号、分号等分隔符"}
CHAT_PERSON_ONE = "这位顾客：{who}"
CHAT_NO_PENDING = "没有等待确认的操作。"
CHAT_PENDING_LAPSED = "上一个操作已超过 {minutes} 分钟未确认，已作废，请重新发送命令。"
CHAT_CANCELLED = "已取消。"
CHAT_CAMPAIGN_PREVIEW = (
    "营销活动“{name}”预览：目标 {targeted} 人\n内容：{content}\n发送时间：{when}（免打扰时段顺延）\n"
    "将发出 {planned} 条（{channels}）\n不发送：对照组 {control} 人（用于衡量效果）、超出频次上限 {capped} 人、"
    "已退订 {opted_out} 人、无法触达 {unreachable} 人（其中企微本月额度已满 {quota} 人）\n"
    "回复“确认”排期发送，回复“取消”放弃（{minutes} 分钟内有效）。"
)
CHAT_CAMPAIGN_SCHEDULED = (
    "已排期营销活动“{name}”：{when} 起发送 {planned} 条（{channels}）；对照组 {control} 人，"
    "频次上限 {capped} 人、已退订 {opted_out} 人、无法触达 {unreachable} 人不发送。"
    "之后可以说“统计{name}的效果”。"
)
CHAT_CONTROL_VERBS = {"pause": "暂停", "resume": "恢复", "cancel": "取消"}
CHAT_CAMPAIGN_STATUS = {
    "draft": "草稿", "scheduled": "已排期", "running": "发送中", "paused": "已暂停", "cancelled": "已取消",
    "done": "已结束",
}
CHAT_CONTROL_PREVIEW = (
    "将{verb}营销活动“{name}”（当前{status}，还有 {waiting} 条未发送）。"
    "回复“确认”执行，回复“取消”放弃（{minutes} 分钟内有效）。"
)
CHAT_CONTROL_NOT_NOW = "营销活动“{name}”当前{status}，不能{verb}。"
CHAT_CONTROL_CHANGED = "营销活动“{name}”的状态刚刚变了，没有{verb}，请再看一下。"
CHAT_CONTROL_DONE = "营销活动“{name}”现在{status}。"
CHAT_CAMPAIGN_CHANNEL_NAMES = {
    "wecom": "企微导购", "oa_template": "公众号模板消息", "oa_custom": "公众号客服消息", "sms": "短信",
}
CHAT_CAMPAIGN_CHANNELS = {"wecom": "企业微信（导购一对一）", "oa": "公众号", "any": "企业微信或公众号（自动选择）"}
CHAT_CAMPAIGN_NOW = "确认后立即发送"
CHAT_CAMPAIGN_COUPON_CASH = "{value}元{threshold}券"
CHAT_CAMPAIGN_COUPON_NO_THRESHOLD = "无门槛"
CHAT_CAMPAIGN_COUPON_THRESHOLD = "满{threshold}元可用"
CHAT_CAMPAIGN_COUPON_DISCOUNT = "{rate}折券"
CHAT_CAMPAIGN_COUPON_GIFT = "礼品券"
CHAT_CAMPAIGN_COUPON_CARD = "优惠券“{name}”"
CHAT_CAMPAIGN_NO_CONTENT = "（未写内容）"
CHAT_PORTRAIT_NOT_FOUND = "找不到这位顾客：{who}。"
CHAT_PORTRAIT_SEVERAL = "有 {count} 位顾客符合“{who}”，请加上门店或改用手机号、会员号：\n{people}"
CHAT_PORTRAIT_DENIED = "这位顾客不是您的顾客，不能查看画像。"
CHAT_PORTRAIT_LINK = "完整画像（{hours} 小时内有效）：{url}"
CHAT_REPORT_SCOPE_GUIDE = "（只统计您的企微好友）"
CHAT_REPORT_SCOPE_MANAGER = "（只统计{store}的顾客）"
CHAT_FAILED = "处理这条命令时出错了，已记录（编号 {key}），请稍后再试。"
CHAT_ASK_SENT_IMAGE = "[图片] {path}"
CHAT_CONFIRM_WORD = "确认"
DEMO_SCENE_CHAT = "场景九：市场部在企业微信里对机器人说中文：圈人、打标签（先预览、再确认）、统计、营销活动预览"
DEMO_CHAT_ASK = "  {userid} 发送：{command}"
DEMO_CHAT_PICTURE = "[图表图片]"
DEMO_CHAT_COMMANDS = (
    "看看上海有多少高价值会员",
    "圈选近90天消费2次以上且客单价高于300元的会员",
    "给刚才那批人打上“高潜客”标签",
    "确认",
    "对比一下各渠道上个月的销售额",
    "统计价格导向会员近90天各渠道的销售额",
    "给上海门店的价格导向会员下周一上午10点发30元无门槛券",
    "圈选喜欢火星的会员",
)
DEMO_CHAT_CHARTED = ("对比一下各渠道上个月的销售额",)

# ---- segment readings (nlp/describe.py)
# A segment (nlp.segment) read back in plain Chinese: "近90天消费次数≥2次，且生命周期为沉睡，且是会员".
SEGMENT_READINGS = {
    "and": "，且",
    "or": "，或",
    "group": "（{text}）",
    "not": "不满足（{text}）",
    "list_sep": "、",
    "list_last": "或",
    "everyone": "所有顾客",
    "nobody": "没有人",
    "saved": "人群“{name}”",
    "saved_last": "上一次圈选的人群",
    "label": "有“{name}”标签",
    "not_label": "没有“{name}”标签",
    "store_city": "常去门店在{city}",
    "not_store_city": "常去门店不在{city}",
    "guide_holds": "导购{guide}的好友",
    "not_guide_holds": "不是导购{guide}的好友",
    "named": "{name}（{id}）",
    # tags
    "tag_is": "{tag}为{value}",
    "tag_is_not": "{tag}不是{value}",
    "tag_in": "{tag}为{values}",
    "tag_not_in": "{tag}不是{values}",
    "tag_cmp": "{tag}{cmp}",
    "tag_absent": "没有{tag}",
    "tag_present": "有{tag}",
    "tag_contains": "{tag}包含{value}",
    "tag_not_contains": "{tag}不包含{value}",
    "yes_tag": "是{tag}",
    "not_yes_tag": "不是{tag}",
    "coupon_outstanding": "持有已领取未核销的券",
    "not_coupon_outstanding": "没有已领取未核销的券",
    "city": "城市为{value}",
    "not_city": "城市不是{value}",
    "gender_is": "是{value}",
    "gender_F": "女性",
    "gender_M": "男性",
    "birthday_month": "生日在{value}月",
    "month": "{value}月",
    "percent": "{value}%",
    "level_ge": "会员等级{value}及以上",
    "level_le": "会员等级{value}及以下",
    # comparisons: {value} / {high} already carry their unit
    "cmp_eq": "={value}",
    "cmp_ne": "≠{value}",
    "cmp_ge": "≥{value}",
    "cmp_gt": ">{value}",
    "cmp_le": "≤{value}",
    "cmp_lt": "<{value}",
    "cmp_between": "在{value}至{high}之间",
    "cmp_in": "为{values}",
    # units
    "yuan": "{value}元",
    "times": "{value}次",
    # windows
    "days": "近{n}天",
    "ever": "曾经",
    "week_0": "本周",
    "week_-1": "上周",
    "week_1": "下周",
    "week_n": "{n}周前",
    "week_later": "{n}周后",
    "month_0": "本月",
    "month_-1": "上个月",
    "month_1": "下个月",
    "month_n": "{n}个月前",
    "month_later": "{n}个月后",
    "year_0": "今年",
    "year_-1": "去年",
    "year_1": "明年",
    "year_n": "{n}年前",
    "year_later": "{n}年后",
    "festival": "{name}",
    "festival_of": "{year}年{name}",
    "month_of": "{month}月",
    "month_of_year": "{year}年{month}月",
    "dates": "{start}至{end}",
    "span": "（{first}至{last}）",
    # where, what
    "at_store": "在{store}",
    "at_channels": "在{channels}",
    "category": "{value}",
    "brand": "{value}品牌",
    "sku": "{value}",
    # orders
    "count": "消费次数{cmp}",
    "amount": "消费金额{cmp}",
    "aov": "客单价{cmp}",
    "max": "单笔最高{cmp}",
    "item_count": "购买{item}的订单数{cmp}",
    "item_amount": "购买{item}的金额{cmp}",
    "item_aov": "购买{item}的客单价{cmp}",
    "item_max": "购买{item}的单笔最高{cmp}",
    "bought": "买过{item}",
    "bought_any": "有购买",
    "not_bought": "没有买过{item}",
    "not_bought_any": "没有购买",
    "first_order": "新客（首单在{window}）",
    "returning": "老客（{window}之前和{window}都有购买）",
    # events
    "did": "{action}",
    "did_item": "{action}{item}",
    "not_did": "没有{action}",
    "not_did_item": "没有{action}{item}",
    "cart_not_bought": "加购未购买",
    "cart_not_bought_item": "加购{item}未购买",
    "coupon_held": "领的券中有至今未核销的",
    "campaign_received": "收到过{campaign}活动",
    "campaign_joined": "参加过{campaign}活动",
    "campaign_redeemed": "核销过{campaign}活动的券",
    "not_campaign_received": "没有收到过{campaign}活动",
    "not_campaign_joined": "没有参加过{campaign}活动",
    "not_campaign_redeemed": "没有核销过{campaign}活动的券",
}
SEGMENT_EVENT_ACTIONS = {
    "follow": "关注过公众号", "unfollow": "取消关注过公众号", "scan": "扫过公众号二维码",
    "add_contact": "添加过导购企微", "del_contact": "删除过导购企微", "browse": "浏览过", "add_cart": "加购过",
    "click": "点击过", "message": "发过消息", "coupon_get": "领过券", "coupon_consume": "核销过券",
    "coupon_delete": "删除过券",
}

# ---- reports (profile_store/reports.py, bot/report_chart.py)
REPORT_MEASURES = {
    "sales": "销售额", "orders": "订单数", "customers": "顾客数", "aov": "客单价", "conversion": "转化率",
    "redemption": "核销率",
}
REPORT_MEASURE_PERSONS = "人数"  # `customers` of a lifecycle / RFM distribution
REPORT_DIMENSIONS = {
    "channel": "渠道", "store": "门店", "city": "城市", "lifecycle": "生命周期", "rfm": "RFM分层", "category": "品类",
}
REPORT_TITLE = "{measures}"
REPORT_TITLE_BY = "各{by}{measures}"
REPORT_TITLE_DISTRIBUTION = "{by}分布"
REPORT_TITLE_CAMPAIGN = "{campaign}活动复盘"
REPORT_TITLE_ALL_CAMPAIGNS = "全部活动复盘"
REPORT_MEASURE_SEPARATOR = "、"
REPORT_VALUE_SEPARATOR = "，"
REPORT_SPAN = "（{first}至{last}）"
REPORT_AS_OF = "（截至{date}）"
REPORT_AMONG = "范围：所选人群（{count}人）"
REPORT_ROW = "{label}：{values}"
REPORT_TOTAL = "合计：{values}"
REPORT_VALUE = "{measure} {value}"
REPORT_MORE = "……另有{count}项未列出"
REPORT_NO_DATA = "这段时间没有数据。"
REPORT_CHART_NO_DATA = "暂无数据"
REPORT_YUAN = "{amount}元"
REPORT_PERCENT = "{rate}%"
REPORT_SHARE = "（占{rate}%）"
REPORT_UNITS = {
    "orders": "单", "customers": "人", "received": "人", "coupons": "张", "redeemed": "张", "converted": "人",
}
REPORT_WAN = "{n}万"
REPORT_YI = "{n}亿"
REPORT_AXIS_YUAN = "{measure}（元）"
REPORT_NO_STORE = "线上（无门店）"
REPORT_NO_CITY = "未知城市"
REPORT_NO_CATEGORY = "未分类"
REPORT_CAMPAIGN_STEPS = {"received": "触达人数", "coupons": "领券数", "redeemed": "核销数", "converted": "转化人数"}
REPORT_CAMPAIGN_RATES = {"redeemed": "核销率", "converted": "转化率"}
REPORT_CAMPAIGN_UNKNOWN = "没有找到活动“{campaign}”的记录，以下数字均为0。"
REPORT_CHART_TOP = "{measure}（前{count}项）"

# ---- campaign effect (campaigns/measure.py)
EFFECT_TITLE = "{campaign}活动效果（截至{as_of}，归因窗口{days}天）"
EFFECT_UNKNOWN = "没有找到活动“{campaign}”。"
EFFECT_EMPTY = "这个活动还没有目标人群（尚未规划或发送）。"
EFFECT_SENT_SPAN = "发送时间：{first}至{last}"
EFFECT_REACH = "目标{targeted}人次：已发送{sent}（送达{delivered}），对照组{held_out}"
EFFECT_REACH_OTHER = "，{name}{count}"
EFFECT_OUTCOMES = {
    "planned": "待发送", "control": "对照组", "capped": "频控拦截", "opted_out": "已退订", "unreachable": "无法触达",
    "sent": "已发送", "delivered": "已送达", "failed": "发送失败", "expired": "已过期",
}
EFFECT_COUPONS = "领券{coupons}张，核销{redeemed}张，核销率{rate}"
EFFECT_NO_COUPONS = "本活动没有领券记录"
EFFECT_CONVERSION = "转化：发送组{treated}，对照组{control}"
EFFECT_ARM = "{converted}/{n}人 {rate}"
EFFECT_ARM_NONE = "无人"
EFFECT_UPLIFT = "提升：{uplift}个百分点（95%置信区间 {low} ~ {high}，p={p}，{verdict}）"
EFFECT_SIGNIFICANT = "显著"
EFFECT_NOT_SIGNIFICANT = "不显著"
EFFECT_NO_INTERVAL = "提升：无法计算（{side}为0人，没有置信区间）"
EFFECT_SIDES = {"treated": "发送组", "control": "对照组", "both": "发送组和对照组"}
EFFECT_REVENUE = "销售额：发送组{treated}（{treated_orders}单），对照组{control}（{control_orders}单）"
EFFECT_WAVES = "分波次："
EFFECT_WAVE = "第{n}波"
EFFECT_JOURNEY_WAVE = "{entry} 进入·第{step}步"
EFFECT_GROUP_LINE = (
    "{label}：发送{treated_n}人 转化{treated_rate}，对照{control_n}人 转化{control_rate}，提升{uplift}，销售额{revenue}"
)
EFFECT_POINTS = "{value}个百分点"
EFFECT_NA = "—"
EFFECT_STORES = "分门店（前{count}）："
EFFECT_GUIDES = "分导购（前{count}）："
EFFECT_NO_STORE = "无门店"
EFFECT_NO_GUIDE = "无导购"
EFFECT_CROSS = "跨渠道（消息→购买）："
EFFECT_CROSS_CELL = "{message}→{purchase} {orders}单 {revenue}"
EFFECT_CROSS_NONE = "跨渠道：暂无转化订单"
EFFECT_MESSAGE_CHANNELS = {
    "wecom": "企业微信", "oa_template": "公众号模板消息", "oa_custom": "公众号客服消息", "sms": "短信", "": "未知渠道",
}
EFFECT_OPEN = "注意：还有{count}人次的归因窗口未结束，数字仍会变化。"
EFFECT_CHART_CONVERSION = "转化率（误差线：95%置信区间）"
EFFECT_CHART_REVENUE = "销售额（元）"
EFFECT_CHART_TREATED = "发送组"
EFFECT_CHART_CONTROL = "对照组"
EFFECT_CHART_TOTAL = "合计"
EFFECT_CHART_UPLIFT = "提升 {uplift}pp\n[{low}, {high}]"
EFFECT_CHART_UPLIFT_NONE = "提升：无对照"

# ---------------------------------------------------------------------------------- journeys (issue 6 item 3)

CHAT_ACTION_JOURNEY = "管理自动旅程"
JOURNEY_NAMES_HINT = "可用的旅程：新粉欢迎旅程、加购提醒旅程、券到期提醒旅程、生日月旅程、沉睡唤醒旅程。"
JOURNEY_ON = "开启"
JOURNEY_OFF = "关闭"
JOURNEY_LIST_HEAD = "自动旅程："
JOURNEY_LIST_LINE = "· {name}：{state}，累计进入{entries}人次，已发送{sent}条"
JOURNEY_STEP_LINE = "    第{n}步：{content}"
JOURNEY_SWITCH_PREVIEW = (
    "将{verb}“{name}”（{reading}），现在{state}。\n"
    "开启后按触发条件自动进入，频次上限、免打扰时段、退订和对照组照常生效；关闭后尚未发出的消息不再发送。\n"
    "回复“确认”执行，回复“取消”放弃（{minutes}分钟内有效）。"
)
JOURNEY_SWITCH_SAME = "“{name}”已经是{state}状态，无需{verb}。"
JOURNEY_SWITCH_DONE = "已{verb}“{name}”。"
JOURNEY_SWITCH_DONE_OFF = "已关闭“{name}”，{ended}条尚未发出的消息不再发送。"
JOURNEY_CONTENT_PREVIEW = (
    "将把“{name}”第{n}步的内容\n由：{old}\n改为：{new}\n回复“确认”执行，回复“取消”放弃（{minutes}分钟内有效）。"
)
JOURNEY_CONTENT_NO_STEP = "“{name}”只有{steps}步，没有第{n}步。"
JOURNEY_CONTENT_DONE = "已更新“{name}”第{n}步的内容。"
# A campaign's message when the command gave only a coupon (campaigns/drafts.py).
CAMPAIGN_COUPON_MESSAGE = "送您一张{offer}，到店或在小程序下单即可使用，期待您的光临！"
DEMO_SCENE_CAMPAIGN = "场景十：一次营销活动从头到尾：预览、确认、导购一对一发送、顾客购买（对照组也有人买），再看效果"
DEMO_CAMPAIGN_COMMAND = "通过企微给企微好友发消息：价格导向的发30元无门槛券，其他人发新品推荐"
DEMO_CAMPAIGN_SENT = (
    "  导购们收到群发任务：发出 {sent} 条；对照组 {control} 人不发；{held} 人因频次上限、退订或无法触达未发。"
)
DEMO_CAMPAIGN_BOUGHT = "  晚间 POS 导出：其中 {buyers} 位会员到店消费（收到消息的每两人一位，对照组每四人一位）。"
DEMO_CAMPAIGN_EFFECT = "统计{name}的效果"
# `qianmian campaign …` (bot/cli_campaigns.py).
CLI_CAMPAIGN_NAME_TAKEN = "已有名为“{name}”的营销活动，请换一个名字。"
CLI_CAMPAIGN_UNKNOWN = "没有名为“{name}”的营销活动。"
CLI_CAMPAIGN_SEGMENT_BAD = "{where} “{text}” 无法理解：\n{why}"
CLI_CAMPAIGN_SEGMENT_WHERE = {"segment": "--segment", "variant": "--variant"}
CLI_CAMPAIGN_AT_PAST = "--at {at} 已经过去，请给一个将来的时间（或不写，立即发送）。"
CLI_CAMPAIGN_PREVIEW_HEAD = "营销活动“{name}”预览（未保存）："
CLI_CAMPAIGN_SCHEDULED_HEAD = "已保存并排期营销活动“{name}”（编号 {id}）："
CLI_CAMPAIGN_FIGURES = (
    "发送时间：{when}（免打扰时段顺延）\n目标 {targeted} 人；将发出 {planned} 条（{channels}）\n"
    "不发送：对照组 {control} 人、超出频次上限 {capped} 人、已退订 {opted_out} 人、无法触达 {unreachable} 人"
    "（其中企微本月额度已满 {quota} 人）；不属于任何版本 {no_variant} 人"
)
CLI_CAMPAIGN_VARIANT_LINE = "  版本“{name}”（{who}）：目标 {targeted} 人，发出 {planned} 条；内容：{content}"
CLI_CAMPAIGN_EVERYONE_LEFT = "其余所有人"
CLI_CAMPAIGN_CONFIRM_HINT = "加 --yes 保存并排期。"
CLI_CAMPAIGN_CONTROL_PREVIEW = "将{verb}营销活动“{name}”（当前{status}，还有 {waiting} 条未发送）。加 --yes 执行。"
CLI_CAMPAIGN_LIST_EMPTY = "还没有营销活动。"
# Campaigns with a version per kind of customer by chat (千人千面: nlp/parse.py, bot/chat/engine.py).
CAMPAIGN_VARIANTS_NAME = "{n}个版本"
CAMPAIGN_VARIANTS_HEAD = "按人群分 {n} 个版本（每人只收到第一个符合的版本）："
CAMPAIGN_VARIANT_LINE = "  · {who}：目标 {targeted} 人，发出 {planned} 条；内容：{content}"
CAMPAIGN_VARIANT_EVERYONE_LEFT = "其余所有人"
CAMPAIGN_VARIANTS_NONE = "  · 不属于任何版本 {n} 人，不发送（可加一句“其他人发…”）"
CAMPAIGN_VARIANT_ISSUES = {
    "unknown": (
        "版本条件“{who}”不是能识别的人群（标签），例如可以写：价格导向的、品质导向的、忠诚客户、沉睡会员、女性会员。"
    ),
    "no_content": "没有看出要给“{who}”发什么，请写成“{who}发……”。",
    "default_twice": "“{who}”和前面的内容都是发给其余所有人的，只能有一个，请去掉其中一个。",
}
# Coupon claim links: a campaign's WeChat card in WeCom mass sends, OA template messages and SMS
# (bot/claim_links.py, campaigns/dispatch.py).
CLAIM_LINK_TITLE = "点击领取优惠券"
CLAIM_LINK_DESC = "在微信中一键领取，领取后到店或线上使用"
CLAIM_SMS_SUFFIX = " 领券：{url}"
CLAIM_LANDING_TITLE = "领取您的专属优惠券"
CLAIM_PAGE_TITLE = "领取优惠券"
CLAIM_PAGE_FORGED = "领券链接无效，请从收到的消息中重新打开。"
CLAIM_PAGE_EXPIRED = "这个领券链接已过期。"
CLAIM_PAGE_CANCELLED = "这个活动已结束，优惠券不能再领取了。"
CLAIM_PAGE_NO_CARD = "这张优惠券已下架或不存在。"
CLAIM_PAGE_BUSY = "优惠券暂时领取不了，请稍后再试。"
# Reports over a segment named in the command ("统计价格导向会员上个月的销售额": nlp/parse.py,
# nlp/describe.py describe_report, bot/chat/engine.py).
REPORT_SCOPE_NOT_UNDERSTOOD = (
    "统计的范围没有看懂：可以写某个人群，如“统计价格导向会员上个月的销售额”“对比上海的女性会员各渠道本月的订单数”。"
)
REPORT_TWO_WINDOWS = "一次只能统计一个时间段，请只写一个（如“上个月”或“近30天”）。"
REPORT_READING = "{window}{by}的{measures}"
REPORT_READING_BY = "各{by}"
REPORT_READING_DISTRIBUTION = "{by}分布（截至{date}）"
REPORT_READING_CAMPAIGN = "{window}{campaign}活动的{measures}"
REPORT_READING_ALL_CAMPAIGNS = "{window}全部活动的{measures}"
REPORT_READING_AMONG = "，只统计：{segment}"
