// huashu WeCom sidebar: customer profile, last call and live suggested replies.
// No framework, no CDN. The agent key comes from the URL fragment (#key=…, never sent to the
// server as part of the URL) or is typed once and kept in localStorage.
// Inside WeCom's chat toolbar the page follows the JS-SDK flow: the server signs wx.agentConfig,
// wx.invoke("getCurExternalContact") names the contact of the open chat, the server maps it to
// the customer, and 发送 puts the reply into the chat with wx.invoke("sendChatMessage").
// Outside WeCom (no `wx`), ?customer_id=… names the customer (development, demos).
"use strict";
(function () {
  const LABELS = {
    high_intent: "高意向", wechat_added: "已加企微", deposit_paid: "已付定金", balance_paid: "已付尾款",
    promised_to_pay: "承诺付款", payment_issue: "付款遇到问题", not_interested: "不感兴趣", do_not_contact: "勿扰",
    call_back_later: "稍后回电", wrong_number: "打错了", complaint: "投诉", no_response: "无应答",
    hung_up_early: "早挂", transferred: "转人工", completed: "已完成", price_sensitive: "问过价格",
    asked_robot: "问是否机器人", asked_product: "问过产品", sms_resent: "重发短信", interrupted: "打断过",
  };
  const INTENTS = {
    greet: "打招呼", affirm: "同意", deny: "婉拒", opt_out: "要求退订", busy: "在忙", ask_identity: "问我们是谁",
    ask_robot: "问是否机器人", ask_price: "问价格", ask_detail: "问活动详情", ask_how_to_add: "问怎么加企微",
    already_added: "已加好友", not_received: "没收到", already_paid: "已付款", will_pay: "会去付款",
    payment_problem: "付款遇到问题", ask_deposit_rules: "问定金规则", ask_product: "问产品", ask_logistics: "问物流",
    complaint: "投诉", wrong_person: "不是本人", repeat: "没听清", thanks_bye: "道谢再见", out_of_scope: "其他",
  };
  const STAGES = { new: "新客", just_joined: "新加好友", active: "活跃", promo: "大促中", silent: "沉默" };
  const TIERS = { low: "价格不敏感", medium: "价格敏感度中", high: "价格敏感" };
  const ANGLES = {
    promotion: "优惠", professional: "专业", service: "服务", efficacy: "功效", origin: "产地", craft: "工艺",
    care: "关怀", payment: "付款", logistics: "物流", greeting: "问候", identity: "身份", wecom: "企微",
    apology: "致歉", clarify: "澄清", compliance: "合规", closing: "结束语",
  };
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  let customerId = params.get("customer_id") || "";
  const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (hash.get("key")) {
    localStorage.setItem("huashu_agent_key", hash.get("key"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  let lastMessage = "";
  let lastSeenAt = "";

  function key() { return localStorage.getItem("huashu_agent_key") || ""; }
  function headers() {
    const h = { "Content-Type": "application/json" };
    if (key()) h.Authorization = "Bearer " + key();
    return h;
  }
  function label(map, k) { return map[k] || k; }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function toast(text) {
    const t = $("toast");
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 1800);
  }
  function showError(text) {
    $("error").textContent = text;
    $("error").hidden = !text;
  }
  async function api(path, body) {
    const res = await fetch(path, body === undefined ? { headers: headers() }
      : { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (res.status === 401) {
      $("keybox").hidden = false;
      throw new Error("需要坐席密钥");
    }
    if (!res.ok) {
      let detail = res.statusText;
      try { const j = await res.json(); detail = j.detail || j.error || j.message || detail; } catch (e) { /* not JSON */ }
      throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    }
    return res.json();
  }
  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getMonth() + 1}月${d.getDate()}日 ${p(d.getHours())}:${p(d.getMinutes())}`;
  }
  function kv(dl, rows) {
    dl.replaceChildren();
    for (const [k, v] of rows) {
      if (v === null || v === undefined || v === "") continue;
      dl.append(el("dt", "", k), el("dd", "", String(v)));
    }
    if (!dl.children.length) dl.append(el("dt", "", "—"), el("dd", "", ""));
  }

  function renderContext(c) {
    $("name").textContent = c.name || c.customer_id;
    $("phone").textContent = c.phone || (c.known ? "" : "（不在客户库中）");
    const badges = $("badges");
    badges.replaceChildren();
    if (c.persona_group) badges.append(el("span", "badge", c.persona_group));
    badges.append(el("span", "badge tier-" + c.price_sensitivity, label(TIERS, c.price_sensitivity)));
    const stage = el("span", "badge stage", label(STAGES, c.stage));
    stage.title = c.stage_reason || "";
    badges.append(stage);
    $("dnc").hidden = !c.do_not_contact;
    const tags = $("tags");
    tags.replaceChildren();
    for (const t of c.tags) tags.append(el("span", "tag", label(LABELS, t)));
    if (!c.tags.length) tags.append(el("span", "muted", "暂无标签"));
    const lc = c.last_call || {};
    kv($("lastcall"), [
      ["结果", lc.outcome ? label(LABELS, lc.outcome) : "还没有通话记录"],
      ["评级", lc.grade], ["时间", fmtTime(lc.at)], ["承诺付款", lc.promised_pay_time], ["约定回电", lc.callback_time],
    ]);
    const o = c.order || {};
    kv($("order"), [
      ["商品", c.product], ["定金", o.deposit_paid ? `已付 ${o.deposit_amount ?? ""}元` : null],
      ["尾款", o.deposit_paid ? (o.balance_paid ? "已付" : "未付") : null],
      ["购买次数", o.purchase_count], ["累计消费", o.total_spent !== undefined ? `${o.total_spent}元` : null],
    ]);
    renderMessages(c.messages || []);
  }

  function renderMessages(messages) {
    const box = $("messages");
    box.replaceChildren();
    for (const m of messages.slice(-6)) {
      const row = el("div", "msg");
      row.append(el("span", "who", m.role === "customer" ? "客户" : "我"), document.createTextNode(m.text));
      box.append(row);
    }
    const latest = [...messages].reverse().find((m) => m.role === "customer");
    if (latest && latest.at !== lastSeenAt) {
      lastSeenAt = latest.at;
      if (latest.text !== lastMessage) {
        $("message").value = latest.text;
        suggest();
      }
    }
  }

  function renderSuggestions(result) {
    $("intent").textContent = `意图：${label(INTENTS, result.intent)}（${Math.round(result.confidence * 100)}%）`;
    const list = $("suggestions");
    list.replaceChildren();
    result.suggestions.forEach((s, i) => {
      const li = el("li", "suggestion");
      li.dataset.id = s.id;
      li.append(el("div", "text", s.text));
      const meta = el("div", "meta");
      meta.append(el("span", "why", `${i + 1}. ${label(ANGLES, s.angle)} · ${s.score.toFixed(2)}`));
      const actions = el("div", "actions");
      const copy = el("button", "copy", "复制");
      copy.type = "button";
      copy.onclick = () => use(s, false);
      const send = el("button", "send", "发送");
      send.type = "button";
      send.onclick = () => use(s, true);
      actions.append(copy, send);
      meta.append(actions);
      li.append(meta);
      list.append(li);
    });
    if (!result.suggestions.length) list.append(el("li", "muted", "没有合适的推荐"));
  }

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (e) {
      const ta = el("textarea");
      ta.value = text;
      document.body.append(ta);
      ta.select();
      const ok = document.execCommand && document.execCommand("copy");
      ta.remove();
      return !!ok;
    }
  }
  function eventId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "e" + Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
  }

  function invoke(api, args) {
    return new Promise((resolve) => window.wx.invoke(api, args, (res) => resolve(res || {})));
  }
  function inWecom() { return !!(window.wx && typeof window.wx.invoke === "function"); }

  async function use(s, send) {
    let sent = false;
    if (send && inWecom() && sdkReady) {
      // Into the open chat; the agent still presses WeCom's own send button.
      const res = await invoke("sendChatMessage", { msgtype: "text", text: { content: s.text } });
      sent = res.err_msg === "sendChatMessage:ok";
      if (!sent) toast("发送失败：" + (res.err_msg || "未知错误") + "，已改为复制");
    }
    const copied = sent ? false : await copyText(s.text);
    try {
      const r = await api("/v1/wecom/feedback", {
        customer_id: customerId, message: lastMessage || $("message").value.trim(),
        suggestion_id: s.id, event_id: eventId(), text: s.text,
      });
      const tagText = r.tags && r.tags.length ? "，已记录标签：" + r.tags.map((t) => label(LABELS, t)).join("、") : "";
      toast((sent ? "已发送" : copied ? "已复制" : "已选用") + tagText);
      document.body.dataset.lastFeedback = JSON.stringify(r);
      loadContext();
    } catch (e) {
      toast((copied ? "已复制，" : "") + "记录失败：" + e.message);
    }
  }

  let pending = 0;
  async function suggest() {
    const message = $("message").value.trim();
    if (!message || !customerId) return;
    const mine = ++pending;
    $("suggest").disabled = true;
    try {
      const result = await api("/v1/wecom/suggest", { customer_id: customerId, message: message });
      if (mine !== pending) return;  // a newer request is on its way
      lastMessage = message;
      showError("");
      renderSuggestions(result);
    } catch (e) {
      showError("推荐失败：" + e.message);
    } finally {
      if (mine === pending) $("suggest").disabled = false;
    }
  }

  // -- WeCom JS-SDK: agentConfig → getCurExternalContact → the customer ---------------------
  let sdkReady = false;
  async function resolveContact() {
    const cfg = await api("/v1/wecom/jssdk/agent-config?url=" + encodeURIComponent(location.href.split("#")[0]));
    await new Promise((resolve, reject) => window.wx.agentConfig({
      corpid: cfg.corpid, agentid: cfg.agentid, timestamp: cfg.timestamp, nonceStr: cfg.nonceStr,
      signature: cfg.signature, jsApiList: cfg.jsApiList,
      success: resolve, fail: (res) => reject(new Error("agentConfig：" + ((res && res.errMsg) || "失败"))),
    }));
    sdkReady = true;
    const res = await invoke("getCurExternalContact", {});
    if (res.err_msg !== "getCurExternalContact:ok" || !res.userId) {
      throw new Error("请从客户聊天的工具栏打开本页（" + (res.err_msg || "没有当前联系人") + "）");
    }
    const contact = await api("/v1/wecom/contacts/" + encodeURIComponent(res.userId));
    document.body.dataset.externalUserid = res.userId;
    if (!contact.mapped) toast("该联系人还没有关联客户库（导入时填 external_userid 列）");
    return contact.customer_id;
  }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = src;
      s.onload = resolve;
      s.onerror = () => reject(new Error("加载失败 " + src));
      document.head.append(s);
    });
  }

  async function start() {
    if (!customerId && !inWecom() && /wxwork/i.test(navigator.userAgent)) {
      // WeCom's in-app browser: its JS-SDK comes from WeCom itself (nothing else leaves the page).
      try {
        await loadScript("https://res.wx.qq.com/open/js/jweixin-1.2.0.js");
        await loadScript("https://open.work.weixin.qq.com/wwopen/js/jwxwork-1.0.0.js");
      } catch (e) {
        showError(e.message);
      }
    }
    if (!customerId && inWecom()) {
      try {
        customerId = await resolveContact();
      } catch (e) {
        showError(e.message);
        $("name").textContent = "—";
        return;
      }
    }
    await loadContext();
    setInterval(() => { if (!document.hidden) loadContext(); }, 5000);
  }

  async function loadContext() {
    if (!customerId) {
      showError("请从企业微信客户聊天的工具栏打开本页（或在地址里加 ?customer_id=）");
      $("name").textContent = "—";
      return;
    }
    try {
      renderContext(await api("/v1/wecom/customers/" + encodeURIComponent(customerId)));
      showError("");
    } catch (e) {
      showError("加载客户失败：" + e.message);
    }
  }

  let typingTimer = 0;
  $("message").addEventListener("input", () => {
    clearTimeout(typingTimer);
    typingTimer = setTimeout(suggest, 400);
  });
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); suggest(); }
  });
  $("suggest").addEventListener("click", suggest);
  $("savekey").addEventListener("click", () => {
    localStorage.setItem("huashu_agent_key", $("key").value.trim());
    $("keybox").hidden = true;
    if (customerId) loadContext(); else start();
  });
  start();
})();
