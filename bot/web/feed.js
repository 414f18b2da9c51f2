// salespulse local feed: channels on the left, each message as Slack would show it, live over Server-Sent
// Events; a command box and working buttons. Message bodies arrive as HTML the server rendered from Block Kit
// with everything escaped (bot/web/feed_render.py); this script writes no HTML of its own from data.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const channels = JSON.parse(document.body.dataset.channels || "[]");
  const panes = new Map();      // channel id → {pane, list, empty, item, badge, unread}
  const nodes = new Map();      // "channel ts" → article
  let current = null;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clock(iso) {
    const at = iso ? new Date(iso) : new Date();
    return at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function channel(id, name) {
    if (panes.has(id)) return panes.get(id);
    const item = el("li");
    const link = el("a");
    link.href = "#" + id;
    link.dataset.channel = id;
    const label = el("span", "name", name || "#" + id);
    const badge = el("span", "badge");
    badge.hidden = true;
    link.append(label, badge);
    item.append(link);
    $("channels").append(item);
    const pane = el("section", "pane");
    pane.dataset.channel = id;
    pane.hidden = true;
    const empty = el("div", "empty");
    empty.append(el("strong", "", "Nothing posted in " + label.textContent + " yet."),
      el("p", "", id === "sales"
        ? "Sale pings appear here as Stripe events arrive: run salespulse demo, or forward test events with "
          + "stripe listen --forward-to " + location.host + "/webhooks/stripe"
        : "Messages for this channel appear here as the bot posts them."));
    const list = el("div", "messages");
    pane.append(empty, list);
    $("panes").append(pane);
    const entry = { pane, list, empty, item, badge, unread: 0, label: label.textContent };
    panes.set(id, entry);
    return entry;
  }

  function select(id) {
    const target = panes.get(id) || panes.values().next().value;
    if (!target) return;
    current = target.pane.dataset.channel;
    for (const [key, p] of panes) {
      p.pane.hidden = key !== current;
      p.item.classList.toggle("active", key === current);
    }
    target.unread = 0;
    target.badge.hidden = true;
    $("channel-name").textContent = target.label;
    scrollDown(true);
  }

  function nearBottom() {
    const box = $("panes");
    return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  }

  function scrollDown(force) {
    const box = $("panes");
    if (force || nearBottom()) box.scrollTop = box.scrollHeight;
  }

  function article(html, at, edited) {
    const art = el("article", "msg");
    const avatar = el("div", "avatar", "SP");
    avatar.setAttribute("aria-hidden", "true");
    const content = el("div", "content");
    const meta = el("div", "meta");
    const time = el("time", "", clock(at));
    if (at) time.dateTime = at;
    const editedMark = el("span", "edited", "(edited)");
    editedMark.hidden = !edited;
    meta.append(el("span", "author", "salespulse"), el("span", "app-badge", "APP"), time, editedMark);
    const body = el("div", "body");
    body.innerHTML = html;  // rendered and escaped by the server; see the header comment
    content.append(meta, body);
    art.append(avatar, content);
    return art;
  }

  function threadOf(parent) {
    let thread = parent.querySelector(":scope > .content > .thread");
    if (thread) return thread;
    thread = el("div", "thread");
    const toggle = el("button", "replies-toggle");
    toggle.type = "button";
    const list = el("div", "replies");
    list.hidden = true;
    toggle.addEventListener("click", () => { list.hidden = !list.hidden; });
    thread.append(toggle, list);
    parent.querySelector(":scope > .content").append(thread);
    return thread;
  }

  function countReplies(thread) {
    const n = thread.querySelector(".replies").children.length;
    thread.querySelector(".replies-toggle").textContent = n + (n === 1 ? " reply" : " replies");
  }

  function insertByPos(list, node, pos) {
    for (const other of list.children) {
      if (Number(other.dataset.pos) > pos) { list.insertBefore(node, other); return; }
    }
    list.append(node);
  }

  function apply(m) {
    const target = channel(m.channel);
    const key = m.channel + " " + m.ts;
    const follow = nearBottom();
    const known = nodes.get(key);
    if (known) {
      known.querySelector(":scope > .content > .body").innerHTML = m.html;  // escaped by the server
      known.querySelector(":scope > .content > .meta .edited").hidden = !m.edited;
      known.classList.remove("flash");
      void known.offsetWidth;  // restart the highlight animation
      known.classList.add("flash");
      return;
    }
    const node = article(m.html, m.at, m.edited);
    node.dataset.ts = m.ts;
    node.dataset.pos = m.pos;
    nodes.set(key, node);
    const parent = m.thread_ts ? nodes.get(m.channel + " " + m.thread_ts) : null;
    if (parent) {
      const thread = threadOf(parent);
      insertByPos(thread.querySelector(".replies"), node, m.pos);
      countReplies(thread);
    } else {
      if (m.thread_ts) node.classList.add("orphan-reply");
      insertByPos(target.list, node, m.pos);
    }
    target.empty.hidden = true;
    if (m.channel !== current) {
      target.unread += 1;
      target.badge.textContent = String(target.unread);
      target.badge.hidden = false;
    } else if (follow) {
      scrollDown(true);
    }
  }

  function reset() {
    nodes.clear();
    for (const p of panes.values()) {
      p.list.replaceChildren();
      p.empty.hidden = false;
      p.unread = 0;
      p.badge.hidden = true;
    }
  }

  function toast(text) {
    const box = $("toast");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, 5000);
  }

  async function post(path, body) {
    const resp = await fetch(path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      credentials: "same-origin",
    });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(data.error || "the server answered " + resp.status);
    return data;
  }

  function ephemeral(res) {
    const art = article(res.html, null, false);
    art.classList.add("ephemeral");
    const meta = art.querySelector(".meta");
    const note = el("span", "only-you", "Only visible to you · " + res.command);
    const dismiss = el("button", "dismiss", "Dismiss");
    dismiss.type = "button";
    dismiss.addEventListener("click", () => art.remove());
    meta.append(note, dismiss);
    const target = panes.get(current);
    target.list.append(art);
    target.empty.hidden = true;
    scrollDown(true);
  }

  // A modal (the Settings view) arrives as a form the server rendered and escaped; on submit its controls are
  // read back into Slack's view.state.values shape and saved through the same checks as a view_submission.
  const READ = {
    timepicker: (c) => ({ selected_time: c.value || null }),
    number_input: (c) => ({ value: c.value }),
    plain_text_input: (c) => ({ value: c.value }),
    conversations_select: (c) => ({ selected_conversation: c.value.trim() || null }),
    static_select: (c) => ({ selected_option: { value: c.value } }),
    multi_users_select: (c) => ({ selected_users: c.value.split(",").map((u) => u.trim()).filter(Boolean) }),
    checkboxes: (c) => ({ selected_options: [...c.querySelectorAll("input:checked")].map((b) => ({ value: b.value })) }),
  };

  function modal(html) {
    closeModal();
    const overlay = el("div", "overlay");
    overlay.id = "modal";
    overlay.innerHTML = html;  // rendered and escaped by the server (bot/web/feed_modal.py)
    const form = overlay.querySelector("form.modal");
    form.addEventListener("submit", (event) => { event.preventDefault(); save(form); });
    form.querySelector(".modal-close").addEventListener("click", closeModal);
    document.body.append(overlay);
  }

  function closeModal() {
    const open = $("modal");
    if (open) open.remove();
  }

  async function save(form) {
    const values = {};
    for (const c of form.querySelectorAll("[data-block-id]")) {
      const read = READ[c.dataset.type];
      if (read) values[c.dataset.blockId] = { [c.dataset.actionId]: { type: c.dataset.type, ...read(c) } };
    }
    for (const p of form.querySelectorAll(".field-error")) p.hidden = true;
    try {
      const res = await post("/feed/view", { values, private_metadata: form.dataset.privateMetadata || "" });
      if (res.response_action === "errors") {
        for (const [blockId, message] of Object.entries(res.errors)) {
          const p = form.querySelector(`.field-error[data-error-for="${CSS.escape(blockId)}"]`);
          if (p) { p.textContent = message; p.hidden = false; }
        }
        return;
      }
      closeModal();
      toast("Settings saved.");
    } catch (err) {
      toast("Could not save: " + err.message);
    }
  }

  async function send(line) {
    const text = line.trim();
    if (!text) return;
    const input = $("command");
    input.disabled = true;
    try {
      const res = await post("/feed/command", { line: text, channel: current });
      if (res.modal) { modal(res.modal); input.value = ""; return; }
      ephemeral(res);
      input.value = "";
    } catch (err) {
      toast("Could not run " + text + ": " + err.message);
    } finally {
      input.disabled = false;
      input.focus();
    }
  }

  async function click(button) {
    const pane = button.closest(".pane");
    button.disabled = true;
    try {
      const res = await post("/feed/action", {
        action_id: button.dataset.actionId, value: button.dataset.value,
        channel: pane ? pane.dataset.channel : current,
      });
      if (res.delete_original) {
        const msg = button.closest("article.ephemeral");
        if (msg) msg.remove();
      }
      if (res.html) ephemeral({ html: res.html, command: button.textContent });  // e.g. "already resolved"
    } catch (err) {
      toast("That button did not work: " + err.message);
    } finally {
      button.disabled = false;
    }
  }

  function connect() {
    const status = $("status");
    const stream = new EventSource("/feed/events");
    stream.onopen = () => { status.textContent = "Live"; status.className = "pill live"; };
    stream.onerror = () => { status.textContent = "Reconnecting…"; status.className = "pill down"; };
    stream.addEventListener("reset", reset);
    stream.onmessage = (event) => apply(JSON.parse(event.data));
  }

  for (const c of channels) channel(c.id, c.name);
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action-id]");
    if (button) { click(button); return; }
    const link = event.target.closest("a[data-channel]");
    if (link) { event.preventDefault(); history.replaceState(null, "", "#" + link.dataset.channel);
      select(link.dataset.channel); return; }
    const hint = event.target.closest("button.hint");
    if (hint) send(hint.dataset.line);
  });
  $("composer").addEventListener("submit", (event) => { event.preventDefault(); send($("command").value); });
  select(location.hash.slice(1));
  connect();
})();
