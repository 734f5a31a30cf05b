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
DEMO_PORTRAIT_INTRO = "  导购 {guide} 的手机上收到的顾客画像："
DEMO_TAG_CHANGES = "  这位顾客今天的标签变化："
DEMO_SCENE_CORP_TAGS = "场景八：生命周期、RFM 和自定义标签同步为企业微信客户标签（导购在企微里直接可见）"
DEMO_LABEL_PUT = "  导购 {guide} 给这位老会员打上自定义标签“{label}”。"
DEMO_CORP_TAGS_RESULT = "  已同步 {sent} 条企微客户标签；老会员在导购 {guide} 的企微里显示：{tags}"
