// The local chat simulator (/dev/chat). Plain DOM, no framework, nothing external.
// Every piece of message text goes in through textContent and text nodes, never as markup.
(function () {
  "use strict";

  var OPENID_RE = /^[A-Za-z0-9_-]{1,64}$/;
  var URL_RE = /(https?:\/\/[^\s<>"'）】，。]+)/g;
  var POLL_MS = 2000;

  var log = document.getElementById("log");
  var openidInput = document.getElementById("openid");
  var textInput = document.getElementById("text");
  var sendButton = document.getElementById("send");

  var openid = localStorage.getItem("devChatOpenid") || document.body.dataset.defaultOpenid;
  var outboxNext = null; // index of the next outbound message to show for this openid
  var queue = Promise.resolve(); // sends go one after another, like a person typing
  var pollTimer = null;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // Only web links and same-site paths become href/src: no javascript: or data: URLs.
  function safeUrl(url) {
    if (typeof url !== "string" || !url) return null;
    if (/^https?:\/\//i.test(url) || /^\/(?!\/)/.test(url)) return url;
    return null;
  }

  function link(url, child) {
    var a = document.createElement("a");
    a.href = url;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.appendChild(child);
    return a;
  }

  // Text with its URLs turned into links; every part is a text node.
  function richText(parent, text) {
    var parts = String(text).split(URL_RE);
    for (var i = 0; i < parts.length; i++) {
      if (!parts[i]) continue;
      if (i % 2 === 1 && safeUrl(parts[i])) {
        parent.appendChild(link(parts[i], document.createTextNode(parts[i])));
      } else {
        parent.appendChild(document.createTextNode(parts[i]));
      }
    }
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function system(text, isError) {
    log.appendChild(el("div", isError ? "system error" : "system", text));
    scrollDown();
  }

  function row(mine, content, note) {
    var r = el("div", mine ? "row me" : "row bot");
    r.appendChild(el("div", "avatar", mine ? "我" : "店"));
    if (note) {
      var wrap = el("div");
      wrap.appendChild(el("div", "late", note));
      wrap.appendChild(content);
      r.appendChild(wrap);
    } else {
      r.appendChild(content);
    }
    log.appendChild(r);
    scrollDown();
    return r;
  }

  function bubble(mine, text, note) {
    var b = el("div", "bubble");
    richText(b, text);
    return row(mine, b, note);
  }

  function image(url) {
    var img = document.createElement("img");
    var src = safeUrl(url);
    if (src) img.src = src;
    img.alt = "";
    img.loading = "lazy";
    return img;
  }

  function articleTarget(article, child) {
    var href = safeUrl(article.url);
    return href ? link(href, child) : child;
  }

  // A news reply as WeChat shows it. One article: the title, then the description as far as
  // a phone shows it (`shown`, about two lines) beside the picture. Several: the first large
  // (picture, title), the others as rows.
  function newsCard(articles, note) {
    var card = el("div", "news");
    if (articles.length === 1) {
      var article = articles[0];
      var box = el("div", "single");
      box.appendChild(el("div", "headline", article.title));
      var body = el("div", "body");
      var shown = article.shown || article.description;
      if (shown) {
        var desc = el("div", "desc", shown);
        if (shown !== article.description) desc.title = article.description;  // the whole text on hover
        body.appendChild(desc);
      }
      if (article.picurl) body.appendChild(image(article.picurl));
      box.appendChild(body);
      if (safeUrl(article.url)) box.appendChild(el("div", "open", "阅读全文 ›"));
      card.appendChild(articleTarget(article, box));
      return row(false, card, note);
    }
    articles.forEach(function (article, index) {
      var box = el("div", index === 0 ? "lead" : "item");
      if (index === 0) {
        if (article.picurl) box.appendChild(image(article.picurl));
        box.appendChild(el("div", "headline", article.title));
        if (article.description) box.appendChild(el("div", "desc", article.description));
        if (safeUrl(article.url)) box.appendChild(el("div", "open", "查看详情 / Open ›"));
      } else {
        box.appendChild(el("div", "t", article.title));
        if (article.picurl) box.appendChild(image(article.picurl));
      }
      card.appendChild(articleTarget(article, box));
    });
    return row(false, card, note);
  }

  function showReply(reply, note) {
    if (!reply) return;
    if (reply.kind === "text") {
      bubble(false, reply.text, note);
    } else if (reply.kind === "news") {
      newsCard(reply.articles || [], note);
    } else if (reply.kind === "transfer_customer_service") {
      system("已转接人工客服 · Handed over to a human agent");
    } else if (reply.kind === "none") {
      // "success": WeChat shows nothing; a late answer may follow from the outbox.
    } else {
      system("[" + reply.kind + "]");
    }
  }

  function post(body) {
    return fetch("/dev/chat/send", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error(data.error || "HTTP " + response.status);
        return data;
      });
    });
  }

  function enqueue(body, mine) {
    if (mine) bubble(true, mine);
    queue = queue.then(function () {
      return post(body).then(function (data) {
        showReply(data.reply);
      }).catch(function (error) {
        system("发送失败 / Failed: " + error.message, true);
      });
    });
    return queue;
  }

  function sendText(text) {
    if (!text.trim()) return;
    enqueue({ openid: openid, text: text }, text);
  }

  function sendEvent(event, key, label) {
    system(label);
    var body = { openid: openid, event: event };
    if (key) body.key = key;
    enqueue(body, null);
  }

  // Late replies and notices ("order paid") the server sent after the 5-second window.
  // Each openid gets its own polling loop (a generation); switching ends the old one.
  var generation = 0;

  function poll(gen) {
    if (gen !== generation) return;
    var who = openid;
    var after = outboxNext === null ? 1e9 : outboxNext; // first call: learn where "now" is
    fetch("/dev/chat/outbox?openid=" + encodeURIComponent(who) + "&after=" + after)
      .then(function (response) { return response.json(); })
      .then(function (data) {
        if (gen !== generation) return;
        if (outboxNext !== null) {
          (data.messages || []).forEach(function (message) {
            showReply(message, "客服消息 · sent later");
          });
        }
        outboxNext = data.next;
        document.body.dataset.outboxReady = "1";
      })
      .catch(function () { /* the server may be restarting; try again next time */ })
      .then(function () {
        if (gen === generation) pollTimer = setTimeout(function () { poll(gen); }, POLL_MS);
      });
  }

  function switchTo(id) {
    openid = id;
    openidInput.value = id;
    localStorage.setItem("devChatOpenid", id);
    outboxNext = null;
    delete document.body.dataset.outboxReady;
    while (log.firstChild) log.removeChild(log.firstChild);
    system("以 " + id + " 的身份聊天；点「关注」收到欢迎语。\nChatting as " + id +
           "; press Follow for the welcome message.");
    if (pollTimer) clearTimeout(pollTimer);
    generation += 1;
    poll(generation);
  }

  document.getElementById("who").addEventListener("submit", function (event) {
    event.preventDefault();
    var id = openidInput.value.trim();
    if (!OPENID_RE.test(id)) {
      system("openid: 1-64 个字母、数字、_ 或 - · letters, digits, _ or -", true);
      return;
    }
    switchTo(id);
  });

  document.getElementById("compose").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = textInput.value;
    textInput.value = "";
    sendText(text);
    textInput.focus();
  });

  document.getElementById("follow").addEventListener("click", function () {
    sendEvent("subscribe", null, "关注了公众号 · followed");
  });
  document.getElementById("unfollow").addEventListener("click", function () {
    sendEvent("unsubscribe", null, "取消关注 · unfollowed");
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-click]"), function (button) {
    button.addEventListener("click", function () {
      var key = button.getAttribute("data-click");
      sendEvent("CLICK", key, "点击菜单 · menu " + key);
    });
  });

  sendButton.disabled = false;
  switchTo(OPENID_RE.test(openid || "") ? openid : document.body.dataset.defaultOpenid);
  textInput.focus();
})();
