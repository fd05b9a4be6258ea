"""Chinese names of the contract's ids for ops managers (reports; the sidebar has the same in JS)."""

from __future__ import annotations

OUTCOMES_ZH = {
    "high_intent": "高意向", "wechat_added": "已加企微", "deposit_paid": "已付定金", "balance_paid": "已付尾款",
    "promised_to_pay": "承诺付款", "payment_issue": "付款遇到问题", "not_interested": "不感兴趣",
    "do_not_contact": "退订（勿扰）", "call_back_later": "稍后回电", "wrong_number": "打错了", "complaint": "投诉",
    "no_response": "无应答", "hung_up_early": "早挂", "transferred": "转人工", "completed": "已完成",
    "unreachable": "未接通", "price_sensitive": "问过价格", "asked_robot": "问是否机器人", "asked_product": "问过产品",
    "sms_resent": "重发短信", "interrupted": "打断过", "powered_off": "关机", "invalid_number": "空号",
    "suspended": "停机", "busy": "占线", "no_answer": "无人接听", "voicemail": "语音信箱", "call_screening": "来电助理",
}
INTENTS_ZH = {
    "greet": "打招呼", "affirm": "同意", "deny": "婉拒", "opt_out": "要求退订", "busy": "在忙",
    "ask_identity": "问我们是谁", "ask_robot": "问是否机器人", "ask_price": "问价格", "ask_detail": "问活动详情",
    "ask_how_to_add": "问怎么加企微", "already_added": "已加好友", "not_received": "没收到", "already_paid": "已付款",
    "will_pay": "会去付款", "payment_problem": "付款遇到问题", "ask_deposit_rules": "问定金规则",
    "ask_product": "问产品", "ask_logistics": "问物流", "complaint": "投诉", "wrong_person": "不是本人",
    "repeat": "没听清", "thanks_bye": "道谢再见", "out_of_scope": "其他", "none": "（没说话）",
}
GRADES_ZH = {"A": "A 已承诺", "B": "B 有兴趣", "C": "C 中立", "D": "D 拒绝", "E": "E 未接通", "F": "F 屏蔽"}
ENDED_BY_ZH = {"bot": "机器人结束", "customer": "客户挂断"}


def zh(table: dict[str, str], key: str) -> str:
    """The Chinese name, with the id after it so that ops and developers mean the same thing."""
    name = table.get(key)
    return f"{name}（{key}）" if name else key
