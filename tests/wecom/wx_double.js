// A test double of WeCom's JS-SDK `wx` object, shaped like WeCom's documentation: agentConfig
// checks its required fields and the signature (sha1 of jsapi_ticket, noncestr, timestamp and
// the page URL without its fragment) against the ticket WeCom's API stand-in hands out;
// wx.invoke answers getCurExternalContact / sendChatMessage with the documented err_msg values,
// and only after a successful agentConfig that listed the API.
(function () {
  const cfg = window.__WX_DOUBLE__;  // {ticket, corpid, agentid, userId}
  const state = { configured: false, apis: [], sent: [], calls: [] };
  window.__wxDouble = state;
  async function sha1(text) {
    const buf = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
    return [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
  }
  window.wx = {
    agentConfig(o) {
      state.calls.push("agentConfig");
      const required = ["corpid", "agentid", "timestamp", "nonceStr", "signature", "jsApiList"];
      const missing = required.filter((k) => o[k] === undefined || o[k] === "");
      if (missing.length) { o.fail && o.fail({ errMsg: "agentConfig:fail missing " + missing.join(",") }); return; }
      const url = location.href.split("#")[0];
      sha1(`jsapi_ticket=${cfg.ticket}&noncestr=${o.nonceStr}&timestamp=${o.timestamp}&url=${url}`).then((sig) => {
        if (sig !== o.signature || String(o.corpid) !== cfg.corpid || String(o.agentid) !== cfg.agentid) {
          o.fail && o.fail({ errMsg: "agentConfig:fail invalid signature" });
          return;
        }
        state.configured = true;
        state.apis = o.jsApiList.slice();
        o.success && o.success({ errMsg: "agentConfig:ok" });
      });
    },
    invoke(api, args, cb) {
      state.calls.push(api);
      const ok = state.configured && state.apis.includes(api);
      setTimeout(() => {
        if (!ok) { cb({ err_msg: api + ":fail no permission" }); return; }
        if (api === "getCurExternalContact") { cb({ err_msg: api + ":ok", userId: cfg.userId }); return; }
        if (api === "sendChatMessage") {
          if (!args || args.msgtype !== "text" || !args.text || !args.text.content) {
            cb({ err_msg: api + ":fail invalid args" });
            return;
          }
          state.sent.push(args);
          cb({ err_msg: api + ":ok" });
          return;
        }
        cb({ err_msg: api + ":fail not supported" });
      }, 10);
    },
  };
})();
